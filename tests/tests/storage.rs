//! Storage on both engines: a named uniqueness rule recognises its own violation and no other,
//! and every duplicate the directory refuses is answered with its own 409.

use serde_json::json;
use telehealth::domain::consultation::{FacilityKind, FacilityLevel};
use telehealth::domain::ids::FacilityId;
use telehealth::domain::text::BoundedText;
use telehealth::domain::time::Zone;
use telehealth::scheduling::directory::store::{
    self, DEPARTMENT_NAME, FACILITY_CODE, NewFacility, PATIENT_NATIONAL_ID, SPECIALTY_CODE,
};
use telehealth::storage::{OnViolation, UniqueKey};
use telehealth_tests::{TestApp, both_engines};

fn text(s: &str) -> BoundedText {
    BoundedText::parse(s, 200, false).expect("test text is valid")
}

fn facility(code: &str, name: &str) -> NewFacility {
    NewFacility {
        code: text(code),
        name: text(name),
        kind: FacilityKind::HubHospital,
        level: FacilityLevel::Central,
        province: text("Huế"),
        address: text("-"),
        zone: Zone::default(),
    }
}

/// A rule the schema does not have, on a table that has another.
const FACILITY_NAME: UniqueKey = UniqueKey {
    table: "facilities",
    columns: &["name"],
};

#[derive(Debug, PartialEq)]
enum Mapped {
    Duplicate,
    Storage,
}

impl From<sqlx::Error> for Mapped {
    fn from(_: sqlx::Error) -> Self {
        Mapped::Storage
    }
}

both_engines!(
    a_violation_is_its_own_keys_only,
    |app: TestApp| async move {
        let mut c = app.db().acquire().await.expect("connection");
        let now = chrono::Utc::now();
        let first = store::insert_facility(c.conn(), &facility("SAME", "First"), now)
            .await
            .expect("first facility");

        // Same code, another name: only the code's rule is broken.
        let err = store::insert_facility(c.conn(), &facility("SAME", "Second"), now)
            .await
            .expect_err("a second facility with the same code");
        assert!(FACILITY_CODE.violated_by(&err), "{err}");
        assert!(
            !FACILITY_NAME.violated_by(&err),
            "another key of the same table"
        );
        assert!(
            !SPECIALTY_CODE.violated_by(&err),
            "the same column name on another table"
        );
        assert!(!PATIENT_NATIONAL_ID.violated_by(&err), "another table");

        // on_violation turns only its own key's violation into the domain's error.
        let mapped = store::insert_facility(c.conn(), &facility("SAME", "Third"), now)
            .await
            .on_violation(&FACILITY_CODE, || Mapped::Duplicate);
        assert_eq!(mapped.map(|_| ()), Err(Mapped::Duplicate));
        let unmapped = store::insert_facility(c.conn(), &facility("SAME", "Fourth"), now)
            .await
            .on_violation(&FACILITY_NAME, || Mapped::Duplicate);
        assert_eq!(unmapped.map(|_| ()), Err(Mapped::Storage));

        // A rule of two columns: neither of its columns alone is that rule.
        store::insert_department(c.conn(), first.id, "Cardiology")
            .await
            .expect("first department");
        let err = store::insert_department(c.conn(), first.id, "Cardiology")
            .await
            .expect_err("the same department twice");
        assert!(DEPARTMENT_NAME.violated_by(&err), "{err}");
        for columns in [&["facility_id"][..], &["name"][..]] {
            let part = UniqueKey {
                table: "departments",
                columns,
            };
            assert!(!part.violated_by(&err), "{columns:?} alone");
        }

        // A broken foreign key is no uniqueness rule's violation.
        let err = store::insert_department(c.conn(), FacilityId(i64::MAX), "Cardiology")
            .await
            .expect_err("a department of no facility");
        assert!(!DEPARTMENT_NAME.violated_by(&err), "{err}");
        assert!(!FACILITY_CODE.violated_by(&sqlx::Error::RowNotFound));
    }
);

both_engines!(
    each_duplicate_gets_its_own_conflict,
    |app: TestApp| async move {
        let hub = app
            .post(
                "/api/v1/facilities",
                json!({"code": "DUP", "name": "Hub", "kind": "hub_hospital", "level": "central",
                   "province": "Huế"}),
            )
            .await
            .expect(201)
            .id();
        let r = app
            .post(
                "/api/v1/facilities",
                json!({"code": "DUP", "name": "Other", "kind": "care_centre", "level": "commune",
                   "province": "Huế"}),
            )
            .await;
        assert_eq!((r.status, r.error_code()), (409, "duplicate_code"));

        let department = format!("/api/v1/facilities/{hub}/departments");
        app.post(&department, json!({"name": "Cardiology"}))
            .await
            .expect(201);
        let r = app.post(&department, json!({"name": "Cardiology"})).await;
        assert_eq!((r.status, r.error_code()), (409, "duplicate_department"));

        let specialty =
            json!({"code": "cardiology", "name_en": "Cardiology", "name_vi": "Tim mạch"});
        app.post("/api/v1/specialties", specialty.clone())
            .await
            .expect(201);
        let r = app.post("/api/v1/specialties", specialty).await;
        assert_eq!((r.status, r.error_code()), (409, "duplicate_code"));

        let patient = json!({"full_name": "Trần Thị B", "date_of_birth": "1980-02-03", "sex": "female",
                         "national_id": "079180001234", "home_facility_id": hub});
        app.post("/api/v1/patients", patient.clone())
            .await
            .expect(201);
        let r = app.post("/api/v1/patients", patient).await;
        assert_eq!((r.status, r.error_code()), (409, "duplicate_national_id"));
    }
);
