//! Bounds how deep YAML flow collections (`[` and `{`) nest before the YAML parser runs: the
//! parser's time grows with the square of unclosed nesting (200 kB of `[` took over a minute),
//! though it refuses anything past 128 levels in the end.
//!
//! The depth is read from the token stream of libyaml's own scanner (the one serde_norway
//! parses with), stopped at the first collection past the limit. A scanner of our own would have
//! to agree with libyaml on every quoting and plain-scalar rule: where it did not, brackets that
//! libyaml reads as structure hid inside what it took for a quoted string (a stray `"` in a plain
//! scalar hid 115,000 `{` from it). libyaml's scanner looks ahead a bounded distance (a simple
//! key lives at most 1024 characters), so stopping at the limit bounds its work too.

use unsafe_libyaml_norway::{
    yaml_parser_delete, yaml_parser_initialize, yaml_parser_scan, yaml_parser_set_input_string,
    yaml_parser_t, yaml_token_delete, yaml_token_t, yaml_token_type_t,
};

/// serde_norway's own recursion limit: deeper text never parses, so refusing it loses nothing.
pub const MAX_DEPTH: usize = 128;

/// The 1-based line where flow collections first nest deeper than [`MAX_DEPTH`], if they do.
/// Text the scanner cannot read is left to the parser, which reports it.
pub fn too_deep(text: &str) -> Option<usize> {
    use std::mem::MaybeUninit;
    use yaml_token_type_t::*;
    let mut parser = MaybeUninit::<yaml_parser_t>::uninit();
    // SAFETY: `parser` is initialised by `yaml_parser_initialize` before any other use and
    // deleted once, at the end; the input string outlives it (both are local to this call);
    // every token `yaml_parser_scan` fills is deleted after it is read.
    unsafe {
        if yaml_parser_initialize(parser.as_mut_ptr()).fail {
            return None;
        }
        let parser = parser.as_mut_ptr();
        yaml_parser_set_input_string(parser, text.as_ptr(), text.len() as u64);
        let mut depth = 0usize;
        let mut found = None;
        loop {
            let mut token = MaybeUninit::<yaml_token_t>::uninit();
            if yaml_parser_scan(parser, token.as_mut_ptr()).fail {
                break;
            }
            let token = token.as_mut_ptr();
            let kind = (*token).type_;
            match kind {
                YAML_FLOW_SEQUENCE_START_TOKEN | YAML_FLOW_MAPPING_START_TOKEN => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        found = Some((*token).start_mark.line as usize + 1);
                    }
                }
                YAML_FLOW_SEQUENCE_END_TOKEN | YAML_FLOW_MAPPING_END_TOKEN => {
                    depth = depth.saturating_sub(1)
                }
                _ => {}
            }
            yaml_token_delete(token);
            if found.is_some() || kind == YAML_STREAM_END_TOKEN || kind == YAML_NO_TOKEN {
                break;
            }
        }
        yaml_parser_delete(parser);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_flow_nesting_is_found_on_its_line_in_linear_time() {
        let text = format!("a: 1\nb: {}", "[".repeat(1_000_000));
        let start = std::time::Instant::now();
        assert_eq!(too_deep(&text), Some(2));
        assert!(start.elapsed().as_secs_f64() < 1.0);
        assert_eq!(
            too_deep(&format!("x: {}1{}", "[".repeat(128), "]".repeat(128))),
            None
        );
    }

    #[test]
    fn brackets_in_quotes_and_comments_do_not_count() {
        let open = "[".repeat(200);
        assert_eq!(
            too_deep(&format!("a: '{open}'\nb: \"{open}\\\"\"\n# {open}\n")),
            None
        );
        assert_eq!(too_deep(&format!("a: '{open}''x'\n")), None);
        // In a plain scalar a bracket is text (block context) and so is a quote.
        assert_eq!(too_deep(&format!("a: x#{open}\n")), None);
    }

    #[test]
    fn a_quote_inside_a_plain_scalar_hides_nothing() {
        // A stray `"` in a plain scalar is text: the braces after it are structure.
        let text = format!("files:\n- sha256: 00\"00\ndataset: {}", "{".repeat(100_000));
        let start = std::time::Instant::now();
        assert_eq!(too_deep(&text), Some(3));
        assert!(start.elapsed().as_secs_f64() < 1.0);
        // And a closing bracket inside a real quoted scalar closes nothing.
        let text = format!("a: [x, \"{}\", {}", "]".repeat(200), "[".repeat(200));
        assert_eq!(too_deep(&text), Some(1));
    }
}
