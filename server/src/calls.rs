//! Video calls: what the signaling server tells the platform, written to the database and the
//! audit trail, and what the platform tells it at each join.
//!
//! The signaling crate knows nothing about SQL; it asks through [`Admission`] whether a join
//! token still admits (one indexed lookup per join, so a revocation holds on every node sharing
//! the database and after restarts), and reports through [`CallObserver`]. Its callbacks
//! must not block a room, so call starts and ends go to one writer task (in order: an end is
//! never written before its start), and audit events are appended from their own tasks so that
//! the audit log's group commit can batch them during a join storm.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use telehealth_signaling::admission::BoxFuture;
use telehealth_signaling::{
    Admission, CallObserver, RoomAccess, RoomEvent, RoomState, Unavailable,
};
use tokio::sync::mpsc;

use crate::audit::{self, AuditLog};
use crate::auth::AccountId;
use crate::domain::consultation::Status;
use crate::domain::ids::{ClinicianId, ParticipantId, PatientId};
use crate::storage::Db;
use crate::{on_conn, on_db};

/// How many call starts and ends may wait for the writer before new ones are dropped (and logged):
/// far more than a node's rooms.
const QUEUE: usize = 65_536;
/// Consultation → patient lookups kept for audit events; cleared when full.
const PATIENT_CACHE: usize = 50_000;

enum CallChange {
    Started {
        consultation: i64,
        at: DateTime<Utc>,
    },
    Ended {
        consultation: i64,
        started: DateTime<Utc>,
        ended: DateTime<Utc>,
    },
}

/// The platform's [`CallObserver`].
pub struct CallRecorder {
    changes: mpsc::Sender<CallChange>,
    db: Db,
    audit: AuditLog,
    patients: Arc<Mutex<HashMap<i64, Option<PatientId>>>>,
    accounts: Arc<AccountCache>,
    /// Where "patient waiting" goes (the consulted clinician's channel), when people's channels
    /// are configured.
    outbox: Option<Arc<crate::outbox::Routes>>,
}

/// Participant → its account (id and user name), when it has one.
type AccountCache = Mutex<HashMap<ParticipantId, Option<(AccountId, String)>>>;

impl CallRecorder {
    /// Starts the writer task; it ends when the recorder is dropped.
    pub fn start(
        db: Db,
        audit: AuditLog,
        outbox: Option<Arc<crate::outbox::Routes>>,
    ) -> Arc<CallRecorder> {
        let (tx, mut rx) = mpsc::channel::<CallChange>(QUEUE);
        let writer_db = db.clone();
        tokio::spawn(async move {
            while let Some(change) = rx.recv().await {
                let result = match change {
                    CallChange::Started { consultation, at } => {
                        record_start(&writer_db, consultation, at).await
                    }
                    CallChange::Ended {
                        consultation,
                        started,
                        ended,
                    } => record_end(&writer_db, consultation, started, ended).await,
                };
                if let Err(err) = result {
                    tracing::warn!(error = %err, "recording a call change failed");
                }
            }
        });
        Arc::new(CallRecorder {
            changes: tx,
            db,
            audit,
            patients: Arc::new(Mutex::new(HashMap::new())),
            accounts: Arc::new(Mutex::new(HashMap::new())),
            outbox,
        })
    }

    fn send(&self, change: CallChange) {
        if self.changes.try_send(change).is_err() {
            tracing::warn!(
                "call change queue full or closed; a call start or end was not recorded"
            );
        }
    }
}

impl CallObserver for CallRecorder {
    fn call_started(&self, consultation: i64, at: DateTime<Utc>) {
        self.send(CallChange::Started { consultation, at });
    }

    fn call_ended(&self, consultation: i64, started: DateTime<Utc>, ended: DateTime<Utc>) {
        self.send(CallChange::Ended {
            consultation,
            started,
            ended,
        });
    }

    fn room_event(&self, event: RoomEvent) {
        // A patient in the waiting room: their clinician hears of it by their own channel too.
        if event.action == "wait"
            && event.allowed
            && event.actor_role == Some(telehealth_signaling::token::Role::Patient)
            && let Some(routes) = self.outbox.as_ref().and_then(|r| r.patients.clone())
        {
            let db = self.db.clone();
            let consultation = crate::domain::ids::ConsultationId(event.consultation);
            tokio::spawn(async move {
                let now = crate::domain::time::now();
                if let Err(err) =
                    crate::outbox::clinicians::patient_waiting(&db, &routes, consultation, now)
                        .await
                {
                    tracing::warn!(error = %err, "queueing 'patient waiting' failed");
                }
            });
        }
        let db = self.db.clone();
        let audit = self.audit.clone();
        let patients = self.patients.clone();
        let accounts = self.accounts.clone();
        tokio::spawn(async move {
            let patient_id = if event.consultation > 0 {
                patient_of(&db, &patients, event.consultation).await
            } else {
                None
            };
            let account = match &event.actor {
                Some(participant) => account_of(&db, &accounts, participant).await,
                None => None,
            };
            let outcome = if event.allowed {
                audit::Outcome::Allowed
            } else {
                audit::Outcome::Denied
            };
            // `signaling admit p7 (code)`: the participant acted upon and the refusal's code.
            let mut action = format!("signaling {}", event.action);
            if let Some(subject) = &event.subject {
                action.push(' ');
                action.push_str(subject);
            }
            if let Some(code) = event.code {
                action.push_str(&format!(" ({code})"));
            }
            // The participant id (`c12`, `p7`, `g…`) stays in the action; the actor is the
            // account of that clinician or patient when there is one (a guest has none: the
            // clinician who invited them is on the event that issued the guest's token).
            if let Some(participant) = &event.actor {
                action.push_str(&format!(" as {participant}"));
            }
            let (actor_account_id, actor) = match account {
                Some((id, username)) => (Some(id), username),
                None => (
                    None,
                    event.actor.clone().unwrap_or_else(|| "anonymous".into()),
                ),
            };
            let record = audit::Event {
                actor_account_id,
                actor,
                actor_role: event
                    .actor_role
                    .map(|r| format!("{r:?}").to_lowercase())
                    .unwrap_or_else(|| "none".into()),
                action,
                record_type: "consultation".into(),
                record_id: (event.consultation > 0).then(|| event.consultation.to_string()),
                patient_id,
                patients: Vec::new(),
                client_addr: None,
                outcome,
            };
            if let Err(err) = audit.record(record).await {
                tracing::warn!(error = %err, "a signaling audit event was not recorded");
            }
        });
    }
}

/// How early before its start a consultation's room opens.
pub const OPENS_BEFORE_MINUTES: i64 = 15;
/// How long after its end the room stays open (overruns, reconnections).
pub const CLOSES_AFTER_MINUTES: i64 = 30;

/// A consultation's join window: from [`OPENS_BEFORE_MINUTES`] before its start to
/// [`CLOSES_AFTER_MINUTES`] after its end.
pub fn join_window(start: DateTime<Utc>, end: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        start - Duration::minutes(OPENS_BEFORE_MINUTES),
        end + Duration::minutes(CLOSES_AFTER_MINUTES),
    )
}

/// The consultation's current access version (see the `access_version` migration), or None when
/// there is no such consultation.
pub async fn access_version(db: &Db, consultation: i64) -> Result<Option<i64>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_scalar::<_, i64>("SELECT access_version FROM consultations WHERE id = $1")
            .bind(consultation)
            .fetch_optional(pool)
            .await
    })
}

/// What one admission lookup reads.
#[derive(sqlx::FromRow)]
struct AccessRow {
    status: Status,
    access_version: i64,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    #[sqlx(flatten)]
    people: People,
    revoked_at: Option<DateTime<Utc>>,
}

/// The people a consultation names.
#[derive(Clone, Copy, sqlx::FromRow)]
struct People {
    clinician_id: ClinicianId,
    referring_clinician_id: Option<ClinicianId>,
    patient_id: PatientId,
}

impl People {
    /// Whether `participant` (`c12`, `p7`, `g…`, as the signaling server names them) is one of
    /// them: the consulted or referring clinician, the patient, or a guest (guests have no record
    /// of their own: their invitation lasts as long as the access version it was issued at).
    /// Text that is no participant id is nobody.
    fn include(self, participant: &str) -> bool {
        match participant.parse::<ParticipantId>() {
            Ok(ParticipantId::Guest(_)) => true,
            Ok(ParticipantId::Clinician(c)) => {
                c == self.clinician_id || self.referring_clinician_id == Some(c)
            }
            Ok(ParticipantId::Patient(p)) => p == self.patient_id,
            Err(_) => false,
        }
    }
}

/// Whether a room of a consultation in `status` admits anyone.
fn room_state(status: Status) -> RoomState {
    match status {
        Status::Booked | Status::InProgress => RoomState::Open,
        Status::Cancelled => RoomState::Cancelled,
        Status::Held | Status::Completed | Status::NoShow | Status::Expired => RoomState::Ended,
    }
}

impl Admission for CallRecorder {
    fn check<'a>(
        &'a self,
        consultation: i64,
        participant: &'a str,
    ) -> BoxFuture<'a, Result<Option<RoomAccess>, Unavailable>> {
        Box::pin(async move {
            let row: Option<AccessRow> = on_db!(&self.db, pool => {
                sqlx::query_as::<_, AccessRow>(
                    "SELECT c.status, c.access_version, c.start_at, c.end_at, c.clinician_id,
                            c.referring_clinician_id, c.patient_id, r.revoked_at
                     FROM consultations c
                     LEFT JOIN call_revocations r
                       ON r.consultation_id = c.id AND r.participant = $2
                     WHERE c.id = $1",
                )
                .bind(consultation)
                .bind(participant)
                .fetch_optional(pool)
                .await
            })
            .map_err(|e| Unavailable(e.to_string()))?;
            Ok(row.map(|row| {
                let (opens, closes) = join_window(row.start_at, row.end_at);
                RoomAccess {
                    state: room_state(row.status),
                    version: row.access_version,
                    opens_at: opens.timestamp(),
                    closes_at: closes.timestamp(),
                    listed: row.people.include(participant),
                    revoked_at: row.revoked_at.map(|at| at.timestamp()),
                }
            }))
        })
    }

    fn revoked(&self, consultation: i64, participant: &str, at: DateTime<Utc>) {
        let db = self.db.clone();
        let participant = participant.to_owned();
        tokio::spawn(async move {
            // Two revocations of one participant may be written out of order: keep the later.
            let written = on_db!(&db, pool => {
                sqlx::query(
                    "INSERT INTO call_revocations (consultation_id, participant, revoked_at)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (consultation_id, participant) DO UPDATE SET revoked_at =
                       CASE WHEN excluded.revoked_at > call_revocations.revoked_at
                            THEN excluded.revoked_at ELSE call_revocations.revoked_at END",
                )
                .bind(consultation)
                .bind(&participant)
                .bind(at)
                .execute(pool)
                .await
                .map(|_| ())
            });
            if let Err(err) = written {
                // This node still refuses the participant from memory; other nodes and a
                // restarted one would not.
                tracing::warn!(error = %err, consultation, "a call denial or removal was not kept");
            }
        });
    }
}

/// After a reschedule, the room follows the consultation at once on this node: whoever is no
/// longer one of its people (the old clinician, after a move to another) is removed with
/// `access-revoked`, and if the new window does not contain now the room closes
/// (`room-closed`, `rescheduled`). Other nodes refuse the old tokens at the next join, from the
/// access version.
pub fn after_reschedule(
    hub: &telehealth_signaling::Hub,
    c: &crate::domain::consultation::Consultation,
    now: DateTime<Utc>,
) {
    let people = People {
        clinician_id: c.clinician_id,
        referring_clinician_id: c.referring_clinician_id,
        patient_id: c.patient_id,
    };
    hub.revoke_participants(
        c.id.0,
        |participant, _| people.include(participant),
        telehealth_signaling::protocol::RevokeReason::Reassigned,
    );
    let (opens, closes) = join_window(c.start_at, c.end_at);
    if now < opens || now >= closes {
        hub.close_room(c.id.0, telehealth_signaling::CloseReason::Rescheduled);
    }
}

/// The account of a participant (`c12`: clinician 12, `p7`: patient 7), cached like
/// [`patient_of`]. Guests (`g…`) and people without an account have none.
async fn account_of(
    db: &Db,
    cache: &AccountCache,
    participant: &str,
) -> Option<(AccountId, String)> {
    let participant: ParticipantId = participant.parse().ok()?;
    if let Ok(map) = cache.lock()
        && let Some(found) = map.get(&participant)
    {
        return found.clone();
    }
    let (query, id): (&'static str, i64) = match &participant {
        ParticipantId::Clinician(c) => (
            "SELECT id, username FROM accounts WHERE clinician_id = $1",
            c.0,
        ),
        ParticipantId::Patient(p) => (
            "SELECT id, username FROM accounts WHERE patient_id = $1",
            p.0,
        ),
        ParticipantId::Guest(_) => return None,
    };
    let found: Option<(AccountId, String)> = on_db!(db, pool => {
        sqlx::query_as::<_, (AccountId, String)>(query)
            .bind(id)
            .fetch_optional(pool)
            .await
    })
    .ok()
    .flatten();
    if let Ok(mut map) = cache.lock() {
        if map.len() >= PATIENT_CACHE {
            map.clear();
        }
        map.insert(participant, found.clone());
    }
    found
}

/// The patient of a consultation, for audit events (cached: a room's events repeat it).
async fn patient_of(
    db: &Db,
    cache: &Mutex<HashMap<i64, Option<PatientId>>>,
    consultation: i64,
) -> Option<PatientId> {
    if let Ok(map) = cache.lock()
        && let Some(found) = map.get(&consultation)
    {
        return *found;
    }
    let found: Option<PatientId> = on_db!(db, pool => {
        sqlx::query_scalar::<_, PatientId>("SELECT patient_id FROM consultations WHERE id = $1")
            .bind(consultation)
            .fetch_optional(pool)
            .await
    })
    .ok()
    .flatten();
    if let Ok(mut map) = cache.lock() {
        if map.len() >= PATIENT_CACHE {
            map.clear();
        }
        map.insert(consultation, found);
    }
    found
}

/// The first clinician joined: the consultation is in progress, and a call begins.
async fn record_start(db: &Db, consultation: i64, at: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    on_conn!(tx.conn(), c => {
        sqlx::query(
            // A delay announced to the waiting room means nothing once the visit has begun.
            "UPDATE consultations SET status = $3, started_at = COALESCE(started_at, $2),
                    running_late_minutes = NULL, updated_at = $2, version = version + 1
             WHERE id = $1 AND status = $4",
        )
        .bind(consultation)
        .bind(at)
        .bind(Status::InProgress)
        .bind(Status::Booked)
        .execute(&mut *c)
        .await?;
        // Rooms of consultations that no longer exist, never did, or cannot be joined
        // (cancelled, over) record nothing.
        sqlx::query(
            "INSERT INTO calls (consultation_id, started_at)
             SELECT id, $2 FROM consultations WHERE id = $1 AND status = $3",
        )
        .bind(consultation)
        .bind(at)
        .bind(Status::InProgress)
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "INSERT INTO consultation_events (consultation_id, occurred_at, actor, action, detail)
             SELECT id, $2, 'signaling', 'call_started', '' FROM consultations
             WHERE id = $1 AND status = $3",
        )
        .bind(consultation)
        .bind(at)
        .bind(Status::InProgress)
        .execute(&mut *c)
        .await?;
    });
    tx.commit().await
}

/// The last participant left: the call's end and duration.
async fn record_end(
    db: &Db,
    consultation: i64,
    started: DateTime<Utc>,
    ended: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let seconds = (ended - started).num_seconds().max(0);
    let mut tx = db.begin().await?;
    on_conn!(tx.conn(), c => {
        sqlx::query(
            "UPDATE calls SET ended_at = $2, duration_seconds = $3
             WHERE consultation_id = $1 AND ended_at IS NULL",
        )
        .bind(consultation)
        .bind(ended)
        .bind(seconds)
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "INSERT INTO consultation_events (consultation_id, occurred_at, actor, action, detail)
             SELECT id, $2, 'signaling', 'call_ended', $3 FROM consultations WHERE id = $1",
        )
        .bind(consultation)
        .bind(ended)
        .bind(format!("duration {seconds} s"))
        .execute(&mut *c)
        .await?;
    });
    tx.commit().await
}

/// One call of a consultation.
#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct Call {
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<i64>,
}

/// The calls of a consultation, oldest first.
pub async fn calls_of(db: &Db, consultation: i64) -> Result<Vec<Call>, sqlx::Error> {
    on_db!(db, pool => {
        sqlx::query_as::<_, Call>(
            "SELECT started_at, ended_at, duration_seconds FROM calls
             WHERE consultation_id = $1 ORDER BY id",
        )
        .bind(consultation)
        .fetch_all(pool)
        .await
    })
}

#[cfg(test)]
mod tests {
    use super::{ClinicianId, PatientId, People, RoomState, Status, room_state};

    #[test]
    fn a_participant_is_listed_only_while_the_consultation_names_them() {
        // Consulted clinician 12, referring clinician 30, patient 7.
        let people = People {
            clinician_id: ClinicianId(12),
            referring_clinician_id: Some(ClinicianId(30)),
            patient_id: PatientId(7),
        };
        let of = |p: &str| people.include(p);
        assert!(of("c12") && of("c30") && of("p7"));
        // The clinician it was moved away from, another patient, garbage.
        assert!(!of("c13") && !of("p8") && !of("x12") && !of("c") && !of("cxyz"));
        // Guests have no record of their own: the access version decides for them.
        assert!(of("g3f9a"));
        let unreferred = People {
            referring_clinician_id: None,
            ..people
        };
        assert!(!unreferred.include("c30"));
    }

    #[test]
    fn only_booked_and_running_consultations_have_an_open_room() {
        for s in Status::ALL {
            let open = room_state(*s) == RoomState::Open;
            assert_eq!(
                open,
                matches!(s, Status::Booked | Status::InProgress),
                "{s}"
            );
        }
        assert_eq!(room_state(Status::Cancelled), RoomState::Cancelled);
    }
}
