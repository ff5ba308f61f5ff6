//! The encounter note: its content (SOAP sections, diagnoses, advice, follow-up), the rules a
//! note must meet before it is signed, and the canonical form whose SHA-256 a signature records.
//!
//! Canonical form of a signed document (what `content_hash` covers): the document as a JSON
//! object with every object's keys sorted by code point, no insignificant whitespace, strings in
//! UTF-8 escaping only `"`, `\` and control characters (`\b \f \n \r \t`, others as `\u00xx`),
//! integers in plain decimal, absent optional values written as `null`. For the values a
//! document holds (objects, arrays, strings, integers, null) this is RFC 8785 (JCS), so anyone
//! can recompute the hash from the stored document with a JCS library; `content_hash` is the
//! lowercase hex SHA-256 of those bytes.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::consultation::text_enum;

/// Longest SOAP section, advice or addendum, in characters.
pub const MAX_SECTION: usize = 8000;
/// Longest free text of one diagnosis.
pub const MAX_DIAGNOSIS_TEXT: usize = 500;
/// Most diagnoses on one note.
pub const MAX_DIAGNOSES: usize = 20;
/// Longest note on the follow-up recommendation.
pub const MAX_FOLLOW_UP_NOTE: usize = 1000;
/// The version tag inside every signed document, so the format can evolve without ambiguity.
pub const DOCUMENT_FORMAT: &str = "telehealth-note/1";

text_enum!(
    /// Where a consultation's note stands: a draft that may still change, or signed for good.
    NoteStatus {
        Draft => "draft",
        Signed => "signed",
    }
);

text_enum!(
    /// A signed entry: the note itself (`seq` 1), or an addendum that amends it.
    EntryKind {
        Note => "note",
        Addendum => "addendum",
    }
);

/// What the specialist recommends after the consultation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUp {
    None,
    Teleconsultation,
    InPersonReferral,
    UrgentTransfer,
}

impl FollowUp {
    pub const ALL: [FollowUp; 4] = [
        FollowUp::None,
        FollowUp::Teleconsultation,
        FollowUp::InPersonReferral,
        FollowUp::UrgentTransfer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FollowUp::None => "none",
            FollowUp::Teleconsultation => "teleconsultation",
            FollowUp::InPersonReferral => "in_person_referral",
            FollowUp::UrgentTransfer => "urgent_transfer",
        }
    }

    pub fn parse(s: &str) -> Option<FollowUp> {
        FollowUp::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// An ICD-10 code checked for shape (not against the catalogue): a letter, two digits, and
/// optionally a dot and one to four letters or digits (`I10`, `E11.9`, `S72.001A`). Stored in
/// upper case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IcdCode(String);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be an ICD-10 code: a letter, two digits, then optionally a dot and 1 to 4 letters or digits (e.g. I10, E11.9, S72.001A)"
)]
pub struct IcdCodeError;

impl IcdCode {
    pub fn parse(raw: &str) -> Result<IcdCode, IcdCodeError> {
        let code = raw.trim().to_ascii_uppercase();
        let b = code.as_bytes();
        let head = b.len() >= 3
            && b[0].is_ascii_uppercase()
            && b[1].is_ascii_digit()
            && b[2].is_ascii_digit();
        let tail_ok = match b.get(3..) {
            Some([]) | None => true,
            Some([b'.', rest @ ..]) => {
                (1..=4).contains(&rest.len()) && rest.iter().all(u8::is_ascii_alphanumeric)
            }
            Some(_) => false,
        };
        if head && tail_ok {
            Ok(IcdCode(code))
        } else {
            Err(IcdCodeError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub code: IcdCode,
    pub text: String,
}

/// A note's content, already bounded and checked. Drafts may leave anything out; [`ready_to_sign`]
/// says what a signature needs.
///
/// [`ready_to_sign`]: NoteContent::ready_to_sign
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteContent {
    pub subjective: Option<String>,
    pub objective: Option<String>,
    pub assessment: Option<String>,
    pub plan: Option<String>,
    pub diagnoses: Vec<Diagnosis>,
    /// What the specialist advises the referring clinician to do.
    pub advice: Option<String>,
    pub follow_up: Option<FollowUp>,
    pub follow_up_note: Option<String>,
}

impl NoteContent {
    /// The fields a signed note must have, with why; empty when it may be signed. A
    /// teleconsultation (one with a referring clinician) also needs the advice for them.
    pub fn ready_to_sign(
        &self,
        has_referring_clinician: bool,
    ) -> Vec<(&'static str, &'static str)> {
        let mut missing = Vec::new();
        if self.assessment.is_none() {
            missing.push(("assessment", "a signed note needs the assessment"));
        }
        if self.plan.is_none() {
            missing.push(("plan", "a signed note needs the plan"));
        }
        if self.follow_up.is_none() {
            missing.push((
                "follow_up",
                "a signed note needs a follow-up recommendation (none, teleconsultation, in_person_referral or urgent_transfer)",
            ));
        }
        if has_referring_clinician && self.advice.is_none() {
            missing.push((
                "advice",
                "a teleconsultation's note needs the advice for the referring clinician",
            ));
        }
        missing
    }
}

/// The canonical bytes of `value` (see the module documentation).
pub fn canonical_json<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    // serde_json's map is ordered by key (the `preserve_order` feature is off in this tree, and
    // a unit test below fails if it is ever turned on), so going through `Value` sorts every
    // object; `to_string` writes no whitespace and escapes as JCS does.
    let value = serde_json::to_value(value)?;
    serde_json::to_string(&value)
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icd10_shapes() {
        for ok in ["I10", "E11.9", "S72.001A", "j45.90", " U07.1 ", "Z00.0000"] {
            assert!(IcdCode::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(IcdCode::parse("e11.9").map(|c| c.0), Ok("E11.9".into()));
        for bad in [
            "",
            "I1",
            "110",
            "II10",
            "I10.",
            "I10.12345",
            "I10-1",
            "I10.9 x",
            "Ĩ10",
            "I10..1",
            "I1O",
        ] {
            assert!(IcdCode::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn canonical_form_sorts_keys_and_has_no_whitespace() {
        let v = serde_json::json!({"b": 1, "a": {"z": "x\ny", "c": null}, "é": "đ", "A": [2, 1]});
        assert_eq!(
            canonical_json(&v).expect("serialises"),
            "{\"A\":[2,1],\"a\":{\"c\":null,\"z\":\"x\\ny\"},\"b\":1,\"é\":\"đ\"}"
        );
        assert_eq!(
            canonical_json(&serde_json::json!({"c": "\u{1}"})).expect("serialises"),
            "{\"c\":\"\\u0001\"}"
        );
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn signing_needs_the_essentials() {
        let empty = NoteContent::default();
        let fields: Vec<&str> = empty.ready_to_sign(true).iter().map(|m| m.0).collect();
        assert_eq!(fields, ["assessment", "plan", "follow_up", "advice"]);
        let done = NoteContent {
            assessment: Some("a".into()),
            plan: Some("p".into()),
            follow_up: Some(FollowUp::None),
            ..NoteContent::default()
        };
        assert!(done.ready_to_sign(false).is_empty());
        assert_eq!(done.ready_to_sign(true).len(), 1);
    }
}
