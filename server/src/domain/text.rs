//! Bounded, trimmed text fields: client input never reaches storage unbounded, and never with
//! characters that make it display differently from what it says.

use serde::Serialize;

/// Text that has been trimmed and checked for length, control characters and bidirectional
/// controls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct BoundedText(String);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters (got {got})")]
    TooLong { max: usize, got: usize },
    #[error("must not contain control characters")]
    ControlCharacters,
    #[error(
        "must not contain bidirectional control characters (U+202A to U+202E, U+2066 to U+2069): they make text display in another order than it was written; remove them (they often come along with copied text)"
    )]
    BidiControl,
}

/// The embeddings, overrides and isolates (and their terminators) of the Unicode bidirectional
/// algorithm: each reorders everything after it up to the end of its paragraph, which is how
/// "Trojan Source" text shows one thing and says another. The implicit marks LRM, RLM and ALM
/// (U+200E, U+200F, U+061C) are allowed: they only attach a direction to neighbouring neutral
/// characters, cannot reorder a span of letters, and are needed to write some mixed-direction
/// names correctly.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

impl BoundedText {
    /// Parses `raw`, allowing newlines only when `multiline`.
    pub fn parse(raw: &str, max_chars: usize, multiline: bool) -> Result<Self, TextError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(TextError::Empty);
        }
        let got = trimmed.chars().count();
        if got > max_chars {
            return Err(TextError::TooLong {
                max: max_chars,
                got,
            });
        }
        let bad = trimmed
            .chars()
            .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')));
        if bad {
            return Err(TextError::ControlCharacters);
        }
        if trimmed.chars().any(is_bidi_control) {
            return Err(TextError::BidiControl);
        }
        Ok(BoundedText(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// `name` as a search compares it: lowercase, without diacritics, `đ` as `d`, runs of white
/// space as one space. People type Vietnamese names without their marks ("nguyen van an" for
/// "Nguyễn Văn An"), and SQLite's `lower()` and `LIKE` fold ASCII only, so names are folded here,
/// once, and stored folded (`patients.search_name`) beside the name itself.
pub fn fold_for_search(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    let folded: String = name
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        // `đ` is a letter of its own, not `d` with a mark: NFD leaves it whole.
        .map(|c| if c == 'đ' { 'd' } else { c })
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_drops_marks_case_and_extra_space() {
        assert_eq!(fold_for_search("Nguyễn Văn An"), "nguyen van an");
        assert_eq!(fold_for_search("  ĐẶNG   Thị  Đào "), "dang thi dao");
        assert_eq!(fold_for_search("Lò Thị Mai"), "lo thi mai");
        assert_eq!(fold_for_search("Hoàng Ngọc Ưng"), "hoang ngoc ung");
        // Typed decomposed (a mark after its letter) or precomposed, the same.
        assert_eq!(
            fold_for_search("Nguye\u{302}\u{303}n"),
            fold_for_search("Nguyễn")
        );
        assert_eq!(fold_for_search("\u{301}\u{300}"), "");
    }

    #[test]
    fn trims_and_bounds() {
        assert_eq!(
            BoundedText::parse("  đau ngực  ", 20, false).map(BoundedText::into_string),
            Ok("đau ngực".to_string())
        );
        assert_eq!(BoundedText::parse("   ", 20, false), Err(TextError::Empty));
        assert_eq!(
            BoundedText::parse("ưưưư", 3, false),
            Err(TextError::TooLong { max: 3, got: 4 })
        );
        assert_eq!(
            BoundedText::parse("a\u{0}b", 10, false),
            Err(TextError::ControlCharacters)
        );
        assert!(BoundedText::parse("a\nb", 10, true).is_ok());
        assert!(BoundedText::parse("a\nb", 10, false).is_err());
    }

    #[test]
    fn bidirectional_controls_are_refused_but_marks_are_not() {
        for c in ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}') {
            assert_eq!(
                BoundedText::parse(&format!("Lò Thị {c}iaM"), 50, true),
                Err(TextError::BidiControl),
                "U+{:04X}",
                c as u32
            );
        }
        for mark in ['\u{200E}', '\u{200F}', '\u{061C}'] {
            assert!(BoundedText::parse(&format!("Mai {mark}مريم"), 50, false).is_ok());
        }
        assert!(BoundedText::parse("\u{202E}", 50, false).is_err());
    }
}
