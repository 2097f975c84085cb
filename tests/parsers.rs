//! The pure parsers (no disk access), as a fuzz harness calls them: `SHA256SUMS` text and data
//! manifest text. Bad input is an error, never a panic.

use ascrepro::data::manifest::Manifest;
use ascrepro_results::sums::parse_sums;
use std::path::Path;

const H: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ABCDEF";

#[test]
fn parse_sums_reads_both_sha256sum_modes_and_refuses_the_rest() {
    let ok = parse_sums(&format!("{H}  index.html\n\n{H} *results/a.csv\n")).unwrap();
    let paths: Vec<&str> = ok.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["index.html", "results/a.csv"]);
    assert_eq!(ok[0].hash, H);

    for (text, needle) in [
        (String::new(), "lists no files"),
        ("\n  \n".to_string(), "lists no files"),
        (format!("{H}  a\n{H}  a\n"), "twice"),
        (format!("{H}  ../x\n"), ".."),
        (format!("{H}  a/./b\n"), "`.`"),
        (format!("{H}  a//b\n"), "empty"),
        (format!("{H}  /etc/passwd\n"), "absolute"),
        (format!("{H}  a\\b\n"), "backslash"),
        (format!("{H}  SHA256SUMS\n"), "itself"),
        (format!("{}  a\n", &H[1..]), "malformed hash"),
        ("no-separator\n".to_string(), "malformed line"),
        (format!("{H}\ta\n"), "malformed line"),
        ("é  a\n".to_string(), "malformed"),
    ] {
        let e = parse_sums(&text).unwrap_err();
        assert!(e.to_string().contains(needle), "{text:?}: {e}");
    }
    let e = parse_sums(&format!("{H}  a\n{H}  a\n")).unwrap_err();
    assert_eq!(e.line, Some(2));
}

#[test]
fn manifest_parse_checks_text_without_the_disk() {
    let origin = Path::new("fuzz-input.yaml");
    let sha = "a".repeat(64);
    let text = format!(
        "dataset: d\nlayout: tau2022-mobile\nfiles:\n- path: audio/a.wav\n  size: 3\n  sha256: {sha}\n"
    );
    let m = Manifest::parse(origin, &text).unwrap();
    assert_eq!(m.file_count(), 1);
    for bad in [
        text.replace("audio/a.wav", "../a.wav"),
        text.replace("size: 3", "size: -3"),
        text.replace(&sha, "xyz"),
        format!("{text}- path: audio/a.wav\n  size: 3\n  sha256: {sha}\n"),
        "[".to_string(),
        String::new(),
    ] {
        let e = Manifest::parse(origin, &bad).unwrap_err().to_string();
        assert!(e.contains("fuzz-input.yaml"), "{bad:?}: {e}");
    }
}
