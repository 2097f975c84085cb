//! Finds the line of a field in block-style YAML, so errors found after parsing (a missing
//! reference, an escaping path) can name the line as well as the field.

/// 1-based line of the value at `path` (mapping keys, or decimal indices into sequences).
/// Returns the deepest line found when the full path cannot be followed (e.g. flow style).
pub fn locate(text: &str, path: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut best = None;
    let mut start = 0usize; // first line of the current node's body
    let mut end = lines.len(); // one past its last line
    let mut parent_indent: isize = -1;
    for seg in path {
        let found = if let Ok(index) = seg.parse::<usize>() {
            find_item(&lines, start, end, parent_indent, index)
        } else {
            find_key(&lines, start, end, parent_indent, seg)
        };
        let Some((line, indent)) = found else { break };
        best = Some(line + 1);
        // The node's body: following lines indented deeper than this key (or the item's content).
        let mut stop = line + 1;
        while stop < end {
            let l = lines[stop];
            if !is_blank(l) && indent_of(l) <= indent {
                break;
            }
            stop += 1;
        }
        start = line;
        end = stop;
        parent_indent = indent;
    }
    best
}

fn is_blank(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('#')
}

fn indent_of(line: &str) -> isize {
    (line.len() - line.trim_start().len()) as isize
}

/// A key at the first indentation deeper than the parent within [start, end); the key may also
/// follow a sequence dash (`- key: v`), in which case its indent is the column after the dash.
fn find_key(
    lines: &[&str],
    start: usize,
    end: usize,
    parent: isize,
    key: &str,
) -> Option<(usize, isize)> {
    let mut level: Option<isize> = None;
    for (i, l) in lines.iter().enumerate().take(end).skip(start) {
        if is_blank(l) {
            continue;
        }
        let (indent, rest) = content_after_dashes(l, i == start);
        if indent <= parent {
            continue;
        }
        let lvl = *level.get_or_insert(indent);
        if indent != lvl {
            continue;
        }
        if let Some(k) = rest.split(':').next() {
            let k = k.trim().trim_matches(|c| c == '"' || c == '\'');
            if k == key && rest.contains(':') {
                return Some((i, indent));
            }
        }
    }
    None
}

/// The `index`-th `- ` item directly below the parent.
fn find_item(
    lines: &[&str],
    start: usize,
    end: usize,
    parent: isize,
    index: usize,
) -> Option<(usize, isize)> {
    let mut level: Option<isize> = None;
    let mut n = 0;
    for (i, l) in lines.iter().enumerate().take(end).skip(start) {
        if is_blank(l) {
            continue;
        }
        let indent = indent_of(l);
        let t = l.trim_start();
        if indent < parent || !(t.starts_with("- ") || t == "-") {
            continue;
        }
        let lvl = *level.get_or_insert(indent);
        if indent != lvl {
            continue;
        }
        if n == index {
            return Some((i, indent));
        }
        n += 1;
    }
    None
}

/// For `- key: v` (on the node's own first line or any line) returns the column of `key`.
fn content_after_dashes(line: &str, _first: bool) -> (isize, &str) {
    let mut indent = indent_of(line);
    let mut rest = line.trim_start();
    while let Some(r) = rest.strip_prefix("- ") {
        let trimmed = r.trim_start();
        indent += (rest.len() - trimmed.len()) as isize;
        rest = trimmed;
    }
    (indent, rest)
}

#[cfg(test)]
mod tests {
    use super::locate;

    const Y: &str = "id: x\nmodels:\n  a:\n    arch: t\n    width: 3\n  b:\n    width: 4\nstages:\n  - id: s1\n    model: a\n  - id: s2\n    model: b\n    training:\n      epochs: 3\n";

    #[test]
    fn finds_nested_keys_and_items() {
        assert_eq!(locate(Y, &["id"]), Some(1));
        assert_eq!(locate(Y, &["models", "b", "width"]), Some(7));
        assert_eq!(locate(Y, &["models", "a", "width"]), Some(5));
        assert_eq!(locate(Y, &["stages", "0", "model"]), Some(10));
        assert_eq!(locate(Y, &["stages", "1", "id"]), Some(11));
        assert_eq!(locate(Y, &["stages", "1", "training", "epochs"]), Some(14));
        // Unknown tail: deepest known line.
        assert_eq!(locate(Y, &["stages", "1", "nope"]), Some(11));
    }
}
