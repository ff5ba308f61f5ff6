//! The SQL of encounter notes: `encounter_notes`, `note_revisions`, `note_entries`, and the
//! timeline's read of a patient's consultations. Each function runs on the caller's connection;
//! which statements share a transaction is the service's choice ([`crate::notes`]).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::auth::policy::Visibility;
use crate::domain::consultation::{Kind, Status};
use crate::domain::ids::{ClinicianId, ConsultationId, PatientId};
use crate::domain::note::{EntryKind, NoteStatus};
use crate::on_conn;
use crate::storage::{Conn, UniqueKey};

/// One note per consultation.
pub const NOTE_OF_CONSULTATION: UniqueKey = UniqueKey {
    table: "encounter_notes",
    columns: &["consultation_id"],
};
/// One revision per draft version.
pub const REVISION_VERSION: UniqueKey = UniqueKey {
    table: "note_revisions",
    columns: &["note_id", "version"],
};
/// One entry per position in a note.
pub const ENTRY_SEQ: UniqueKey = UniqueKey {
    table: "note_entries",
    columns: &["note_id", "seq"],
};

/// A consultation's note: its status and the draft version a writer must name.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct NoteRow {
    pub id: i64,
    pub consultation_id: ConsultationId,
    pub patient_id: PatientId,
    pub status: NoteStatus,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns of a [`NoteRow`], for the statements that return one (a macro, so `concat!`
/// makes each statement one `&'static str`).
macro_rules! note_columns {
    () => {
        "id, consultation_id, patient_id, status, version, created_at, updated_at"
    };
}

#[derive(Debug, sqlx::FromRow)]
pub struct RevisionRow {
    pub version: i32,
    pub content: String,
    pub author_clinician_id: ClinicianId,
    pub saved_at: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
pub struct EntryRow {
    pub id: i64,
    pub note_id: i64,
    pub seq: i32,
    pub kind: EntryKind,
    pub amends: Option<i64>,
    pub document: String,
    pub content_hash: String,
    pub signer_clinician_id: ClinicianId,
    pub signed_at: DateTime<Utc>,
    pub signature: Option<String>,
    pub public_key: Option<String>,
    /// The passkey assertion that signed the document, when the signer used a passkey (JSON).
    pub passkey_assertion: Option<String>,
    /// The note's consultation and patient, which the signed document must name.
    pub consultation_id: ConsultationId,
    pub patient_id: PatientId,
}

macro_rules! entry_columns {
    () => {
        "e.id, e.note_id, e.seq, e.kind, e.amends, e.document, e.content_hash, e.signer_clinician_id, \
         e.signed_at, e.signature, e.public_key, e.passkey_assertion, n.consultation_id, n.patient_id"
    };
}

/// A signed entry to insert.
pub struct NewEntry<'a> {
    pub note_id: i64,
    pub seq: i32,
    pub kind: EntryKind,
    pub amends: Option<i64>,
    pub document: &'a str,
    pub content_hash: &'a str,
    pub signer: ClinicianId,
    pub signed_at: DateTime<Utc>,
    pub signature: &'a str,
    pub public_key: &'a str,
    pub passkey_assertion: Option<&'a str>,
}

pub async fn find(
    conn: Conn<'_>,
    consultation: ConsultationId,
) -> Result<Option<NoteRow>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        note_columns!(),
        " FROM encounter_notes WHERE consultation_id = $1"
    );
    on_conn!(conn, c => sqlx::query_as(SQL).bind(consultation).fetch_optional(&mut *c).await)
}

/// Starts the note of `consultation` as a draft at version 1.
pub async fn insert_note(
    conn: Conn<'_>,
    consultation: ConsultationId,
    patient: PatientId,
    now: DateTime<Utc>,
) -> Result<NoteRow, sqlx::Error> {
    const SQL: &str = concat!(
        "INSERT INTO encounter_notes (consultation_id, patient_id, status, version, created_at, updated_at)
         VALUES ($1, $2, $3, 1, $4, $4) RETURNING ",
        note_columns!()
    );
    on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(consultation)
        .bind(patient)
        .bind(NoteStatus::Draft)
        .bind(now)
        .fetch_one(&mut *c)
        .await)
}

/// Moves the draft of `consultation` on from version `expected`; `None` when it is not a draft
/// at that version.
pub async fn next_version(
    conn: Conn<'_>,
    consultation: ConsultationId,
    expected: i32,
    now: DateTime<Utc>,
) -> Result<Option<NoteRow>, sqlx::Error> {
    const SQL: &str = concat!(
        "UPDATE encounter_notes SET version = version + 1, updated_at = $1
         WHERE consultation_id = $2 AND version = $3 AND status = $4 RETURNING ",
        note_columns!()
    );
    on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(now)
        .bind(consultation)
        .bind(expected)
        .bind(NoteStatus::Draft)
        .fetch_optional(&mut *c)
        .await)
}

/// Closes the draft of note `note_id` at version `expected`; `None` when it is not a draft at
/// that version.
pub async fn mark_signed(
    conn: Conn<'_>,
    note_id: i64,
    expected: i32,
    now: DateTime<Utc>,
) -> Result<Option<NoteRow>, sqlx::Error> {
    const SQL: &str = concat!(
        "UPDATE encounter_notes SET status = $1, updated_at = $2
         WHERE id = $3 AND version = $4 AND status = $5 RETURNING ",
        note_columns!()
    );
    on_conn!(conn, c => sqlx::query_as(SQL)
        .bind(NoteStatus::Signed)
        .bind(now)
        .bind(note_id)
        .bind(expected)
        .bind(NoteStatus::Draft)
        .fetch_optional(&mut *c)
        .await)
}

pub async fn insert_revision(
    conn: Conn<'_>,
    note: &NoteRow,
    content: &str,
    author: ClinicianId,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "INSERT INTO note_revisions (note_id, version, content, author_clinician_id, saved_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(note.id)
    .bind(note.version)
    .bind(content)
    .bind(author)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

pub async fn revision(
    conn: Conn<'_>,
    note_id: i64,
    version: i32,
) -> Result<Option<RevisionRow>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(
        "SELECT version, content, author_clinician_id, saved_at FROM note_revisions
         WHERE note_id = $1 AND version = $2",
    )
    .bind(note_id)
    .bind(version)
    .fetch_optional(&mut *c)
    .await)
}

/// Every revision of note `note_id`, oldest first.
pub async fn revisions(conn: Conn<'_>, note_id: i64) -> Result<Vec<RevisionRow>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(
        "SELECT version, content, author_clinician_id, saved_at FROM note_revisions
         WHERE note_id = $1 ORDER BY version",
    )
    .bind(note_id)
    .fetch_all(&mut *c)
    .await)
}

/// The entries of the notes `note_ids` (not empty), each note's in order.
pub async fn entries(conn: Conn<'_>, note_ids: &[i64]) -> Result<Vec<EntryRow>, sqlx::Error> {
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new(concat!(
            "SELECT ",
            entry_columns!(),
            " FROM note_entries e JOIN encounter_notes n ON n.id = e.note_id WHERE e.note_id IN ("
        ));
        let mut sep = q.separated(", ");
        for id in note_ids {
            sep.push_bind(*id);
        }
        q.push(") ORDER BY e.note_id, e.seq");
        q.build_query_as::<EntryRow>().fetch_all(&mut *c).await
    })
}

/// Every entry after `after` (by id), at most `limit`, oldest first: for the whole-database check.
pub async fn entries_after(
    conn: Conn<'_>,
    after: i64,
    limit: i64,
) -> Result<Vec<EntryRow>, sqlx::Error> {
    const SQL: &str = concat!(
        "SELECT ",
        entry_columns!(),
        " FROM note_entries e JOIN encounter_notes n ON n.id = e.note_id
         WHERE e.id > $1 ORDER BY e.id LIMIT $2"
    );
    on_conn!(conn, c => sqlx::query_as(SQL).bind(after).bind(limit).fetch_all(&mut *c).await)
}

/// Inserts a signed entry; returns its id.
pub async fn insert_entry(conn: Conn<'_>, e: &NewEntry<'_>) -> Result<i64, sqlx::Error> {
    const SQL: &str =
        "INSERT INTO note_entries (note_id, seq, kind, amends, document, content_hash,
                                   signer_clinician_id, signed_at, signature, public_key,
                                   passkey_assertion)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id";
    on_conn!(conn, c => sqlx::query_scalar(SQL)
        .bind(e.note_id)
        .bind(e.seq)
        .bind(e.kind)
        .bind(e.amends)
        .bind(e.document)
        .bind(e.content_hash)
        .bind(e.signer)
        .bind(e.signed_at)
        .bind(e.signature)
        .bind(e.public_key)
        .bind(e.passkey_assertion)
        .fetch_one(&mut *c)
        .await)
}

/// The name and title of a clinician, for a signature.
pub async fn signer(
    conn: Conn<'_>,
    clinician: ClinicianId,
) -> Result<Option<(String, String)>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as("SELECT full_name, title FROM clinicians WHERE id = $1")
        .bind(clinician)
        .fetch_optional(&mut *c)
        .await)
}

/// One consultation of a patient's timeline, with its note's status.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct TimelineRow {
    pub consultation_id: ConsultationId,
    pub kind: Kind,
    pub status: Status,
    pub start_at: DateTime<Utc>,
    pub reason: String,
    pub clinician_id: ClinicianId,
    pub clinician_name: String,
    pub referring_clinician_id: Option<ClinicianId>,
    #[serde(skip)]
    pub note_id: Option<i64>,
    /// `none` (no note started), `draft` or `signed`.
    #[serde(serialize_with = "note_status_or_none")]
    pub note_status: Option<NoteStatus>,
}

fn note_status_or_none<S: serde::Serializer>(
    status: &Option<NoteStatus>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(status.map_or("none", NoteStatus::as_str))
}

/// A patient's consultations the caller may see, but holds that never became bookings, newest
/// first.
pub async fn timeline(
    conn: Conn<'_>,
    patient: PatientId,
    visible: &Visibility,
    limit: i64,
    offset: i64,
) -> Result<Vec<TimelineRow>, sqlx::Error> {
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT c.id AS consultation_id, c.kind, c.status, c.start_at, c.reason, c.clinician_id,
                    cl.full_name AS clinician_name, c.referring_clinician_id, n.id AS note_id,
                    n.status AS note_status
             FROM consultations c
             JOIN clinicians cl ON cl.id = c.clinician_id
             LEFT JOIN encounter_notes n ON n.consultation_id = c.id
             WHERE c.status NOT IN ('held', 'expired') AND c.patient_id = ",
        );
        q.push_bind(patient);
        // Only what the caller may read on its own (`GET /consultations/{id}/note`).
        visible.push_sql(&mut q);
        q.push(" ORDER BY c.start_at DESC, c.id DESC LIMIT ").push_bind(limit);
        q.push(" OFFSET ").push_bind(offset);
        q.build_query_as::<TimelineRow>().fetch_all(&mut *c).await
    })
}
