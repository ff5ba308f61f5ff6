//! Clinicians' calendar feeds: a secret iCalendar URL of a clinician's consultations (those they
//! are consulted in, and those they referred), which their phone or desk calendar subscribes to,
//! revocable at any time.
//!
//! The URL's token is 32 random bytes (as a session token, [`tokens::new_session_token`]); only
//! its SHA-256 is stored. A clinician has at most one live feed: making a new one revokes the
//! old. The feed lists the consultations booked, in progress or completed from 30 days back to
//! 90 days ahead, and those cancelled in that span (as `STATUS:CANCELLED`, so a subscribed
//! calendar drops them). An entry is titled "Telehealth consultation" and links to the
//! consultation in the web client (which asks for a session); it carries the patient's name only
//! when the clinician chose so, and never the reason for the visit.

use chrono::{DateTime, Duration, Utc};
use icalendar::{Calendar, Component, EventLike, EventStatus};

use crate::auth::AccountId;
use crate::auth::tokens;
use crate::domain::consultation::Status;
use crate::domain::ids::{ClinicianId, ConsultationId, PatientId};
use crate::on_conn;
use crate::storage::{Conn, Db};

/// A clinician's feed as they see it (never its token, which only its creation shows).
#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct Feed {
    pub id: i64,
    pub with_patient_names: bool,
    pub created_at: DateTime<Utc>,
    pub last_fetched_at: Option<DateTime<Utc>>,
}

/// Days before today and after it that a feed covers.
const DAYS_BACK: i64 = 30;
const DAYS_AHEAD: i64 = 90;
/// Most entries in one feed.
const MAX_ENTRIES: i64 = 2000;

/// Revokes `clinician`'s live feed, if any, at `now`; true when there was one.
pub async fn revoke(
    conn: Conn<'_>,
    clinician: ClinicianId,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let n = on_conn!(conn, c => sqlx::query(
        "UPDATE calendar_feeds SET revoked_at = $2 WHERE clinician_id = $1 AND revoked_at IS NULL",
    )
    .bind(clinician)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Makes a new feed for `clinician` (revoking the live one) in the caller's transaction; its
/// token, to be shown once, and the feed.
pub async fn create(
    mut conn: Conn<'_>,
    clinician: ClinicianId,
    with_patient_names: bool,
    by: AccountId,
    now: DateTime<Utc>,
) -> Result<(String, Feed), FeedError> {
    revoke(conn.reborrow(), clinician, now).await?;
    let (token, hash) = tokens::new_session_token().map_err(|_| FeedError::NoRandomness)?;
    let id: i64 = on_conn!(conn, c => sqlx::query_scalar(
        "INSERT INTO calendar_feeds (clinician_id, token_hash, with_patient_names, created_at, created_by)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(clinician)
    .bind(hash)
    .bind(with_patient_names)
    .bind(now)
    .bind(by)
    .fetch_one(&mut *c)
    .await)?;
    Ok((
        token,
        Feed {
            id,
            with_patient_names,
            created_at: now,
            last_fetched_at: None,
        },
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("the system's random source failed")]
    NoRandomness,
}

/// `clinician`'s live feed, if any.
pub async fn live(conn: Conn<'_>, clinician: ClinicianId) -> Result<Option<Feed>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(
        "SELECT id, with_patient_names, created_at, last_fetched_at FROM calendar_feeds
         WHERE clinician_id = $1 AND revoked_at IS NULL",
    )
    .bind(clinician)
    .fetch_optional(&mut *c)
    .await)
}

#[derive(sqlx::FromRow)]
struct Entry {
    id: ConsultationId,
    status: String,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    version: i32,
    patient_id: PatientId,
    patient_name: String,
}

/// A feed's calendar, and the patients whose names it shows (for the audit trail).
pub struct Rendered {
    pub feed_id: i64,
    pub clinician_id: ClinicianId,
    pub ics: String,
    pub named_patients: Vec<PatientId>,
}

/// The calendar of the live feed whose token is `token`, read at `now` (recorded as its last
/// fetch); `None` for a token no live feed has. Entries link to `web_base` (the web client).
pub async fn render(
    db: &Db,
    token: &str,
    now: DateTime<Utc>,
    web_base: &str,
    host: &str,
) -> Result<Option<Rendered>, sqlx::Error> {
    let hash = tokens::hash_token(token);
    let mut c = db.acquire().await?;
    let found: Option<(i64, ClinicianId, bool)> = on_conn!(c.conn(), k => sqlx::query_as(
        "SELECT id, clinician_id, with_patient_names FROM calendar_feeds
         WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(&hash)
    .fetch_optional(&mut *k)
    .await)?;
    let Some((feed_id, clinician, names)) = found else {
        return Ok(None);
    };
    let entries: Vec<Entry> = on_conn!(c.conn(), k => sqlx::query_as(
        "SELECT c.id, c.status, c.start_at, c.end_at, c.version, c.patient_id,
                p.full_name AS patient_name
         FROM consultations c JOIN patients p ON p.id = c.patient_id
         WHERE (c.clinician_id = $1 OR c.referring_clinician_id = $1) AND c.start_at >= $2 AND c.start_at < $3
           AND c.status IN ('booked', 'in_progress', 'completed', 'cancelled')
         ORDER BY c.start_at
         LIMIT $4",
    )
    .bind(clinician)
    .bind(now - Duration::days(DAYS_BACK))
    .bind(now + Duration::days(DAYS_AHEAD))
    .bind(MAX_ENTRIES)
    .fetch_all(&mut *k)
    .await)?;
    on_conn!(c.conn(), k => sqlx::query(
        "UPDATE calendar_feeds SET last_fetched_at = $2 WHERE id = $1",
    )
    .bind(feed_id)
    .bind(now)
    .execute(&mut *k)
    .await
    .map(|_| ()))?;
    let mut calendar = Calendar::new();
    calendar.name("Telehealth");
    let mut named = Vec::new();
    for e in &entries {
        let summary = if names {
            named.push(e.patient_id);
            format!("Telehealth: {}", e.patient_name)
        } else {
            "Telehealth consultation".to_owned()
        };
        let status = if Status::parse(&e.status) == Some(Status::Cancelled) {
            EventStatus::Cancelled
        } else {
            EventStatus::Confirmed
        };
        let mut event = icalendar::Event::new();
        event
            .uid(&format!("consultation-{}@{host}", e.id))
            .sequence(u32::try_from(e.version).unwrap_or(0))
            .summary(&summary)
            .starts(e.start_at)
            .ends(e.end_at)
            .status(status)
            .url(&format!("{web_base}/consultations/{}", e.id));
        calendar.push(event.done());
    }
    named.sort_unstable();
    named.dedup();
    Ok(Some(Rendered {
        feed_id,
        clinician_id: clinician,
        ics: calendar.done().to_string(),
        named_patients: named,
    }))
}
