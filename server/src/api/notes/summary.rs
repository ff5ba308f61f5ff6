//! The printable consultation summary: one HTML page for centres that keep paper copies.
//!
//! The page's only style is one fixed `<style>` block; the response's own Content-Security-Policy
//! allows exactly that block by its SHA-256 (the site-wide policy forbids inline styles), and
//! nothing else: no script, no remote resource.

use std::fmt::Write;
use std::sync::OnceLock;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::wording::{
    Lang, Reader, addendum_text, entry_content, plain_follow_up, plain_label, sections,
    unverified_text,
};
use crate::api::error::ApiError;
use crate::domain::consultation::Consultation;
use crate::domain::note::{EntryKind, FollowUp};
use crate::notes::Entry;
use crate::scheduling::directory::{Clinician, Patient};

/// Who the page is written for: clinical headings for clinicians, plain words for the patient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    Clinician,
    Patient,
}

pub struct Summary<'a> {
    pub lang: Lang,
    pub audience: Audience,
    pub consultation: &'a Consultation,
    pub patient: &'a Patient,
    pub clinician: &'a Clinician,
    pub referring: Option<&'a Clinician>,
    pub entries: &'a [Entry],
}

const STYLE: &str = "body{font-family:\"Noto Sans\",\"Segoe UI\",Arial,sans-serif;max-width:48rem;\
margin:2rem auto;padding:0 1rem;color:#111;line-height:1.45}\
h1{font-size:1.4rem;margin:0 0 .25rem}\
h2{font-size:1.05rem;margin:1.25rem 0 .35rem;border-bottom:1px solid #999}\
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:1rem 0}\
dl.meta dt{font-weight:600}dl.meta dd{margin:0}\
.text{white-space:pre-wrap;margin:0}\
.sig{margin-top:1rem;font-size:.9rem;border-top:1px solid #999;padding-top:.5rem}\
.hash{font-family:monospace;word-break:break-all;font-size:.8rem}\
.addendum{margin-top:1rem;padding-left:.75rem;border-left:3px solid #999}\
.verification-failed{margin-top:1rem;padding:.5rem .75rem;border:2px solid #b00020;color:#b00020}\
@media print{body{margin:0;max-width:none;font-size:11pt}section,.addendum,.sig{break-inside:avoid}\
@page{size:A4;margin:15mm}}";

/// The policy of a summary response: the one style block above, nothing else.
pub fn content_security_policy() -> String {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; frame-ancestors 'none'; \
             base-uri 'none'; form-action 'none'"
        )
    })
    .clone()
}

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn clinical_label(key: &str, lang: Lang) -> &'static str {
    match key {
        "subjective" => lang.pick("Bệnh sử, triệu chứng (S)", "Subjective"),
        "objective" => lang.pick("Khám thực thể (O)", "Objective"),
        "assessment" => lang.pick("Đánh giá (A)", "Assessment"),
        "diagnoses" => lang.pick("Chẩn đoán (ICD-10)", "Diagnoses (ICD-10)"),
        "plan" => lang.pick("Kế hoạch (P)", "Plan"),
        "advice" => lang.pick(
            "Ý kiến tư vấn cho cơ sở gửi",
            "Advice for the referring clinician",
        ),
        "follow_up" => lang.pick("Hướng xử trí tiếp theo", "Follow-up"),
        "addendum" => lang.pick("Phụ lục bổ sung", "Addendum"),
        _ => "",
    }
}

fn clinical_follow_up(f: FollowUp, lang: Lang) -> &'static str {
    match f {
        FollowUp::None => lang.pick("Không cần theo dõi thêm", "None"),
        FollowUp::Teleconsultation => {
            lang.pick("Hội chẩn từ xa lần nữa", "Another teleconsultation")
        }
        FollowUp::InPersonReferral => lang.pick(
            "Chuyển khám trực tiếp tại bệnh viện tuyến trên",
            "Refer in person to the hub",
        ),
        FollowUp::UrgentTransfer => lang.pick("Chuyển viện cấp cứu", "Urgent transfer"),
    }
}

fn label(audience: Audience, key: &str, lang: Lang) -> &'static str {
    match audience {
        Audience::Clinician => clinical_label(key, lang),
        Audience::Patient => plain_label(key, lang),
    }
}

fn follow_up(audience: Audience, f: FollowUp, lang: Lang) -> &'static str {
    match audience {
        Audience::Clinician => clinical_follow_up(f, lang),
        Audience::Patient => plain_follow_up(f, lang),
    }
}

/// A time as read on paper at the consulted hospital: its local time in the reader's way of
/// writing dates, and the zone in words with its offset (`03/12/2026 16:25 (giờ Việt Nam,
/// UTC+7)`, `3 December 2026, 16:25 (Vietnam time, UTC+7)`).
fn local(s: &Summary, at: chrono::DateTime<chrono::Utc>) -> String {
    let zone = s.clinician.zone();
    let wall = zone.to_local(at);
    let offset = (wall - at.naive_utc()).num_minutes();
    let sign = if offset < 0 { '-' } else { '+' };
    let (hours, minutes) = (offset.abs() / 60, offset.abs() % 60);
    let utc = if minutes == 0 {
        format!("UTC{sign}{hours}")
    } else {
        format!("UTC{sign}{hours}:{minutes:02}")
    };
    let when = match s.lang {
        Lang::Vi => wall.format("%d/%m/%Y %H:%M").to_string(),
        Lang::En => wall.format("%-d %B %Y, %H:%M").to_string(),
    };
    match zone.name() {
        "Asia/Ho_Chi_Minh" | "Asia/Saigon" => format!(
            "{when} ({}, {utc})",
            s.lang.pick("giờ Việt Nam", "Vietnam time")
        ),
        _ => format!("{when} ({utc})"),
    }
}

fn signature(out: &mut String, s: &Summary, entry: &Entry) {
    let lang = s.lang;
    let _ = write!(
        out,
        "<p class=\"sig\">{} {} — {} {}",
        lang.pick("Ký bởi", "Signed by"),
        esc(&entry.signer_name),
        lang.pick("lúc", "at"),
        esc(&local(s, entry.signed_at)),
    );
    if s.audience == Audience::Clinician {
        let _ = write!(
            out,
            "<br><span class=\"hash\">SHA-256: {}</span>",
            esc(&entry.content_hash)
        );
    }
    out.push_str("</p>\n");
}

/// The whole page.
pub fn render(s: &Summary) -> Result<String, ApiError> {
    let lang = s.lang;
    let c = s.consultation;
    let mut out = String::with_capacity(8 * 1024);
    let title = match s.audience {
        Audience::Clinician => lang.pick("Tóm tắt buổi hội chẩn", "Consultation summary"),
        Audience::Patient => lang.pick("Kết quả buổi khám", "Your consultation"),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} #{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        lang.pick("vi", "en"),
        esc(title),
        c.id,
        esc(title),
    );
    out.push_str("<dl class=\"meta\">\n");
    let mut meta = |k: &str, v: &str| {
        let _ = writeln!(out, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
    };
    meta(lang.pick("Bệnh nhân", "Patient"), &s.patient.full_name);
    meta(
        lang.pick("Ngày sinh", "Date of birth"),
        &s.patient.date_of_birth.to_string(),
    );
    meta(lang.pick("Thời gian", "Date"), &local(s, c.start_at));
    meta(
        lang.pick("Bác sĩ chuyên khoa", "Specialist"),
        &format!("{} — {}", s.clinician.full_name, s.clinician.facility_name),
    );
    if let Some(r) = s.referring {
        meta(
            lang.pick("Bác sĩ cơ sở gửi", "Referring clinician"),
            &format!("{} — {}", r.full_name, r.facility_name),
        );
    }
    meta(lang.pick("Lý do khám", "Reason"), &c.reason);
    out.push_str("</dl>\n");
    for entry in s.entries {
        if !entry.verified() {
            let _ = write!(
                out,
                "<div class=\"verification-failed\">\n<h2>{}</h2>\n<p class=\"text\">{}</p>\n",
                esc(if entry.kind == EntryKind::Note {
                    lang.pick("Ghi chú buổi khám", "Consultation note")
                } else {
                    label(s.audience, "addendum", lang)
                }),
                esc(unverified_text(lang))
            );
            signature(&mut out, s, entry);
            out.push_str("</div>\n");
        } else if entry.kind == EntryKind::Note {
            let content = entry_content(entry)?;
            let reader = match s.audience {
                Audience::Clinician => Reader::Clinician,
                Audience::Patient => Reader::Patient,
            };
            for section in sections(
                &content,
                reader,
                |k| label(s.audience, k, lang),
                |f| follow_up(s.audience, f, lang),
            ) {
                let _ = write!(
                    out,
                    "<section>\n<h2>{}</h2>\n<p class=\"text\">{}</p>\n</section>\n",
                    esc(section.label),
                    esc(&section.text)
                );
            }
            signature(&mut out, s, entry);
        } else {
            let _ = write!(
                out,
                "<div class=\"addendum\">\n<h2>{} {}</h2>\n<p class=\"text\">{}</p>\n",
                esc(label(s.audience, "addendum", lang)),
                entry.seq - 1,
                esc(&addendum_text(entry))
            );
            signature(&mut out, s, entry);
            out.push_str("</div>\n");
        }
    }
    out.push_str("</body>\n</html>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn policy_allows_only_the_style_block() {
        let csp = content_security_policy();
        assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(!csp.contains("unsafe-inline"));
    }
}
