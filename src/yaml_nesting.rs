//! A linear scan that bounds how deep YAML flow collections (`[` and `{`) nest, run before the
//! YAML parser: the parser's time grows with the square of unclosed nesting (200 kB of `[` took
//! over a minute), though it refuses anything past 128 levels in the end.

/// serde_norway's own recursion limit: deeper text never parses, so refusing it loses nothing.
pub const MAX_DEPTH: usize = 128;

/// The 1-based line where flow collections first nest deeper than [`MAX_DEPTH`], if they do.
/// Quoted scalars and comments are skipped; brackets inside plain scalars count, which can only
/// refuse text holding over a hundred unbalanced brackets.
pub fn too_deep(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut line = 1;
    let mut chars = text.chars().peekable();
    let mut after_space = true;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' if after_space => while chars.next_if(|&c| c != '\n').is_some() {},
            '"' | '\'' => {
                // A quoted scalar ends at the same quote (`''` is a quote in single-quoted text
                // and simply reopens it; `\` escapes in double-quoted text).
                while let Some(q) = chars.next() {
                    match q {
                        '\n' => line += 1,
                        // The escaped character is consumed by the guard either way.
                        '\\' if c == '"' && chars.next() == Some('\n') => line += 1,
                        q if q == c => break,
                        _ => {}
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(line);
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        after_space = c.is_whitespace() || matches!(c, '[' | '{' | ',');
    }
    None
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
        assert_eq!(too_deep(&format!("a: x#{open}\n")), Some(1));
    }
}
