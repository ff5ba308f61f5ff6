//! Bounded, trimmed text fields: client input never reaches storage unbounded.

use serde::Serialize;

/// Text that has been trimmed and checked for length and control characters.
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
        Ok(BoundedText(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
