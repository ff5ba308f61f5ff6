//! The SQL of passkeys and their ceremonies (`clinician_passkeys`, `webauthn_ceremonies`).

use chrono::{DateTime, Utc};

use crate::auth::AccountId;
use crate::domain::ids::{ClinicianId, ConsultationId};
use crate::on_conn;
use crate::storage::{Conn, UniqueKey};

/// A credential is enrolled once, by one clinician.
pub const CREDENTIAL_ID: UniqueKey = UniqueKey {
    table: "clinician_passkeys",
    columns: &["credential_id"],
};

#[derive(Debug, sqlx::FromRow)]
pub struct PasskeyRow {
    pub id: i64,
    pub clinician_id: ClinicianId,
    pub credential_id: String,
    pub name: String,
    pub credential: String,
    pub public_jwk: String,
    pub tag: String,
    pub created_at: DateTime<Utc>,
}

pub struct NewPasskey<'a> {
    pub clinician: ClinicianId,
    pub credential_id: &'a str,
    pub name: &'a str,
    pub credential: &'a str,
    pub public_jwk: &'a str,
    pub tag: &'a str,
    pub created_at: DateTime<Utc>,
}

pub async fn of_clinicians(
    conn: Conn<'_>,
    clinicians: &[ClinicianId],
) -> Result<Vec<PasskeyRow>, sqlx::Error> {
    if clinicians.is_empty() {
        return Ok(Vec::new());
    }
    on_conn!(conn, c => {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT id, clinician_id, credential_id, name, credential, public_jwk, tag, created_at
             FROM clinician_passkeys WHERE clinician_id IN (",
        );
        let mut sep = q.separated(", ");
        for id in clinicians {
            sep.push_bind(*id);
        }
        q.push(") ORDER BY clinician_id, id");
        q.build_query_as::<PasskeyRow>().fetch_all(&mut *c).await
    })
}

pub async fn count_of(conn: Conn<'_>, clinician: ClinicianId) -> Result<i64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM clinician_passkeys WHERE clinician_id = $1",
    )
    .bind(clinician)
    .fetch_one(&mut *c)
    .await)
}

pub async fn insert_passkey(conn: Conn<'_>, p: &NewPasskey<'_>) -> Result<i64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar(
        "INSERT INTO clinician_passkeys
             (clinician_id, credential_id, name, credential, public_jwk, tag, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(p.clinician)
    .bind(p.credential_id)
    .bind(p.name)
    .bind(p.credential)
    .bind(p.public_jwk)
    .bind(p.tag)
    .bind(p.created_at)
    .fetch_one(&mut *c)
    .await)
}

/// Stores the credential's state after a signature (its counter) and when it was used.
pub async fn record_use(
    conn: Conn<'_>,
    id: i64,
    credential: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "UPDATE clinician_passkeys SET credential = $2, last_used_at = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(credential)
    .bind(at)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

pub struct NewCeremony<'a> {
    pub id: &'a str,
    pub account: AccountId,
    pub purpose: &'static str,
    pub state: &'a str,
    pub consultation: Option<ConsultationId>,
    pub note_version: Option<i32>,
    pub document: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
pub struct CeremonyRow {
    pub state: String,
    pub consultation_id: Option<ConsultationId>,
    pub note_version: Option<i32>,
    pub document: Option<String>,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert_ceremony(conn: Conn<'_>, r: &NewCeremony<'_>) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "INSERT INTO webauthn_ceremonies
             (id, account_id, purpose, state, consultation_id, note_version, document, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(r.id)
    .bind(r.account)
    .bind(r.purpose)
    .bind(r.state)
    .bind(r.consultation)
    .bind(r.note_version)
    .bind(r.document)
    .bind(r.expires_at)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// Deletes and returns ceremony `id`, if it is `account`'s and for `purpose`.
pub async fn take_ceremony(
    conn: Conn<'_>,
    id: &str,
    account: AccountId,
    purpose: &str,
) -> Result<Option<CeremonyRow>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(
        "DELETE FROM webauthn_ceremonies WHERE id = $1 AND account_id = $2 AND purpose = $3
         RETURNING state, consultation_id, note_version, document, expires_at",
    )
    .bind(id)
    .bind(account)
    .bind(purpose)
    .fetch_optional(&mut *c)
    .await)
}

pub async fn purge_ceremonies(conn: Conn<'_>, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
}
