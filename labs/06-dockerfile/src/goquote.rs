//! Go's `strconv.Quote`, so that `parse --dump` prints strings exactly as buildkit's
//! `Node.Dump()` does with `%q`.
//!
//! The rules: the string goes in double quotes; `"` and `\` get a backslash; a character that
//! Go calls *printable* (a letter, mark, number, punctuation or symbol, or the ASCII space) is
//! kept as it is, so `♥` and `한국어` stay readable; the seven C escapes `\a \b \f \n \r \t \v`
//! are used where they apply; any other character below U+0020, and DEL, is `\xNN`; any other
//! non-printable character is `\uNNNN`, or `\UNNNNNNNN` above the Basic Multilingual Plane.
//! Hex digits are lower case.

use std::fmt::Write as _;

use unicode_general_category::{get_general_category, GeneralCategory};

/// `strconv.Quote(s)`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_print(c) => out.push(c),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// `fmt.Sprintf("%q", []string{...})`: `["a" "b"]`.
pub fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `strconv.IsPrint`: categories L, M, N, P and S, plus the ASCII space.
pub fn is_print(c: char) -> bool {
    use GeneralCategory::*;
    if c == ' ' {
        return true;
    }
    matches!(
        get_general_category(c),
        UppercaseLetter
            | LowercaseLetter
            | TitlecaseLetter
            | ModifierLetter
            | OtherLetter
            | NonspacingMark
            | SpacingMark
            | EnclosingMark
            | DecimalNumber
            | LetterNumber
            | OtherNumber
            | ConnectorPunctuation
            | DashPunctuation
            | OpenPunctuation
            | ClosePunctuation
            | InitialPunctuation
            | FinalPunctuation
            | OtherPunctuation
            | MathSymbol
            | CurrencySymbol
            | ModifierSymbol
            | OtherSymbol
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each expected value is what Go 1.22's strconv.Quote returns.
    #[test]
    fn ascii_and_c_escapes() {
        assert_eq!(quote(""), r#""""#);
        assert_eq!(quote(r#"a "b" \c"#), r#""a \"b\" \\c""#);
        assert_eq!(quote("\u{7}\u{8}\u{c}\n\r\t\u{b}"), r#""\a\b\f\n\r\t\v""#);
        assert_eq!(quote("\0\u{1b}\u{7f}"), r#""\x00\x1b\x7f""#);
    }

    #[test]
    fn printable_unicode_is_kept() {
        assert_eq!(quote("♥ ☃ 한국어 é"), "\"♥ ☃ 한국어 é\"");
    }

    #[test]
    fn non_printable_unicode_is_escaped() {
        // NO-BREAK SPACE is a space but not ASCII space; SOFT HYPHEN and ZERO WIDTH SPACE are
        // format characters; U+0085 is a C1 control; U+E000 is private use.
        assert_eq!(
            quote("\u{a0}\u{ad}\u{200b}\u{85}\u{e000}"),
            r#""\u00a0\u00ad\u200b\u0085\ue000""#
        );
        assert_eq!(quote("\u{f0000}"), r#""\U000f0000""#);
        assert_eq!(quote("😀"), "\"😀\"");
    }

    #[test]
    fn lists_like_go_percent_q() {
        assert_eq!(
            quote_list(&["--from=a".into(), "--chown=1:1".into()]),
            r#"["--from=a" "--chown=1:1"]"#
        );
    }
}
