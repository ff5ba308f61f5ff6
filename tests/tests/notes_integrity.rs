//! Signed notes verify on every read (issue 12, finding 6), on both engines: an entry whose stored
//! document was edited behind the server's back, or re-signed with a key the server derives from
//! its visit-link secret, is served as failing verification by the note, its history, the printed
//! summary and the patient's timeline, never as valid text; each failing read raises
//! `note_verification_failures_total` and records an audit event; `telehealth notes verify`
//! names it and exits 1. Signing keys are random per clinician, kept encrypted under a key file
//! outside the database, and do not change when the visit-link key is rotated.

use std::process::Command;

use serde_json::{Value, json};
use telehealth::config::Secret;
use telehealth::storage::Db;
use telehealth_tests::{Cast, NoteCast, TestApp, both_engines, target_dir};

const METRICS_TOKEN: &str = "scrape-notes-integrity-0123";
/// Only in the tampered document: a drug the clinician never prescribed.
const TAMPERED: &str = "Morphin 30 mg";

struct Setup {
    app: TestApp,
    cast: Cast,
    k: i64,
    spec: TestApp,
    patient: TestApp,
}

impl Setup {
    async fn create(app: &TestApp) -> Setup {
        let NoteCast {
            cast,
            k,
            spec,
            patient,
            ..
        } = NoteCast::create(app).await;
        Setup {
            app: app.clone(),
            cast,
            k,
            spec,
            patient,
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/api/v1/consultations/{}/{rest}", self.k)
    }

    /// Saves a full note and signs it; returns the signed entry.
    async fn write_and_sign(&self) -> Value {
        let content = json!({
            "subjective": "Đau ngực khi leo dốc.",
            "assessment": "Tăng huyết áp độ 2.",
            "plan": "Amlodipin 5 mg/ngày.",
            "diagnoses": [{"code": "I10", "text": "Tăng huyết áp vô căn"}],
            "advice": "Theo dõi huyết áp hằng ngày.",
            "follow_up": "teleconsultation"
        });
        let saved = self
            .spec
            .put(
                &self.path("note"),
                json!({"version": 0, "content": content}),
            )
            .await
            .expect(200);
        let version = saved.body["version"].as_i64().expect("version");
        let signed = self
            .spec
            .post(&self.path("note/sign"), json!({"version": version}))
            .await
            .expect(200)
            .body;
        signed["entries"][0].clone()
    }

    async fn timeline(&self, who: &TestApp) -> String {
        who.get(&format!(
            "/api/v1/patients/{}/timeline?lang=en",
            self.cast.patient
        ))
        .await
        .expect(200)
        .text
    }
}

/// Lets the test change signed entries, as anyone holding the database can.
async fn drop_entry_triggers(app: &TestApp) {
    match app.db() {
        Db::Sqlite(_) => app.exec("DROP TRIGGER note_entries_no_update").await,
        Db::Postgres(_) => {
            app.exec("DROP TRIGGER note_entries_no_change ON note_entries")
                .await
        }
    }
}

/// Overwrites entry `id`'s stored columns.
async fn overwrite_entry(
    app: &TestApp,
    id: i64,
    document: &str,
    hash: &str,
    signature: &str,
    public_key: &str,
) {
    const SQL: &str = "UPDATE note_entries SET document = $1, content_hash = $2, signature = $3, \
                       public_key = $4 WHERE id = $5";
    let n = match app.db() {
        Db::Sqlite(p) => sqlx::query(SQL)
            .bind(document)
            .bind(hash)
            .bind(signature)
            .bind(public_key)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
        Db::Postgres(p) => sqlx::query(SQL)
            .bind(document)
            .bind(hash)
            .bind(signature)
            .bind(public_key)
            .bind(id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
    }
    .expect("the entry is overwritten");
    assert_eq!(n, 1);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The counter's value in a Prometheus scrape (0 when it has not been counted yet).
async fn failures(app: &TestApp) -> f64 {
    let r = app
        .send_any(app.http.get(app.url("/metrics")).bearer_auth(METRICS_TOKEN))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.text
        .lines()
        .filter(|l| l.starts_with("note_verification_failures_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs the built `telehealth` binary against the app's database.
fn notes_verify(app: &TestApp) -> (Option<i32>, String) {
    let bin = target_dir().join("debug").join("telehealth");
    let out = Command::new(&bin)
        .args(["--database-url", app.database_url()])
        .arg("--data-dir")
        .arg(&app.settings().data_dir)
        .args(["notes", "verify"])
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("{} runs (build it first): {e}", bin.display()));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), said)
}

/// Every read of the tampered note shows it as failing verification and never its text.
async fn every_read_fails(s: &Setup, entry_id: i64) {
    let note = s.spec.get(&s.path("note")).await.expect(200);
    let e = &note.body["entries"][0];
    assert_eq!(e["id"], entry_id);
    assert_eq!(e["verification"], "failed", "{}", note.text);
    assert!(e["verification_failure"].is_string(), "{}", note.text);
    assert!(e["content"].is_null() && e["document"].is_null());
    assert!(!note.text.contains(TAMPERED), "{}", note.text);

    let own = s.patient.get(&s.path("note?lang=en")).await.expect(200);
    assert_eq!(own.body["status"], "verification_failed", "{}", own.text);
    assert_eq!(own.body["verification"], "failed");
    assert!(
        own.body["sections"]
            .as_array()
            .expect("sections")
            .is_empty()
    );
    assert!(!own.text.contains(TAMPERED), "{}", own.text);

    let history = s.spec.get(&s.path("note/history")).await.expect(200);
    assert_eq!(history.body["entries"][0]["verification"], "failed");
    assert!(!history.text.contains(TAMPERED), "{}", history.text);

    for who in [&s.spec, &s.patient] {
        let summary = who.get(&s.path("summary?lang=en")).await.expect(200);
        assert!(!summary.text.contains(TAMPERED), "{}", summary.text);
        assert!(
            summary.text.contains("class=\"verification-failed\""),
            "{}",
            summary.text
        );
        assert!(
            summary.text.contains("failed verification"),
            "{}",
            summary.text
        );

        let timeline = s.timeline(who).await;
        assert!(!timeline.contains(TAMPERED), "{timeline}");
        assert!(
            timeline.contains("\"verification\":\"failed\""),
            "{timeline}"
        );
    }
}

both_engines!(
    tampered_entries_fail_verification_on_every_read,
    |app: TestApp| async move {
        let app = app
            .restart_with(|s| s.metrics_token = Some(Secret::new(METRICS_TOKEN)))
            .await;
        let s = Setup::create(&app).await;
        let entry = s.write_and_sign().await;
        let entry_id = entry["id"].as_i64().expect("entry id");
        assert_eq!(entry["verification"], "verified");

        // Intact: every read verifies, and the command agrees.
        let note = s.spec.get(&s.path("note")).await.expect(200).body;
        assert_eq!(note["entries"][0]["verification"], "verified");
        let own = s.patient.get(&s.path("note")).await.expect(200).body;
        assert_eq!(own["status"], "signed");
        assert_eq!(own["verification"], "verified");
        let (code, said) = notes_verify(&app);
        assert_eq!(code, Some(0), "{said}");
        assert!(said.contains("1 entries verified"), "{said}");

        // The document is edited in place: the hash no longer matches.
        drop_entry_triggers(&app).await;
        let document = entry["document"].as_str().expect("document");
        let tampered = document.replace("Amlodipin 5 mg/ngày.", TAMPERED);
        assert_ne!(tampered, document);
        overwrite_entry(
            &app,
            entry_id,
            &tampered,
            entry["content_hash"].as_str().expect("hash"),
            entry["signature"].as_str().expect("signature"),
            entry["public_key"].as_str().expect("key"),
        )
        .await;
        let before = failures(&app).await;
        every_read_fails(&s, entry_id).await;
        let after = failures(&app).await;
        // Note, patient note, history, two summaries and two timelines: one failure each.
        assert!(after >= before + 7.0, "{before} → {after}");

        // Each failing read is in the audit trail, against the patient and the entry.
        let events = s
            .app
            .get(&format!(
                "/api/v1/audit?patient_id={}&limit=500",
                s.cast.patient
            ))
            .await
            .expect(200)
            .body;
        let record_id = entry_id.to_string();
        let failed: Vec<&Value> = events
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["action"] == "note_verification_failed")
            .collect();
        assert!(failed.len() >= 7, "{events}");
        assert!(failed.iter().all(|e| e["record_type"] == "note_entry"
            && e["record_id"] == record_id.as_str()
            && e["outcome"] == "failed"));
        assert!(failed.iter().any(|e| e["actor"] == "pat"));
        assert!(failed.iter().any(|e| e["actor"] == "spec"));

        // The command names it.
        let (code, said) = notes_verify(&app);
        assert_eq!(code, Some(1), "{said}");
        assert!(said.contains(&format!("entry {entry_id} ")), "{said}");
        assert!(said.contains("hash"), "{said}");

        // Hash recomputed too: the signature no longer matches.
        let rehashed = sha256_hex(tampered.as_bytes());
        overwrite_entry(
            &app,
            entry_id,
            &tampered,
            &rehashed,
            entry["signature"].as_str().expect("signature"),
            entry["public_key"].as_str().expect("key"),
        )
        .await;
        every_read_fails(&s, entry_id).await;
        let (code, said) = notes_verify(&app);
        assert_eq!(code, Some(1), "{said}");
        assert!(said.contains("signature"), "{said}");
    }
);

both_engines!(
    an_entry_forged_with_the_derived_key_does_not_verify,
    |app: TestApp| async move {
        use base64::Engine;
        use ed25519_dalek::Signer;
        let s = Setup::create(&app).await;
        let entry = s.write_and_sign().await;
        let entry_id = entry["id"].as_i64().expect("entry id");
        // The key the server used to derive from its visit-link secret is not the clinician's key.
        let secret = std::fs::read(app.settings().data_dir.join("visit-link.key")).expect("secret");
        let derived = telehealth::notes::legacy_signing_key(
            &secret,
            telehealth::domain::ids::ClinicianId(s.cast.specialist),
        )
        .expect("derived key");
        let derived_public = telehealth::notes::public_key(&derived);
        assert_ne!(entry["public_key"], derived_public.as_str());
        let published = s
            .app
            .get(&format!(
                "/api/v1/clinicians/{}/signing-key",
                s.cast.specialist
            ))
            .await
            .expect(200)
            .body;
        assert_eq!(published["public_key"], entry["public_key"]);
        assert!(!published.to_string().contains(&derived_public));

        // Whoever holds the data directory forges a complete entry with it.
        drop_entry_triggers(&app).await;
        let forged = entry["document"]
            .as_str()
            .expect("document")
            .replace("Amlodipin 5 mg/ngày.", TAMPERED);
        let b64 = base64::engine::general_purpose::STANDARD;
        let signature = b64.encode(derived.sign(forged.as_bytes()).to_bytes());
        overwrite_entry(
            &app,
            entry_id,
            &forged,
            &sha256_hex(forged.as_bytes()),
            &signature,
            &derived_public,
        )
        .await;
        every_read_fails(&s, entry_id).await;
        let (code, said) = notes_verify(&app);
        assert_eq!(code, Some(1), "{said}");
        assert!(said.contains(&format!("entry {entry_id} ")), "{said}");
        assert!(said.contains("key"), "{said}");
    }
);

both_engines!(
    signing_keys_survive_a_visit_link_key_rotation,
    |app: TestApp| async move {
        let s = Setup::create(&app).await;
        let entry = s.write_and_sign().await;
        let key = entry["public_key"].as_str().expect("key").to_string();
        // The private key is in the database only encrypted, under the key file in the data folder.
        let stored = app
            .scalar("SELECT COUNT(*) FROM clinician_signing_keys WHERE retired_at IS NULL")
            .await;
        assert_eq!(stored, 1);
        let kek = app.settings().data_dir.join("notes-kek.key");
        let meta = std::fs::metadata(&kek).expect("the KEK file exists");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
        assert!(meta.len() >= 32);

        // A new visit-link key: links change, signing keys do not.
        let rotated = app.settings().data_dir.join("visit-link-2.key");
        let app = app
            .restart_with(|s| s.visit_link_key_file = Some(rotated.clone()))
            .await;
        assert!(rotated.exists());
        let published = app
            .get(&format!(
                "/api/v1/clinicians/{}/signing-key",
                s.cast.specialist
            ))
            .await
            .expect(200)
            .body;
        assert_eq!(published["public_key"], key.as_str());
        let spec = app.as_token(s.spec.token.as_deref().expect("signed in"));
        let note = spec.get(&s.path("note")).await.expect(200).body;
        assert_eq!(note["entries"][0]["verification"], "verified");
        let addendum = spec
            .post(
                &s.path("note/addenda"),
                json!({"text": "Bổ sung: tái khám sau 1 tuần."}),
            )
            .await
            .expect(201)
            .body;
        assert_eq!(addendum["public_key"], key.as_str());
        assert_eq!(addendum["verification"], "verified");

        // Without its key file the encrypted keys are useless: a server with another KEK refuses to
        // sign with them rather than making new ones silently.
        let other_kek = app.settings().data_dir.join("other-kek.key");
        let app = app
            .restart_with(|s| s.notes_kek_file = Some(other_kek.clone()))
            .await;
        let spec = app.as_token(s.spec.token.as_deref().expect("signed in"));
        let refused = spec
            .send_any(
                spec.http
                    .post(spec.url(&s.path("note/addenda")))
                    .bearer_auth(spec.token.as_deref().expect("signed in"))
                    .json(&json!({"text": "Bổ sung lần hai."})),
            )
            .await;
        assert_eq!(refused.status, 500, "{}", refused.text);
        assert!(!refused.text.contains("Bổ sung"));
        let (code, said) = notes_verify(&app);
        assert_eq!(code, Some(0), "{said}");
    }
);

both_engines!(
    entries_signed_with_derived_keys_are_adopted_once,
    |app: TestApp| async move {
        use base64::Engine;
        use ed25519_dalek::Signer;
        let s = Setup::create(&app).await;
        let entry = s.write_and_sign().await;
        let entry_id = entry["id"].as_i64().expect("entry id");
        // The database as the old scheme left it: the entry signed with the key derived from the
        // visit-link secret, no key rows, and no KEK file yet.
        let secret = std::fs::read(app.settings().data_dir.join("visit-link.key")).expect("secret");
        let derived = telehealth::notes::legacy_signing_key(
            &secret,
            telehealth::domain::ids::ClinicianId(s.cast.specialist),
        )
        .expect("derived key");
        let derived_public = telehealth::notes::public_key(&derived);
        drop_entry_triggers(&app).await;
        let document = entry["document"].as_str().expect("document");
        let b64 = base64::engine::general_purpose::STANDARD;
        overwrite_entry(
            &app,
            entry_id,
            document,
            entry["content_hash"].as_str().expect("hash"),
            &b64.encode(derived.sign(document.as_bytes()).to_bytes()),
            &derived_public,
        )
        .await;
        app.exec("DELETE FROM clinician_signing_keys").await;
        std::fs::remove_file(app.settings().data_dir.join("notes-kek.key")).expect("KEK removed");

        // The first start with a KEK records the derived key as retired, for that entry.
        let app = app.restart().await;
        let spec = app.as_token(s.spec.token.as_deref().expect("signed in"));
        let note = spec.get(&s.path("note")).await.expect(200).body;
        assert_eq!(note["entries"][0]["verification"], "verified", "{note}");
        let published = app
            .get(&format!(
                "/api/v1/clinicians/{}/signing-key",
                s.cast.specialist
            ))
            .await
            .expect(200)
            .body;
        assert!(published["public_key"].is_null(), "{published}");
        assert_eq!(published["keys"][0]["public_key"], derived_public.as_str());
        assert_eq!(published["keys"][0]["legacy_through_entry"], entry_id);
        assert!(published["keys"][0]["retired_at"].is_string());

        // New signatures use a random key; an addendum forged later with the derived key does not
        // verify, nor after another restart.
        let addendum = spec
            .post(
                &s.path("note/addenda"),
                json!({"text": "Bổ sung: tái khám sau 1 tuần."}),
            )
            .await
            .expect(201)
            .body;
        assert_eq!(addendum["verification"], "verified");
        assert_ne!(addendum["public_key"], derived_public.as_str());
        let addendum_id = addendum["id"].as_i64().expect("id");
        let forged = addendum["document"]
            .as_str()
            .expect("document")
            .replace("tái khám sau 1 tuần", TAMPERED);
        overwrite_entry(
            &app,
            addendum_id,
            &forged,
            &sha256_hex(forged.as_bytes()),
            &b64.encode(derived.sign(forged.as_bytes()).to_bytes()),
            &derived_public,
        )
        .await;
        let app = app.restart().await;
        let spec = app.as_token(s.spec.token.as_deref().expect("signed in"));
        let note = spec.get(&s.path("note")).await.expect(200);
        assert_eq!(note.body["entries"][0]["verification"], "verified");
        assert_eq!(note.body["entries"][1]["verification"], "failed");
        assert!(!note.text.contains(TAMPERED));
        let (code, said) = notes_verify(&app);
        assert_eq!(code, Some(1), "{said}");
        assert!(said.contains(&format!("entry {addendum_id} ")), "{said}");
        assert!(!said.contains(&format!("entry {entry_id} ")), "{said}");
    }
);
