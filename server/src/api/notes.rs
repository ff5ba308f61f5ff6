//! Encounter note endpoints: the note of a consultation (draft, sign, addenda, history), the
//! printable summary, and a patient's timeline.
//!
//! Who sees what: the consultation's clinicians (consulted and referring) read everything,
//! drafts and history included, and write the draft and addenda; only the consulted clinician
//! signs. The patient reads the signed note and its addenda in plain words (Vietnamese or
//! English), never a draft. Schedulers see the booking but not the note (403); anyone who may
//! not see the consultation gets 404. Addenda are signed the moment they are posted: a
//! correction is one act, so it has no draft of its own.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use warp::http::{HeaderValue, StatusCode, header};

use super::access::{consultation_access, patient_access};
use super::ctx::Ctx;
use super::directory::{NoQuery, page};
use super::error::ApiError;
use super::reply::{ApiResult, created, ok};
use super::validate::Validator;
use crate::audit::Outcome;
use crate::auth::Principal;
use crate::auth::policy;
use crate::domain::code::ErrorCode;
use crate::domain::consultation::Consultation;
use crate::domain::consultation::Status;
use crate::domain::ids::{ClinicianId, ConsultationId, PatientId};
use crate::domain::note::{
    Diagnosis, EntryKind, FollowUp, IcdCode, MAX_DIAGNOSES, MAX_DIAGNOSIS_TEXT, MAX_FOLLOW_UP_NOTE,
    MAX_SECTION, NoteContent, NoteStatus,
};
use crate::domain::text::BoundedText;
use crate::notes::passkeys::SigningAnswer;
use crate::notes::{self, Entry, NoteRow, Revision, SignAs};
use crate::scheduling::directory;

mod summary;
mod wording;

use wording::{
    Lang, PatientNote, PlainAddendum, Reader, addendum_text, entry_content, plain_follow_up,
    plain_label, sections, unverified_text,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LangQuery {
    lang: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiagnosisBody {
    code: String,
    text: String,
}

/// A draft's content as sent: every field may be left out or empty.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContentBody {
    #[serde(default)]
    subjective: Option<String>,
    #[serde(default)]
    objective: Option<String>,
    #[serde(default)]
    assessment: Option<String>,
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    diagnoses: Vec<DiagnosisBody>,
    #[serde(default)]
    advice: Option<String>,
    #[serde(default)]
    follow_up: Option<String>,
    #[serde(default)]
    follow_up_note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftBody {
    /// The version the client last read (0 when there is no note yet).
    version: i32,
    content: ContentBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignBody {
    version: i32,
    /// The passkey's answer to the signing challenge; required once the signer has a passkey.
    #[serde(default)]
    passkey: Option<SigningAnswer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignChallengeBody {
    version: i32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddendumBody {
    text: String,
    #[serde(default)]
    passkey: Option<SigningAnswer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddendumChallengeBody {
    text: String,
}

/// An optional multi-line section: absent or blank is `None`, anything else bounded.
fn section(v: &mut Validator, field: &str, raw: Option<String>, max: usize) -> Option<String> {
    let raw = raw?;
    if raw.trim().is_empty() {
        return None;
    }
    v.check(field, BoundedText::parse(&raw, max, true))
        .map(BoundedText::into_string)
}

fn parse_content(v: &mut Validator, body: ContentBody) -> NoteContent {
    if body.diagnoses.len() > MAX_DIAGNOSES {
        v.fail(
            "diagnoses",
            format!(
                "at most {MAX_DIAGNOSES} diagnoses (got {})",
                body.diagnoses.len()
            ),
        );
    }
    let mut diagnoses = Vec::new();
    for (i, d) in body.diagnoses.into_iter().take(MAX_DIAGNOSES).enumerate() {
        let code = v.check(&format!("diagnoses[{i}].code"), IcdCode::parse(&d.code));
        let text = v.check(
            &format!("diagnoses[{i}].text"),
            BoundedText::parse(&d.text, MAX_DIAGNOSIS_TEXT, false),
        );
        if let (Some(code), Some(text)) = (code, text) {
            diagnoses.push(Diagnosis {
                code,
                text: text.into_string(),
            });
        }
    }
    let follow_up = match body.follow_up.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(f) => {
            let parsed = FollowUp::parse(f);
            if parsed.is_none() {
                v.fail(
                    "follow_up",
                    "must be none, teleconsultation, in_person_referral or urgent_transfer",
                );
            }
            parsed
        }
    };
    NoteContent {
        subjective: section(v, "subjective", body.subjective, MAX_SECTION),
        objective: section(v, "objective", body.objective, MAX_SECTION),
        assessment: section(v, "assessment", body.assessment, MAX_SECTION),
        plan: section(v, "plan", body.plan, MAX_SECTION),
        diagnoses,
        advice: section(v, "advice", body.advice, MAX_SECTION),
        follow_up,
        follow_up_note: section(v, "follow_up_note", body.follow_up_note, MAX_FOLLOW_UP_NOTE),
    }
}

fn check_version(v: &mut Validator, version: i32) {
    if version < 0 {
        v.fail(
            "version",
            "must be 0 (no note yet) or the version last read",
        );
    }
}

/// Every note request is recorded against the note, with the consultation's id.
fn audit_note(ctx: &Ctx) {
    ctx.audit(|n| n.record_type = Some("encounter_note".to_string()));
}

/// Drafts and signatures belong to consultations that happen (or happened).
fn check_open(c: &Consultation) -> Result<(), ApiError> {
    let open = matches!(
        c.status,
        Status::Booked | Status::InProgress | Status::Completed
    );
    if open {
        Ok(())
    } else {
        Err(ApiError::conflict(
            ErrorCode::ConsultationNotOpen,
            format!(
                "a note is written for a booked, in-progress or completed consultation; this one is {}",
                c.status
            ),
        ))
    }
}

/// The note as the consultation's clinicians see it.
#[derive(Serialize)]
struct ClinicianNote {
    consultation_id: ConsultationId,
    patient_id: PatientId,
    /// `none` (nothing saved yet), `draft` or `signed`.
    status: &'static str,
    /// The draft version to send with the next save or the signature (0: nothing saved yet).
    version: i32,
    /// The latest draft, while the note is a draft.
    draft: Option<Revision>,
    /// The signed note and its addenda, in order.
    entries: Vec<Entry>,
    created_at: Option<DateTime<Utc>>,
    updated_at: Option<DateTime<Utc>>,
}

fn status_label(note: Option<&NoteRow>) -> &'static str {
    note.map_or("none", |n| n.status.as_str())
}

async fn clinician_view(
    ctx: &Ctx,
    c: &Consultation,
    note: Option<NoteRow>,
) -> Result<ClinicianNote, ApiError> {
    let status = status_label(note.as_ref());
    let Some(note) = note else {
        return Ok(ClinicianNote {
            consultation_id: c.id,
            patient_id: c.patient_id,
            status,
            version: 0,
            draft: None,
            entries: Vec::new(),
            created_at: None,
            updated_at: None,
        });
    };
    let draft = if note.status == NoteStatus::Draft {
        Some(notes::revision(&ctx.state.db, note.id, note.version).await?)
    } else {
        None
    };
    Ok(ClinicianNote {
        consultation_id: c.id,
        patient_id: c.patient_id,
        status,
        version: note.version,
        draft,
        entries: load_entries(ctx, &[note.id]).await?,
        created_at: Some(note.created_at),
        updated_at: Some(note.updated_at),
    })
}

/// [`ClinicianNote`] of a note as the write that changed it left it (see [`notes::Written`]).
fn clinician_note(c: &Consultation, w: notes::Written) -> ClinicianNote {
    ClinicianNote {
        consultation_id: c.id,
        patient_id: c.patient_id,
        status: w.note.status.as_str(),
        version: w.note.version,
        draft: w.draft,
        entries: w.entries,
        created_at: Some(w.note.created_at),
        updated_at: Some(w.note.updated_at),
    }
}

fn patient_view(
    consultation: ConsultationId,
    entries: &[Entry],
    lang: Lang,
) -> Result<PatientNote, ApiError> {
    let title = lang.pick("Kết quả buổi khám", "Your consultation");
    let Some(original) = entries.iter().find(|e| e.kind == EntryKind::Note) else {
        return Ok(PatientNote {
            consultation_id: consultation,
            status: "pending",
            verification: None,
            lang,
            title,
            signed_by: None,
            signed_at: None,
            sections: Vec::new(),
            addenda: Vec::new(),
        });
    };
    let addenda = entries
        .iter()
        .filter(|e| e.kind == EntryKind::Addendum)
        .map(|e| PlainAddendum {
            label: plain_label("addendum", lang),
            verification: e.verification,
            text: if e.verified() {
                addendum_text(e)
            } else {
                unverified_text(lang).to_string()
            },
            signed_by: e.signer_name.clone(),
            signed_at: e.signed_at,
        })
        .collect();
    if !original.verified() {
        // Nothing of what is stored is shown as the doctor's words.
        return Ok(PatientNote {
            consultation_id: consultation,
            status: "verification_failed",
            verification: Some(original.verification),
            lang,
            title,
            signed_by: None,
            signed_at: Some(original.signed_at),
            sections: Vec::new(),
            addenda,
        });
    }
    let content = entry_content(original)?;
    Ok(PatientNote {
        consultation_id: consultation,
        status: "signed",
        verification: Some(original.verification),
        lang,
        title,
        signed_by: Some(original.signer_name.clone()),
        signed_at: Some(original.signed_at),
        sections: sections(
            &content,
            Reader::Patient,
            |k| plain_label(k, lang),
            |f| plain_follow_up(f, lang),
        ),
        addenda,
    })
}

/// The signed entries of `note_ids`, verified; each that fails is recorded in the audit trail
/// before it is answered (the read counted it in `note_verification_failures_total`).
async fn load_entries(ctx: &Ctx, note_ids: &[i64]) -> Result<Vec<Entry>, ApiError> {
    let entries = notes::entries(&ctx.state.db, &ctx.state.notes, note_ids).await?;
    for e in entries.iter().filter(|e| !e.verified()) {
        // Ids and a fixed reason only: never the entry's text.
        tracing::warn!(
            entry = e.id,
            consultation = e.consultation_id.0,
            reason = e.verification_failure.unwrap_or(""),
            "a signed note entry failed verification"
        );
        ctx.record_event(
            "note_verification_failed",
            "note_entry",
            e.id.to_string(),
            e.patient_id,
            Outcome::Failed,
        )
        .await?;
    }
    Ok(entries)
}

/// The caller's clinician id, which [`policy::can_write_note`] has made sure of.
fn me(p: &Principal) -> Result<ClinicianId, ApiError> {
    p.as_clinician().ok_or_else(ApiError::internal)
}

/// GET /api/v1/consultations/{id}/note
pub async fn get(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    audit_note(&ctx);
    let q: LangQuery = ctx.query()?;
    let lang = Lang::choose(&ctx, q.lang.as_deref())?;
    let found = consultation_access(&ctx, id).await?;
    let (p, c) = (&found.principal, &found.consultation);
    if policy::can_write_note(p, c) {
        let note = notes::find(&ctx.state.db, id).await?;
        return ok(&clinician_view(&ctx, c, note).await?);
    }
    if !policy::can_read_signed_note(p, &found.facts()) {
        return Err(ApiError::forbidden(
            "read clinical notes (they are for the consultation's clinicians and its patient)",
        ));
    }
    if p.as_clinician().is_some() && p.only_consultation.is_none() {
        // The patient's care centre, or a clinician who broke the glass: the signed record, never
        // a draft.
        let note = notes::find(&ctx.state.db, id)
            .await?
            .filter(|n| n.status == NoteStatus::Signed);
        return ok(&clinician_view(&ctx, c, note).await?);
    }
    let entries = match notes::find(&ctx.state.db, id).await? {
        Some(n) if n.status == NoteStatus::Signed => load_entries(&ctx, &[n.id]).await?,
        _ => Vec::new(),
    };
    ok(&patient_view(id, &entries, lang)?)
}

/// PUT /api/v1/consultations/{id}/note
pub async fn save_draft(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    audit_note(&ctx);
    let body: DraftBody = ctx.json()?;
    let mut v = Validator::default();
    check_version(&mut v, body.version);
    let content = parse_content(&mut v, body.content);
    v.finish()?;
    let found = consultation_access(&ctx, id).await?;
    let (p, c) = (found.principal, found.consultation);
    if !policy::can_write_note(&p, &c) {
        return Err(ApiError::forbidden(
            "write this consultation's note (its clinicians write it)",
        ));
    }
    check_open(&c)?;
    let saved = notes::save_draft(
        &ctx.state.db,
        &c,
        me(&p)?,
        body.version,
        &content,
        &ctx.journal_ok(),
        |w| clinician_note(&c, w),
    )
    .await?;
    ok(&saved)
}

/// POST /api/v1/consultations/{id}/note/sign
pub async fn sign(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    audit_note(&ctx);
    let body: SignBody = ctx.json()?;
    let mut v = Validator::default();
    check_version(&mut v, body.version);
    v.finish()?;
    let found = consultation_access(&ctx, id).await?;
    let (p, c) = (found.principal, found.consultation);
    if !policy::can_sign_note(&p, &c) {
        return Err(ApiError::forbidden(
            "sign this note: only the consulted clinician signs it (others add signed addenda once it is signed)",
        ));
    }
    check_open(&c)?;
    let who = SignAs {
        clinician: me(&p)?,
        account: p.account_id,
        passkey: body.passkey.as_ref(),
    };
    let signed = notes::sign(
        &ctx.state.db,
        &c,
        who,
        &ctx.state.notes,
        body.version,
        &ctx.journal_ok(),
        |w| clinician_note(&c, w),
    )
    .await?;
    ok(&signed)
}

/// POST /api/v1/consultations/{id}/note/sign/challenge: the document that signing the draft at
/// `version` would store, and a WebAuthn challenge (its hash) for the signer's passkey.
pub async fn sign_challenge(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    audit_note(&ctx);
    let body: SignChallengeBody = ctx.json()?;
    let mut v = Validator::default();
    check_version(&mut v, body.version);
    v.finish()?;
    let found = consultation_access(&ctx, id).await?;
    let (p, c) = (found.principal, found.consultation);
    if !policy::can_sign_note(&p, &c) {
        return Err(ApiError::forbidden(
            "sign this note: only the consulted clinician signs it (others add signed addenda once it is signed)",
        ));
    }
    check_open(&c)?;
    let who = SignAs {
        clinician: me(&p)?,
        account: p.account_id,
        passkey: None,
    };
    let challenge = notes::sign_challenge(
        &ctx.state.db,
        &c,
        who,
        &ctx.state.notes,
        body.version,
        &ctx.journal(StatusCode::CREATED),
    )
    .await?;
    created(&challenge)
}

/// POST /api/v1/consultations/{id}/note/addenda
pub async fn add_addendum(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    audit_note(&ctx);
    let body: AddendumBody = ctx.json()?;
    let text = BoundedText::parse(&body.text, MAX_SECTION, true)
        .map_err(|e| ApiError::invalid_field("text", e))?;
    let found = consultation_access(&ctx, id).await?;
    let (p, c) = (found.principal, found.consultation);
    if !policy::can_write_note(&p, &c) {
        return Err(ApiError::forbidden(
            "amend this consultation's note (its clinicians amend it)",
        ));
    }
    let who = SignAs {
        clinician: me(&p)?,
        account: p.account_id,
        passkey: body.passkey.as_ref(),
    };
    let journal = ctx.journal(StatusCode::CREATED);
    let entry =
        notes::add_addendum(&ctx.state.db, &c, who, &ctx.state.notes, &text, &journal).await?;
    created(&entry)
}

/// POST /api/v1/consultations/{id}/note/addenda/challenge: the document of an addendum with
/// `text` and a WebAuthn challenge (its hash) for the signer's passkey.
pub async fn addendum_challenge(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    audit_note(&ctx);
    let body: AddendumChallengeBody = ctx.json()?;
    let text = BoundedText::parse(&body.text, MAX_SECTION, true)
        .map_err(|e| ApiError::invalid_field("text", e))?;
    let found = consultation_access(&ctx, id).await?;
    let (p, c) = (found.principal, found.consultation);
    if !policy::can_write_note(&p, &c) {
        return Err(ApiError::forbidden(
            "amend this consultation's note (its clinicians amend it)",
        ));
    }
    let who = SignAs {
        clinician: me(&p)?,
        account: p.account_id,
        passkey: None,
    };
    let journal = ctx.journal(StatusCode::CREATED);
    let challenge =
        notes::addendum_challenge(&ctx.state.db, &c, who, &ctx.state.notes, &text, &journal)
            .await?;
    created(&challenge)
}

#[derive(Serialize)]
struct History {
    consultation_id: ConsultationId,
    status: &'static str,
    /// Every saved draft, oldest first.
    revisions: Vec<Revision>,
    /// The signed note and its addenda, in order.
    entries: Vec<Entry>,
}

/// GET /api/v1/consultations/{id}/note/history
pub async fn history(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    audit_note(&ctx);
    let _: NoQuery = ctx.query()?;
    let found = consultation_access(&ctx, id).await?;
    let (p, c) = (found.principal, found.consultation);
    if !policy::can_write_note(&p, &c) {
        return Err(ApiError::forbidden(
            "read the draft history of this note (its clinicians only)",
        ));
    }
    let note = notes::find(&ctx.state.db, id).await?;
    let status = status_label(note.as_ref());
    let (revisions, entries) = match note {
        Some(n) => (
            notes::revisions(&ctx.state.db, n.id).await?,
            load_entries(&ctx, &[n.id]).await?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    ok(&History {
        consultation_id: id,
        status,
        revisions,
        entries,
    })
}

/// GET /api/v1/consultations/{id}/summary
pub async fn summary(ctx: Ctx) -> ApiResult {
    let id: ConsultationId = ctx.param("id")?;
    audit_note(&ctx);
    let q: LangQuery = ctx.query()?;
    let lang = Lang::choose(&ctx, q.lang.as_deref())?;
    let found = consultation_access(&ctx, id).await?;
    let (p, c) = (&found.principal, found.consultation.clone());
    let audience = if policy::can_write_note(p, &c) {
        summary::Audience::Clinician
    } else if policy::can_read_signed_note(p, &found.facts()) {
        if p.as_clinician().is_some() && p.only_consultation.is_none() {
            summary::Audience::Clinician
        } else {
            summary::Audience::Patient
        }
    } else {
        return Err(ApiError::forbidden(
            "print clinical notes (they are for the consultation's clinicians and its patient)",
        ));
    };
    let note = notes::find(&ctx.state.db, id)
        .await?
        .filter(|n| n.status == NoteStatus::Signed)
        .ok_or_else(|| {
            ApiError::conflict(
                ErrorCode::NoteNotSigned,
                "the summary prints the signed note, and this consultation's note is not signed yet",
            )
        })?;
    let entries = load_entries(&ctx, &[note.id]).await?;
    let db = &ctx.state.db;
    let patient = directory::get_patient(db, c.patient_id).await?;
    let clinician = directory::get_clinician(db, c.clinician_id).await?;
    let referring = match c.referring_clinician_id {
        Some(r) => Some(directory::get_clinician(db, r).await?),
        None => None,
    };
    let html = summary::render(&summary::Summary {
        lang,
        audience,
        consultation: &c,
        patient: &patient,
        clinician: &clinician,
        referring: referring.as_ref(),
        entries: &entries,
    })?;
    let mut response = warp::Reply::into_response(warp::reply::html(html));
    *response.status_mut() = StatusCode::OK;
    let csp = HeaderValue::from_str(&summary::content_security_policy())
        .map_err(|_| ApiError::internal())?;
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, csp);
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimelineQuery {
    lang: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// One consultation on a clinician's timeline.
#[derive(Serialize)]
struct ClinicianTimelineItem {
    #[serde(flatten)]
    consultation: notes::TimelineRow,
    /// The signed note and its addenda (drafts are read from the consultation's note).
    entries: Vec<Entry>,
}

/// One consultation on the patient's own timeline.
#[derive(Serialize)]
struct PatientTimelineItem {
    #[serde(flatten)]
    consultation: notes::TimelineRow,
    note: PatientNote,
}

/// GET /api/v1/patients/{id}/timeline
pub async fn timeline(ctx: Ctx) -> ApiResult {
    let id: PatientId = ctx.param("id")?;
    let q: TimelineQuery = ctx.query()?;
    let lang = Lang::choose(&ctx, q.lang.as_deref())?;
    let (limit, offset) = page(q.limit, q.offset)?;
    patient_access(&ctx, id).await?;
    let p = ctx.user()?;
    if !policy::can_read_timeline(p, id) {
        return Err(ApiError::forbidden(
            "read this patient's clinical timeline (clinicians who may see the patient, and the patient)",
        ));
    }
    let visible = policy::Visibility::clinical_of(p, crate::domain::time::now());
    let rows = notes::timeline(&ctx.state.db, id, &visible, limit, offset).await?;
    let signed: Vec<i64> = rows
        .iter()
        .filter(|r| r.note_status == Some(NoteStatus::Signed))
        .filter_map(|r| r.note_id)
        .collect();
    let mut entries = load_entries(&ctx, &signed).await?;
    let mut take = |note_id: Option<i64>| -> Vec<Entry> {
        let Some(note_id) = note_id else {
            return Vec::new();
        };
        let (mine, rest): (Vec<Entry>, Vec<Entry>) =
            entries.drain(..).partition(|e| e.note_id == note_id);
        entries = rest;
        mine
    };
    if p.as_clinician().is_some() {
        let items: Vec<ClinicianTimelineItem> = rows
            .into_iter()
            .map(|r| ClinicianTimelineItem {
                entries: take(r.note_id),
                consultation: r,
            })
            .collect();
        ok(&items)
    } else {
        let mut items = Vec::with_capacity(rows.len());
        for r in rows {
            let note = patient_view(r.consultation_id, &take(r.note_id), lang)?;
            items.push(PatientTimelineItem {
                consultation: r,
                note,
            });
        }
        ok(&items)
    }
}

#[derive(Serialize)]
struct SigningKeyView {
    clinician_id: ClinicianId,
    algorithm: &'static str,
    /// Base64 (standard, padded) of the 32-byte Ed25519 public key the clinician signs with now;
    /// null until their first signature.
    public_key: Option<String>,
    /// Every key that verifies the clinician's entries, oldest first, retired ones included.
    keys: Vec<notes::PublishedKey>,
    /// The relying party id the passkeys are bound to: an assertion's authenticator data starts
    /// with its SHA-256.
    relying_party_id: String,
    /// The clinician's passkeys: an entry signed after the first was enrolled carries an
    /// assertion by one of them.
    passkeys: Vec<notes::passkeys::PublishedPasskey>,
}

/// GET /api/v1/clinicians/{id}/signing-key
pub async fn signing_key(ctx: Ctx) -> ApiResult {
    let id: ClinicianId = ctx.param("id")?;
    let _: NoQuery = ctx.query()?;
    directory::facility_of_clinician(&ctx.state.db, id).await?;
    let keys = notes::keys::published(&ctx.state.db, &ctx.state.notes.kek, id).await?;
    let passkeys = notes::passkeys::published(&ctx.state.db, &ctx.state.notes.kek, id).await?;
    ok(&SigningKeyView {
        clinician_id: id,
        algorithm: "Ed25519",
        public_key: keys
            .iter()
            .find(|k| k.retired_at.is_none())
            .map(|k| k.public_key.clone()),
        keys,
        relying_party_id: ctx.state.notes.passkeys.rp_id().to_string(),
        passkeys,
    })
}
