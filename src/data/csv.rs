//! Comma-separated lines as the datasets and teacher files around the reports write them
//! (AudioSet's segment lists, logits files): one small splitter, so every reader quotes alike.

/// Splits one CSV line: comma-separated fields, whitespace around each field dropped (AudioSet
/// writes `, `), a field in double quotes may hold commas and `""` for a quote (RFC 4180).
pub fn split_line(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut field = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') if chars.next_if_eq(&'"').is_some() => field.push('"'),
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => {
                        return Err(format!("unterminated quote in field {}", fields.len() + 1))
                    }
                }
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.peek().is_some_and(|c| *c != ',') {
                return Err(format!(
                    "text after the closing quote of field {}",
                    fields.len() + 1
                ));
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                if c == '"' {
                    return Err(format!(
                        "stray quote in field {}: quote the whole field",
                        fields.len() + 1
                    ));
                }
                field.push(c);
            }
            field.truncate(field.trim_end().len());
        }
        fields.push(field);
        if chars.next().is_none() {
            return Ok(fields);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_quotes_and_refusals() {
        let f = split_line(r#"--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088""#).unwrap();
        assert_eq!(
            f,
            ["--PJHxphWEs", "30.000", "40.000", "/m/09x0r,/t/dd00088"]
        );
        let f = split_line(r#"7,/m/09l8g,"Female speech, woman speaking""#).unwrap();
        assert_eq!(f, ["7", "/m/09l8g", "Female speech, woman speaking"]);
        assert_eq!(
            split_line(r#"a,"say ""hi""",,"#).unwrap(),
            ["a", "say \"hi\"", "", ""]
        );
        assert!(split_line(r#"a,"open"#).is_err());
        assert!(split_line(r#"a,"x"y"#).is_err());
        assert!(split_line(r#"a,b"c"#).is_err());
    }
}
