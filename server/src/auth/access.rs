//! The facts the access rules of [`super::policy`] decide on, read from storage, and the
//! break-the-glass grants.
//!
//! The policy itself is pure: handlers load facts here, then ask the policy. Facts are read at
//! the moment of the request (no cache), so a cancellation or an expired grant takes effect at
//! once on every node.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::Serialize;

use super::AccountId;
use super::policy::{CareLink, PatientFacts};
use crate::domain::consultation::Status;
use crate::domain::ids::{ClinicianId, FacilityId, PatientId};
use crate::journal::{About, Journal};
use crate::storage::Db;
use crate::{on_conn, on_db};

/// One row of [`patient_facts`]'s query: the patient's home, a care link or a grant.
#[derive(sqlx::FromRow)]
struct FactRow {
    kind: String,
    a: Option<i64>,
    b: Option<i64>,
    c: Option<i64>,
}

/// The statuses in which a consultation is a care relationship: those of
/// [`super::policy::establishes_relationship`] (a test holds them equal), as the fixed parameters
/// of [`patient_facts`]'s query.
const LINK_STATUSES: [Status; 3] = [Status::Booked, Status::InProgress, Status::Completed];

/// The facts about patient `id`, or `None` when there is no such patient. One round trip: this
/// runs before every booking.
pub async fn patient_facts(
    db: &Db,
    id: PatientId,
    now: DateTime<Utc>,
) -> Result<Option<PatientFacts>, sqlx::Error> {
    let rows: Vec<FactRow> = on_db!(db, pool => sqlx::query_as(
        "SELECT 'home' AS kind, home_facility_id AS a, CAST(NULL AS BIGINT) AS b, CAST(NULL AS BIGINT) AS c
         FROM patients WHERE id = $1
         UNION ALL
         SELECT DISTINCT 'link', c.clinician_id, c.referring_clinician_id, cl.facility_id
         FROM consultations c JOIN clinicians cl ON cl.id = c.clinician_id
         WHERE c.patient_id = $1 AND c.status IN ($3, $4, $5)
         UNION ALL
         SELECT DISTINCT 'glass', clinician_id, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT)
         FROM break_glass_grants WHERE patient_id = $1 AND expires_at > $2",
    )
    .bind(id)
    .bind(now)
    .bind(LINK_STATUSES[0])
    .bind(LINK_STATUSES[1])
    .bind(LINK_STATUSES[2])
    .fetch_all(pool)
    .await)?;
    let mut facts: Option<PatientFacts> = None;
    let mut links = Vec::new();
    let mut break_glass = Vec::new();
    for r in rows {
        match (r.kind.as_str(), r.a, r.b, r.c) {
            ("home", home, _, _) => {
                facts = Some(PatientFacts {
                    patient_id: id,
                    home_facility_id: home.map(FacilityId),
                    links: Vec::new(),
                    break_glass: Vec::new(),
                })
            }
            ("link", Some(clinician), referring, Some(facility)) => links.push(CareLink {
                clinician_id: ClinicianId(clinician),
                referring_clinician_id: referring.map(ClinicianId),
                clinician_facility_id: FacilityId(facility),
            }),
            ("glass", Some(clinician), _, _) => break_glass.push(ClinicianId(clinician)),
            // Columns are NOT NULL where the arms above need them.
            _ => {}
        }
    }
    Ok(facts.map(|f| PatientFacts {
        links,
        break_glass,
        ..f
    }))
}

/// What decides who reads a consultation besides the consultation itself.
#[derive(Clone, Copy, Debug, sqlx::FromRow)]
pub struct ConsultationContext {
    pub clinician_facility: FacilityId,
    pub patient_home: Option<FacilityId>,
    /// Unexpired break-the-glass grants on the patient held by the asking clinician.
    pub grants: i64,
}

/// The context of a consultation of `patient` with `clinician`, for the caller `asking` (a
/// clinician, or nobody).
pub async fn consultation_context(
    db: &Db,
    clinician: ClinicianId,
    patient: PatientId,
    asking: Option<ClinicianId>,
    now: DateTime<Utc>,
) -> Result<Option<ConsultationContext>, sqlx::Error> {
    on_db!(db, pool => sqlx::query_as::<_, ConsultationContext>(
        "SELECT cl.facility_id AS clinician_facility,
                (SELECT p.home_facility_id FROM patients p WHERE p.id = $2) AS patient_home,
                (SELECT COUNT(*) FROM break_glass_grants bg
                  WHERE bg.patient_id = $2 AND bg.clinician_id = $3 AND bg.expires_at > $4) AS grants
         FROM clinicians cl WHERE cl.id = $1",
    )
    .bind(clinician)
    .bind(patient)
    .bind(asking)
    .bind(now)
    .fetch_optional(pool)
    .await)
}

/// One break-the-glass access.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Grant {
    pub id: i64,
    pub patient_id: PatientId,
    pub clinician_id: ClinicianId,
    pub clinician_name: String,
    pub account_id: AccountId,
    pub reason: String,
    pub granted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

const GRANT_SELECT: &str =
    "SELECT g.id, g.patient_id, g.clinician_id, cl.full_name AS clinician_name,
        g.account_id, g.reason, g.granted_at, g.expires_at
 FROM break_glass_grants g JOIN clinicians cl ON cl.id = g.clinician_id";

/// Records a grant of `minutes` from now, with the request's audit event (and idempotent
/// answer) in its transaction.
pub async fn grant_break_glass(
    db: &Db,
    patient: PatientId,
    clinician: ClinicianId,
    account: AccountId,
    reason: &str,
    minutes: i64,
    journal: &Journal,
) -> Result<Grant, sqlx::Error> {
    let now = Utc::now().trunc_subsecs(0);
    let until = now + Duration::minutes(minutes);
    let mut tx = db.begin().await?;
    let id: i64 = on_conn!(tx.conn(), c => sqlx::query_scalar(
        "INSERT INTO break_glass_grants (patient_id, clinician_id, account_id, reason, granted_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(patient)
    .bind(clinician)
    .bind(account)
    .bind(reason)
    .bind(now)
    .bind(until)
    .fetch_one(&mut *c)
    .await)?;
    let grant: Grant = on_conn!(tx.conn(), c => {
        let mut q = sqlx::QueryBuilder::new(GRANT_SELECT);
        q.push(" WHERE g.id = ").push_bind(id);
        q.build_query_as::<Grant>().fetch_one(&mut *c).await
    })?;
    journal
        .write(tx.conn(), About::record(id).patient(patient), &grant)
        .await?;
    tx.commit().await?;
    Ok(grant)
}

/// Which grants to list.
#[derive(Clone, Debug, Default)]
pub struct GrantFilter {
    pub patient_id: Option<PatientId>,
    pub clinician_id: Option<ClinicianId>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only grants on patients of this care centre, or made by this clinician (a clinician's
    /// view); `None` for every grant (an administrator's review).
    pub scope: Option<(FacilityId, ClinicianId)>,
    pub limit: i64,
    pub offset: i64,
}

/// Grants matching `f`, grouped by clinician, newest first within each.
pub async fn list_grants(db: &Db, f: &GrantFilter) -> Result<Vec<Grant>, sqlx::Error> {
    on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new(GRANT_SELECT);
        q.push(" WHERE 1 = 1");
        if let Some(p) = f.patient_id {
            q.push(" AND g.patient_id = ").push_bind(p);
        }
        if let Some(c) = f.clinician_id {
            q.push(" AND g.clinician_id = ").push_bind(c);
        }
        if let Some(t) = f.from {
            q.push(" AND g.granted_at >= ").push_bind(t);
        }
        if let Some(t) = f.to {
            q.push(" AND g.granted_at < ").push_bind(t);
        }
        if let Some((centre, me)) = f.scope {
            q.push(" AND (g.clinician_id = ").push_bind(me);
            q.push(" OR g.patient_id IN (SELECT p.id FROM patients p WHERE p.home_facility_id = ")
                .push_bind(centre)
                .push("))");
        }
        q.push(" ORDER BY g.clinician_id, g.granted_at DESC, g.id DESC LIMIT ").push_bind(f.limit);
        q.push(" OFFSET ").push_bind(f.offset);
        q.build_query_as::<Grant>().fetch_all(pool).await
    })
}

#[cfg(test)]
mod tests {
    use super::LINK_STATUSES;
    use crate::auth::policy::establishes_relationship;
    use crate::domain::consultation::Status;

    #[test]
    fn the_link_statuses_are_the_policys() {
        let policy: Vec<Status> = Status::ALL
            .iter()
            .copied()
            .filter(|s| establishes_relationship(*s))
            .collect();
        assert_eq!(policy, LINK_STATUSES);
    }
}
