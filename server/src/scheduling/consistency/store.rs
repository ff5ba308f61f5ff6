//! The SQL of the consistency check: consultations a page at a time, and the claims of a range of
//! consultation ids, streamed in order. Read only; each function runs on the caller's connection.

use chrono::{DateTime, Utc};

use crate::domain::consultation::Status;
use crate::domain::ids::{ClinicianId, ConsultationId};
use crate::on_conn;
use crate::storage::Conn;

/// What the check needs of one consultation.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Consultation {
    pub id: ConsultationId,
    pub status: Status,
    pub clinician_id: ClinicianId,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
}

/// Up to `limit` consultations with an id above `after`, by id.
pub async fn consultations_after(
    conn: Conn<'_>,
    after: i64,
    limit: i64,
) -> Result<Vec<Consultation>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as::<_, Consultation>(
        "SELECT id, status, clinician_id, start_at, end_at FROM consultations
         WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *c)
    .await)
}

/// One claimed cell.
#[derive(Clone, Copy, Debug, sqlx::FromRow)]
pub struct Claim {
    pub consultation_id: i64,
    pub clinician_id: ClinicianId,
    pub cell: i64,
}

/// Hands `each` every claim whose consultation id lies in `(after, up_to]`, ordered by
/// consultation id, without holding them all in memory.
pub async fn each_claim(
    conn: Conn<'_>,
    after: i64,
    up_to: i64,
    mut each: impl FnMut(Claim),
) -> Result<(), sqlx::Error> {
    use futures::TryStreamExt;
    on_conn!(conn, c => {
        let mut rows = sqlx::query_as::<_, Claim>(
            "SELECT consultation_id, clinician_id, cell FROM slot_claims
             WHERE consultation_id > $1 AND consultation_id <= $2
             ORDER BY consultation_id, clinician_id, cell",
        )
        .bind(after)
        .bind(up_to)
        .fetch(&mut *c);
        while let Some(claim) = rows.try_next().await? {
            each(claim);
        }
        Ok(())
    })
}
