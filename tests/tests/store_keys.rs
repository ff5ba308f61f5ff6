//! The named uniqueness rules of the stores match the errors the engines really raise: each
//! rule's violation is recognised as that rule and as no other, on SQLite and on PostgreSQL.
//!
//! The services decide on these (a taken user name is a 409, a lost draft race is explained, a
//! second addendum at the same position retries), and the races that reach them are rare in the
//! other tests, so a rule whose table or columns drifted from the schema would otherwise turn
//! them into 500s unnoticed.

use chrono::Utc;
use telehealth::auth::AccountId;
use telehealth::auth::accounts::store::{
    self as accounts, CLINICIAN_LINK, NewAccountRow, PATIENT_LINK, USERNAME,
};
use telehealth::auth::changes::store::{self as changes, NewChange, ONE_PENDING};
use telehealth::domain::ids::{ClinicianId, ConsultationId, PatientId};
use telehealth::domain::note::EntryKind;
use telehealth::notes::passkeys::store::{self as passkeys, CREDENTIAL_ID, NewPasskey};
use telehealth::notes::store::{
    self as notes, ENTRY_SEQ, NOTE_OF_CONSULTATION, NewEntry, REVISION_VERSION,
};
use telehealth::storage::{Db, UniqueKey};
use telehealth_tests::{Cast, TestApp, both_engines};

const ALL: [UniqueKey; 8] = [
    USERNAME,
    PATIENT_LINK,
    CLINICIAN_LINK,
    ONE_PENDING,
    NOTE_OF_CONSULTATION,
    REVISION_VERSION,
    ENTRY_SEQ,
    CREDENTIAL_ID,
];

/// `err` is a violation of `key` and of no other rule.
fn only(err: sqlx::Error, key: &UniqueKey) {
    for k in &ALL {
        let same = k.table == key.table && k.columns == key.columns;
        assert_eq!(
            k.violated_by(&err),
            same,
            "{}({:?}) against {err}",
            k.table,
            k.columns
        );
    }
}

fn row<'a>(
    username: &'a str,
    patient: Option<PatientId>,
    clinician: Option<ClinicianId>,
) -> NewAccountRow<'a> {
    NewAccountRow {
        username,
        display_name: username,
        password_hash: None,
        patient_id: patient,
        clinician_id: clinician,
        created_at: Utc::now(),
    }
}

async fn insert(db: &Db, a: &NewAccountRow<'_>) -> Result<AccountId, sqlx::Error> {
    let mut c = db.acquire().await.expect("connection");
    accounts::insert_account(c.conn(), a).await
}

both_engines!(account_rules_are_recognised, |app: TestApp| async move {
    let cast = Cast::create(&app).await;
    let db = app.db();
    let patient = Some(PatientId(cast.patient));
    let clinician = Some(ClinicianId(cast.rural));
    insert(db, &row("first", patient, clinician))
        .await
        .expect("first account");
    let taken = insert(db, &row("first", None, None)).await;
    only(taken.expect_err("the name is taken"), &USERNAME);
    let linked = insert(db, &row("second", patient, None)).await;
    only(linked.expect_err("the patient is linked"), &PATIENT_LINK);
    let linked = insert(db, &row("third", None, clinician)).await;
    only(
        linked.expect_err("the clinician is linked"),
        &CLINICIAN_LINK,
    );
});

both_engines!(
    one_pending_change_is_recognised,
    |app: TestApp| async move {
        let db = app.db();
        let account = insert(db, &row("someone", None, None))
            .await
            .expect("account");
        let proposer = insert(db, &row("proposer", None, None))
            .await
            .expect("account");
        let now = Utc::now();
        let change = NewChange {
            account,
            proposed_by: proposer,
            proposed_at: now,
            expires_at: now + chrono::Duration::days(1),
            patient_id: None,
            clinician_id: None,
            roles_before: "[]",
            roles_after: "[]",
        };
        let mut c = db.acquire().await.expect("connection");
        changes::insert(c.conn(), &change)
            .await
            .expect("first change");
        let second = changes::insert(c.conn(), &change).await;
        only(second.expect_err("one is pending"), &ONE_PENDING);
    }
);

both_engines!(note_rules_are_recognised, |app: TestApp| async move {
    let cast = Cast::create(&app).await;
    let consultation = ConsultationId(cast.book_now(&app).await);
    let patient = PatientId(cast.patient);
    let author = ClinicianId(cast.specialist);
    let now = Utc::now();
    let mut c = app.db().acquire().await.expect("connection");
    let note = notes::insert_note(c.conn(), consultation, patient, now)
        .await
        .expect("note");
    let again = notes::insert_note(c.conn(), consultation, patient, now).await;
    only(
        again.expect_err("one note per consultation"),
        &NOTE_OF_CONSULTATION,
    );

    notes::insert_revision(c.conn(), &note, "{}", author, now)
        .await
        .expect("revision");
    let again = notes::insert_revision(c.conn(), &note, "{}", author, now).await;
    only(
        again.expect_err("one revision per version"),
        &REVISION_VERSION,
    );

    let entry = NewEntry {
        note_id: note.id,
        seq: 1,
        kind: EntryKind::Note,
        amends: None,
        document: "{}",
        content_hash: "0",
        signer: author,
        signed_at: now,
        signature: "",
        public_key: "",
        passkey_assertion: None,
    };
    notes::insert_entry(c.conn(), &entry).await.expect("entry");
    let again = notes::insert_entry(c.conn(), &entry).await;
    only(again.expect_err("one entry per position"), &ENTRY_SEQ);
});

both_engines!(passkey_rule_is_recognised, |app: TestApp| async move {
    let cast = Cast::create(&app).await;
    let row = NewPasskey {
        clinician: ClinicianId(cast.specialist),
        credential_id: "Y3JlZGVudGlhbA",
        name: "phone",
        credential: "{}",
        public_jwk: "{}",
        tag: "-",
        created_at: Utc::now(),
    };
    let mut c = app.db().acquire().await.expect("connection");
    passkeys::insert_passkey(c.conn(), &row)
        .await
        .expect("first passkey");
    let other = NewPasskey {
        clinician: ClinicianId(cast.rural),
        ..row
    };
    let again = passkeys::insert_passkey(c.conn(), &other).await;
    only(
        again.expect_err("a credential is enrolled once"),
        &CREDENTIAL_ID,
    );
});
