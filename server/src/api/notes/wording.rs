//! The words of a note written for people rather than clinicians: the language chosen, the
//! plain-language labels and sections a patient reads, shared by the note view and the printable
//! summary.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::api::ctx::Ctx;
use crate::api::error::ApiError;
use crate::domain::ids::ConsultationId;
use crate::domain::note::{FollowUp, NoteContent};
use crate::notes::{self, Entry, Verification};

/// The language of words written for people (labels, the summary).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Vi,
    En,
}

impl Lang {
    /// `?lang=` when given, else the first of `vi`/`en` in `Accept-Language` by preference,
    /// else Vietnamese (the platform's first language).
    pub(super) fn choose(ctx: &Ctx, query: Option<&str>) -> Result<Lang, ApiError> {
        match query {
            Some("vi") => return Ok(Lang::Vi),
            Some("en") => return Ok(Lang::En),
            Some(_) => return Err(ApiError::invalid_field("lang", "must be vi or en")),
            None => {}
        }
        let mut best: Option<(f32, Lang)> = None;
        for part in ctx.accept_language.as_deref().unwrap_or("").split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let primary = tag.split('-').next().unwrap_or("");
            let lang = match primary {
                "vi" => Lang::Vi,
                "en" => Lang::En,
                _ => continue,
            };
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        Ok(best.map(|(_, l)| l).unwrap_or(Lang::Vi))
    }

    pub(super) fn pick(self, vi: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }
}

/// One part of the note in plain words.
#[derive(Serialize)]
pub struct PlainSection {
    pub key: &'static str,
    pub label: &'static str,
    pub text: String,
}

#[derive(Serialize)]
pub struct PlainAddendum {
    pub label: &'static str,
    /// `failed`: `text` says so instead of what is stored.
    pub verification: Verification,
    pub text: String,
    pub signed_by: String,
    pub signed_at: DateTime<Utc>,
}

/// The note as its patient sees it: signed content only, in plain words.
#[derive(Serialize)]
pub struct PatientNote {
    pub consultation_id: ConsultationId,
    /// `signed`; `pending` while the doctor has not signed it yet; `verification_failed` when
    /// the stored note is not what the doctor signed (no sections are shown then).
    pub status: &'static str,
    /// The signed note's verification (absent while pending).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
    pub lang: Lang,
    pub title: &'static str,
    pub signed_by: Option<String>,
    pub signed_at: Option<DateTime<Utc>>,
    pub sections: Vec<PlainSection>,
    pub addenda: Vec<PlainAddendum>,
}

/// Plain-language labels, per section and language.
pub(super) fn plain_label(key: &str, lang: Lang) -> &'static str {
    match key {
        "subjective" => lang.pick("Điều bạn kể với bác sĩ", "What you told the doctor"),
        "objective" => lang.pick("Điều bác sĩ thấy khi khám", "What the doctor found"),
        "assessment" => lang.pick("Bác sĩ nhận định", "What the doctor thinks is going on"),
        "diagnoses" => lang.pick("Chẩn đoán", "Diagnosis"),
        "plan" => lang.pick("Kế hoạch điều trị", "The treatment plan"),
        "advice" => lang.pick("Lời khuyên", "Advice"),
        "follow_up" => lang.pick("Bước tiếp theo", "What happens next"),
        "addendum" => lang.pick("Bổ sung, đính chính", "Later addition or correction"),
        _ => "",
    }
}

pub(super) fn plain_follow_up(f: FollowUp, lang: Lang) -> &'static str {
    match f {
        FollowUp::None => lang.pick("Không cần khám lại.", "No further visit is needed."),
        FollowUp::Teleconsultation => lang.pick(
            "Sẽ hẹn thêm một buổi khám từ xa.",
            "Another video consultation will be arranged.",
        ),
        FollowUp::InPersonReferral => lang.pick(
            "Bạn sẽ được chuyển lên bệnh viện để khám trực tiếp.",
            "You will be referred to the hospital to be seen in person.",
        ),
        FollowUp::UrgentTransfer => lang.pick(
            "Bạn cần được chuyển viện ngay.",
            "You need to be transferred to hospital urgently.",
        ),
    }
}

/// Who reads a note's sections: the advice is written for the referring clinician, in their
/// words, and is not the patient's to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    Clinician,
    Patient,
}

/// The sections of a signed content, in reading order, with `label` naming each.
pub fn sections(
    content: &NoteContent,
    reader: Reader,
    label: impl Fn(&str) -> &'static str,
    follow_up: impl Fn(FollowUp) -> &'static str,
) -> Vec<PlainSection> {
    let mut out = Vec::new();
    let mut add = |key: &'static str, text: Option<String>| {
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            out.push(PlainSection {
                key,
                label: label(key),
                text,
            });
        }
    };
    add("subjective", content.subjective.clone());
    add("objective", content.objective.clone());
    add("assessment", content.assessment.clone());
    add(
        "diagnoses",
        Some(
            content
                .diagnoses
                .iter()
                .map(|d| format!("{} ({})", d.text, d.code.as_str()))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    );
    add("plan", content.plan.clone());
    if reader == Reader::Clinician {
        add("advice", content.advice.clone());
    }
    add(
        "follow_up",
        content.follow_up.map(|f| {
            let mut text = follow_up(f).to_string();
            if let Some(note) = &content.follow_up_note {
                text.push('\n');
                text.push_str(note);
            }
            text
        }),
    );
    out
}

/// The content of a signed note entry.
pub fn entry_content(entry: &Entry) -> Result<NoteContent, ApiError> {
    serde_json::from_value(entry.content.clone())
        .map_err(|e| ApiError::from(notes::NotesError::Corrupt(e)))
}

/// The text of an addendum entry.
pub fn addendum_text(entry: &Entry) -> String {
    entry.content["text"].as_str().unwrap_or("").to_string()
}

/// What is shown in place of an entry that fails verification.
pub fn unverified_text(lang: Lang) -> &'static str {
    lang.pick(
        "Mục này không xác minh được: nội dung đang lưu không khớp với nội dung bác sĩ đã ký, nên không được hiển thị.",
        "This entry failed verification: what is stored is not what the doctor signed, so it is not shown.",
    )
}
