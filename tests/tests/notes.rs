//! Encounter notes on both engines: draft → sign → addenda, the content hash, signed notes that
//! no route (nor SQL) can change, concurrent saves, bad input, and what each role sees.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use telehealth::storage::Db;
use telehealth_tests::{Cast, NoteCast, TestApp, both_engines, next_weekday};

struct Setup {
    app: TestApp,
    cast: Cast,
    /// A booked teleconsultation between the specialist and the rural clinician.
    k: i64,
    spec: TestApp,
    rural: TestApp,
    patient: TestApp,
}

impl Setup {
    async fn create(app: &TestApp) -> Setup {
        let NoteCast {
            cast,
            k,
            spec,
            rural,
            patient,
        } = NoteCast::create(app).await;
        Setup {
            app: app.clone(),
            cast,
            k,
            spec,
            rural,
            patient,
        }
    }

    fn note(&self) -> String {
        format!("/api/v1/consultations/{}/note", self.k)
    }

    fn path(&self, rest: &str) -> String {
        format!("/api/v1/consultations/{}/{rest}", self.k)
    }
}

fn full_content() -> Value {
    json!({
        "subjective": "Đau ngực khi leo dốc, 2 tuần nay.",
        "objective": "HA 160/95 mmHg, mạch 88.\nTim đều.",
        "assessment": "Tăng huyết áp độ 2, nghi đau thắt ngực ổn định.",
        "plan": "Amlodipin 5 mg/ngày. <b>Điện tâm đồ</b> gắng sức.",
        "diagnoses": [
            {"code": "i10", "text": "Tăng huyết áp vô căn"},
            {"code": "I20.8", "text": "Đau thắt ngực khác"}
        ],
        "advice": "Theo dõi huyết áp hằng ngày; tái khám sau 2 tuần.",
        "follow_up": "teleconsultation",
        "follow_up_note": "Hội chẩn lại sau 2 tuần"
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The entry's Ed25519 signature verifies its document with the signer's published key, and
/// not a changed document.
async fn verify_signature(app: &TestApp, entry: &Value) {
    use base64::Engine;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    let b64 = base64::engine::general_purpose::STANDARD;
    let signer = entry["signer_clinician_id"].as_i64().expect("signer");
    let published = app
        .get(&format!("/api/v1/clinicians/{signer}/signing-key"))
        .await
        .expect(200)
        .body;
    assert_eq!(published["algorithm"], "Ed25519");
    assert_eq!(published["public_key"], entry["public_key"]);
    let key: [u8; 32] = b64
        .decode(published["public_key"].as_str().expect("key"))
        .expect("base64")
        .try_into()
        .expect("32 bytes");
    let key = VerifyingKey::from_bytes(&key).expect("a valid key");
    let signature: [u8; 64] = b64
        .decode(entry["signature"].as_str().expect("signature"))
        .expect("base64")
        .try_into()
        .expect("64 bytes");
    let signature = Signature::from_bytes(&signature);
    let document = entry["document"].as_str().expect("document");
    assert!(key.verify(document.as_bytes(), &signature).is_ok());
    let forged = document.replacen("\"seq\":", "\"seq\": ", 1);
    assert!(key.verify(forged.as_bytes(), &signature).is_err());
}

/// The entry's hash is the SHA-256 of its document, and the document is in canonical form.
#[track_caller]
fn verify(entry: &Value) {
    let document = entry["document"].as_str().expect("document");
    assert_eq!(
        hex(&Sha256::digest(document.as_bytes())),
        entry["content_hash"].as_str().expect("hash"),
        "the content hash covers the stored document"
    );
    let parsed: Value = serde_json::from_str(document).expect("document is JSON");
    assert_eq!(
        serde_json::to_string(&parsed).expect("serialises"),
        document,
        "the document is canonical: sorted keys, no whitespace"
    );
}

async fn sql(app: &TestApp, statement: &'static str) -> Result<u64, sqlx::Error> {
    match app.db() {
        Db::Sqlite(p) => sqlx::query(statement)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
        Db::Postgres(p) => sqlx::query(statement)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
    }
}

/// Rows of the three note tables.
async fn note_rows(app: &TestApp) -> Vec<i64> {
    let mut out = Vec::new();
    for q in [
        "SELECT COUNT(*) FROM encounter_notes",
        "SELECT COUNT(*) FROM note_revisions",
        "SELECT COUNT(*) FROM note_entries",
    ] {
        let n: i64 = match app.db() {
            Db::Sqlite(p) => sqlx::query_scalar(q).fetch_one(p).await,
            Db::Postgres(p) => sqlx::query_scalar(q).fetch_one(p).await,
        }
        .expect("count");
        out.push(n);
    }
    out
}

/// Saves the full content (spec, over `version`) and signs it; returns the signed note.
async fn write_and_sign(s: &Setup) -> Value {
    let saved = s
        .spec
        .put(&s.note(), json!({"version": 0, "content": full_content()}))
        .await
        .expect(200);
    let version = saved.body["version"].as_i64().expect("version");
    s.spec
        .post(&s.path("note/sign"), json!({"version": version}))
        .await
        .expect(200)
        .body
}

both_engines!(draft_sign_and_amend, |app: TestApp| async move {
    let s = Setup::create(&app).await;

    // Nothing yet.
    let empty = s.spec.get(&s.note()).await.expect(200).body;
    assert_eq!(empty["status"], "none");
    assert_eq!(empty["version"], 0);

    // Three saves by two authors, each over the version it read.
    let v1 = s
        .spec
        .put(
            &s.note(),
            json!({"version": 0, "content": {"assessment": "Nghi tăng huyết áp"}}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(v1["status"], "draft");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["draft"]["content"]["assessment"], "Nghi tăng huyết áp");
    let v2 = s
        .rural
        .put(
            &s.note(),
            json!({"version": 1, "content": {"subjective": "Đau ngực", "assessment": "Nghi tăng huyết áp"}}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["draft"]["author_clinician_id"], s.cast.rural);
    let v3 = s
        .spec
        .put(&s.note(), json!({"version": 2, "content": full_content()}))
        .await
        .expect(200)
        .body;
    assert_eq!(v3["version"], 3);
    assert_eq!(v3["draft"]["content"]["diagnoses"][0]["code"], "I10");

    // The history keeps every save with its author.
    let history = s.rural.get(&s.path("note/history")).await.expect(200).body;
    let revisions = history["revisions"].as_array().expect("revisions");
    assert_eq!(revisions.len(), 3);
    let authors: Vec<i64> = revisions
        .iter()
        .map(|r| r["author_clinician_id"].as_i64().expect("author"))
        .collect();
    assert_eq!(
        authors,
        [s.cast.specialist, s.cast.rural, s.cast.specialist]
    );
    assert_eq!(revisions[0]["content"]["assessment"], "Nghi tăng huyết áp");

    // Signing locks it, naming the signer and the time, with the hash of the signed document.
    let signed = s
        .spec
        .post(&s.path("note/sign"), json!({"version": 3}))
        .await
        .expect(200)
        .body;
    assert_eq!(signed["status"], "signed");
    assert!(signed["draft"].is_null());
    let entries = signed["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1);
    let note = &entries[0];
    assert_eq!(note["kind"], "note");
    assert_eq!(note["seq"], 1);
    assert_eq!(note["signer_clinician_id"], s.cast.specialist);
    verify(note);
    verify_signature(&s.patient, note).await;
    let doc: Value = serde_json::from_str(note["document"].as_str().expect("doc")).expect("json");
    assert_eq!(doc["format"], "telehealth-note/1");
    assert_eq!(doc["consultation_id"], s.k);
    assert_eq!(doc["patient_id"], s.cast.patient);
    assert_eq!(doc["signer"]["clinician_id"], s.cast.specialist);
    assert!(doc["amends"].is_null());
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(doc["signed_at"].as_str().expect("signed_at"))
            .expect("rfc 3339"),
        chrono::DateTime::parse_from_rfc3339(note["signed_at"].as_str().expect("signed_at"))
            .expect("rfc 3339")
    );
    assert_eq!(doc["content"], v3["draft"]["content"]);
    assert_eq!(note["content"]["advice"], full_content()["advice"]);

    // Corrections are addenda, each signed by its author, linked to the note by id and hash.
    let first = s
        .rural
        .post(
            &s.path("note/addenda"),
            json!({"text": "Bệnh nhân đã làm điện tâm đồ: bình thường."}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(first["kind"], "addendum");
    assert_eq!(first["seq"], 2);
    assert_eq!(first["amends"], note["id"]);
    assert_eq!(first["signer_clinician_id"], s.cast.rural);
    verify(&first);
    verify_signature(&s.app, &first).await;
    assert_ne!(
        first["public_key"], note["public_key"],
        "each clinician has a key"
    );
    let first_doc: Value =
        serde_json::from_str(first["document"].as_str().expect("doc")).expect("json");
    assert_eq!(first_doc["amends"]["content_hash"], note["content_hash"]);
    assert_eq!(first_doc["amends"]["seq"], 1);
    let second = s
        .spec
        .post(
            &s.path("note/addenda"),
            json!({"text": "Đính chính: Amlodipin 5 mg buổi sáng."}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(second["seq"], 3);
    verify(&second);

    // In order, and the signed note itself is untouched.
    let after = s.spec.get(&s.note()).await.expect(200).body;
    let seqs: Vec<i64> = after["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(after["entries"][0]["document"], note["document"]);
    assert_eq!(after["entries"][0]["content_hash"], note["content_hash"]);

    // The referring clinician reads the specialist's advice.
    let for_rural = s.rural.get(&s.note()).await.expect(200).body;
    assert_eq!(
        for_rural["entries"][0]["content"]["advice"],
        full_content()["advice"]
    );

    // The patient reads it in plain words, in either language, with the addenda.
    let en = s
        .patient
        .get(&format!("{}?lang=en", s.note()))
        .await
        .expect(200)
        .body;
    assert_eq!(en["status"], "signed");
    assert_eq!(en["lang"], "en");
    let label = |view: &Value, key: &str| -> (String, String) {
        let sec = view["sections"]
            .as_array()
            .expect("sections")
            .iter()
            .find(|x| x["key"] == key)
            .unwrap_or_else(|| panic!("no {key} in {view}"));
        (
            sec["label"].as_str().expect("label").to_string(),
            sec["text"].as_str().expect("text").to_string(),
        )
    };
    assert_eq!(label(&en, "objective").0, "What the doctor found");
    // The advice is the referring clinician's: the patient's summary leaves it out, text and all.
    let advice = full_content()["advice"]
        .as_str()
        .expect("advice")
        .to_string();
    assert!(
        en["sections"]
            .as_array()
            .expect("sections")
            .iter()
            .all(|x| x["key"] != "advice" && x["text"] != advice.as_str()),
        "{en}"
    );
    assert!(label(&en, "follow_up").1.contains("video consultation"));
    assert!(label(&en, "diagnoses").1.contains("(I10)"));
    assert_eq!(en["addenda"].as_array().expect("addenda").len(), 2);
    assert!(en.get("entries").is_none() && en.get("draft").is_none());
    let vi = s
        .patient
        .send(
            s.patient
                .http
                .get(s.patient.url(&s.note()))
                .header("accept-language", "fr;q=1, vi;q=0.8, en;q=0.5"),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(vi["lang"], "vi");
    assert_eq!(label(&vi, "objective").0, "Điều bác sĩ thấy khi khám");

    // The printable summary: HTML, escaped, with its own style allowed by hash only.
    let page = s
        .spec
        .get(&format!("{}?lang=en", s.path("summary")))
        .await
        .expect(200);
    assert!(
        page.headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let csp = page.headers["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(csp.contains("style-src 'sha256-") && !csp.contains("unsafe-inline"));
    assert!(page.text.contains("@media print"));
    assert!(page.text.contains("&lt;b&gt;Điện tâm đồ&lt;/b&gt;"));
    assert!(!page.text.contains("<b>"));
    assert!(
        page.text
            .contains(note["content_hash"].as_str().expect("hash"))
    );
    assert!(page.text.contains("Advice for the referring clinician"));
    assert!(page.text.contains("Đính chính: Amlodipin"));
    let style = page
        .text
        .split("<style>")
        .nth(1)
        .and_then(|rest| rest.split("</style>").next())
        .expect("style block");
    let style_hash = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style.as_bytes()))
    };
    assert!(
        csp.contains(&format!("'sha256-{style_hash}'")),
        "the CSP allows exactly the page's style block"
    );
    let patient_page = s.patient.get(&s.path("summary")).await.expect(200);
    assert!(!patient_page.text.contains("Lời khuyên") && !patient_page.text.contains(&advice));
    // Dates as people write them, the zone in words.
    assert!(
        patient_page.text.contains("(giờ Việt Nam, UTC+7)"),
        "{}",
        patient_page.text
    );
    assert!(!patient_page.text.contains("Asia/Ho_Chi_Minh"));
    assert!(page.text.contains("(Vietnam time, UTC+7)"));
    assert!(!patient_page.text.contains("SHA-256"));

    // The timeline lists it for the clinicians and for the patient.
    let timeline = s
        .spec
        .get(&format!("/api/v1/patients/{}/timeline", s.cast.patient))
        .await
        .expect(200)
        .body;
    let items = timeline.as_array().expect("items");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["consultation_id"], s.k);
    assert_eq!(items[0]["note_status"], "signed");
    assert_eq!(items[0]["entries"].as_array().expect("entries").len(), 3);
    let own = s
        .patient
        .get(&format!(
            "/api/v1/patients/{}/timeline?lang=en",
            s.cast.patient
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(own[0]["note"]["status"], "signed");
    assert!(own[0].get("entries").is_none());

    // Every read and write is in the audit trail, against the patient.
    let events = s
        .app
        .get(&format!(
            "/api/v1/audit?patient_id={}&limit=500",
            s.cast.patient
        ))
        .await
        .expect(200)
        .body;
    let events = events.as_array().expect("events").clone();
    let has = |actor: &str, action: &str| {
        events
            .iter()
            .any(|e| e["actor"] == actor && e["action"] == action && e["outcome"] == "allowed")
    };
    assert!(has("spec", "PUT /api/v1/consultations/{id}/note"));
    assert!(has("rural", "PUT /api/v1/consultations/{id}/note"));
    assert!(has("spec", "POST /api/v1/consultations/{id}/note/sign"));
    assert!(has("rural", "POST /api/v1/consultations/{id}/note/addenda"));
    assert!(has("pat", "GET /api/v1/consultations/{id}/note"));
    assert!(has("rural", "GET /api/v1/consultations/{id}/note/history"));
    assert!(has("spec", "GET /api/v1/consultations/{id}/summary"));
    assert!(has("spec", "GET /api/v1/patients/{id}/timeline"));
    assert!(
        events
            .iter()
            .filter(|e| e["action"] == "PUT /api/v1/consultations/{id}/note")
            .all(|e| e["record_type"] == "encounter_note")
    );
});

both_engines!(a_signed_note_never_changes, |app: TestApp| async move {
    let s = Setup::create(&app).await;
    let signed = write_and_sign(&s).await;
    let version = signed["version"].as_i64().expect("version");
    let before = note_rows(&app).await;

    // Through every route.
    for v in [0, version, version + 1] {
        let r = s
            .spec
            .put(
                &s.note(),
                json!({"version": v, "content": {"assessment": "đổi"}}),
            )
            .await
            .expect(409);
        assert_eq!(r.error_code(), "note_signed", "{}", r.text);
        assert_eq!(r.body["error"]["details"]["current_version"], version);
    }
    let r = s
        .rural
        .put(
            &s.note(),
            json!({"version": version, "content": {"assessment": "đổi"}}),
        )
        .await
        .expect(409);
    assert_eq!(r.error_code(), "note_signed");
    let again = s
        .spec
        .post(&s.path("note/sign"), json!({"version": version}))
        .await
        .expect(409);
    assert_eq!(again.error_code(), "note_signed");
    s.rural
        .post(&s.path("note/sign"), json!({"version": version}))
        .await
        .expect(403);
    let stranger_hub = app
        .create_facility("HUB-9", "hub_hospital", "Asia/Ho_Chi_Minh")
        .await;
    let stranger = app.create_clinician(stranger_hub, &["cardiology"]).await;
    let other = app
        .as_new_user("other", &[("clinician", None)], None, Some(stranger))
        .await;
    other
        .put(
            &s.note(),
            json!({"version": version, "content": {"assessment": "x"}}),
        )
        .await
        .expect(404);
    other
        .post(&s.path("note/addenda"), json!({"text": "x"}))
        .await
        .expect(404);
    assert_eq!(note_rows(&app).await, before);

    // Nor by SQL: the database refuses it on both engines.
    for statement in [
        "UPDATE note_entries SET content_hash = 'forged'",
        "UPDATE note_entries SET document = '{}'",
        "DELETE FROM note_entries",
        "UPDATE note_revisions SET content = '{}'",
        "DELETE FROM note_revisions",
        "UPDATE encounter_notes SET status = 'draft'",
        "UPDATE encounter_notes SET version = version + 1",
        "DELETE FROM encounter_notes",
    ] {
        assert!(
            sql(&app, statement).await.is_err(),
            "the database allowed: {statement}"
        );
    }
    let now = s.spec.get(&s.note()).await.expect(200).body;
    assert_eq!(now["status"], "signed");
    assert_eq!(
        now["entries"][0]["document"],
        signed["entries"][0]["document"]
    );
    assert_eq!(
        now["entries"][0]["content_hash"],
        signed["entries"][0]["content_hash"]
    );
    verify(&now["entries"][0]);
    assert_eq!(note_rows(&app).await, before);
});

both_engines!(
    concurrent_saves_conflict_cleanly,
    |app: TestApp| async move {
        let s = Setup::create(&app).await;
        s.spec
            .put(
                &s.note(),
                json!({"version": 0, "content": {"assessment": "bản đầu"}}),
            )
            .await
            .expect(200);

        // Eight saves over version 1 at once, from both authors: exactly one wins.
        let path = s.note();
        let saves = (0..8).map(|i| {
            let who = if i % 2 == 0 {
                s.spec.clone()
            } else {
                s.rural.clone()
            };
            let path = path.clone();
            async move {
                let r = who
                    .put(
                        &path,
                        json!({"version": 1, "content": {"assessment": format!("người viết {i}")}}),
                    )
                    .await;
                (i, r)
            }
        });
        let replies = futures::future::join_all(saves).await;
        let winners: Vec<usize> = replies
            .iter()
            .filter(|(_, r)| r.status == 200)
            .map(|(i, _)| *i)
            .collect();
        let statuses: Vec<u16> = replies.iter().map(|(_, r)| r.status).collect();
        assert_eq!(winners.len(), 1, "exactly one save wins: {statuses:?}");
        for (_, r) in replies.iter().filter(|(_, r)| r.status != 200) {
            assert_eq!(r.status, 409, "{}", r.text);
            assert_eq!(r.error_code(), "version_conflict");
            assert_eq!(r.body["error"]["details"]["current_version"], 2);
        }
        let note = s.spec.get(&s.note()).await.expect(200).body;
        assert_eq!(note["version"], 2);
        assert_eq!(
            note["draft"]["content"]["assessment"],
            format!("người viết {}", winners[0])
        );
        assert_eq!(note_rows(&app).await, [1, 2, 0]);

        // A save over a stale version names the current one, and retrying with it works.
        let stale = s
            .rural
            .put(&s.note(), json!({"version": 1, "content": {"plan": "x"}}))
            .await
            .expect(409);
        assert_eq!(stale.body["error"]["details"]["current_version"], 2);
        s.rural
            .put(&s.note(), json!({"version": 2, "content": {"plan": "x"}}))
            .await
            .expect(200);

        // Two first saves of the same note: one creates it, the other is told its version.
        let day = next_weekday(3);
        let slots = app.free_slots(s.cast.specialist, day, day).await;
        let k2 = app
            .post("/api/v1/consultations", s.cast.booking(slots[0]))
            .await
            .expect(201)
            .id();
        let path = format!("/api/v1/consultations/{k2}/note");
        let (a, b) = tokio::join!(
            s.spec
                .put(&path, json!({"version": 0, "content": {"plan": "a"}})),
            s.rural
                .put(&path, json!({"version": 0, "content": {"plan": "b"}}))
        );
        let mut statuses = [a.status, b.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "{} / {}", a.text, b.text);
        let loser = if a.status == 409 { &a } else { &b };
        assert_eq!(loser.error_code(), "version_conflict");
        assert_eq!(loser.body["error"]["details"]["current_version"], 1);
    }
);

/// A refused request: caller, method, path, body, status, error code, field named in the details.
type Case<'a> = (
    &'a TestApp,
    &'a str,
    String,
    Value,
    u16,
    &'a str,
    Option<&'a str>,
);

both_engines!(
    bad_input_is_refused_and_writes_nothing,
    |app: TestApp| async move {
        let s = Setup::create(&app).await;
        s.spec
            .put(
                &s.note(),
                json!({"version": 0, "content": {"assessment": "nháp"}}),
            )
            .await
            .expect(200);
        let before = note_rows(&app).await;
        let scheduler = app
            .as_new_user("sched", &[("scheduler", Some(s.cast.hub))], None, None)
            .await;

        let too_long = "a".repeat(8001);
        let many: Vec<Value> = (0..21)
            .map(|i| json!({"code": format!("I{:02}", 10 + i), "text": "x"}))
            .collect();
        let put = |content: Value| json!({"version": 1, "content": content});
        let cases: Vec<Case> = vec![
            (
                &s.spec,
                "PUT",
                s.note(),
                put(json!({"subjective": too_long})),
                422,
                "validation_failed",
                Some("subjective"),
            ),
            (
                &s.spec,
                "PUT",
                s.note(),
                put(json!({"diagnoses": [{"code": "XYZ", "text": "x"}]})),
                422,
                "validation_failed",
                Some("diagnoses[0].code"),
            ),
            (
                &s.spec,
                "PUT",
                s.note(),
                put(json!({"diagnoses": [{"code": "I10.12345", "text": "x"}]})),
                422,
                "validation_failed",
                Some("diagnoses[0].code"),
            ),
            (
                &s.spec,
                "PUT",
                s.note(),
                put(json!({"diagnoses": [{"code": "I10", "text": " "}]})),
                422,
                "validation_failed",
                Some("diagnoses[0].text"),
            ),
            (
                &s.spec,
                "PUT",
                s.note(),
                put(json!({"diagnoses": many})),
                422,
                "validation_failed",
                Some("diagnoses"),
            ),
            (
                &s.spec,
                "PUT",
                s.note(),
                put(json!({"follow_up": "soon"})),
                422,
                "validation_failed",
                Some("follow_up"),
            ),
            (
                &s.spec,
                "PUT",
                s.note(),
                put(json!({"advice": "a\u{0}b"})),
                422,
                "validation_failed",
                Some("advice"),
            ),
            (
                &s.spec,
                "PUT",
                s.note(),
                json!({"version": -1, "content": {}}),
                422,
                "validation_failed",
                Some("version"),
            ),
            (
                &s.spec,
                "PUT",
                s.note(),
                put(json!({"diagnosis": "I10"})),
                400,
                "invalid_json",
                None,
            ),
            (
                &s.spec,
                "PUT",
                s.note(),
                json!({"content": {}}),
                400,
                "invalid_json",
                None,
            ),
            (
                &s.spec,
                "PUT",
                s.note(),
                json!({"version": 1, "content": {"plan": 5}}),
                400,
                "invalid_json",
                None,
            ),
            // Signing someone else's draft: the referring clinician may write, not sign.
            (
                &s.rural,
                "POST",
                s.path("note/sign"),
                json!({"version": 1}),
                403,
                "forbidden",
                None,
            ),
            (
                &s.patient,
                "PUT",
                s.note(),
                put(json!({"plan": "x"})),
                403,
                "forbidden",
                None,
            ),
            (
                &scheduler,
                "PUT",
                s.note(),
                put(json!({"plan": "x"})),
                403,
                "forbidden",
                None,
            ),
            // A draft lacking what a signature needs names every missing field.
            (
                &s.spec,
                "POST",
                s.path("note/sign"),
                json!({"version": 1}),
                422,
                "validation_failed",
                Some("plan"),
            ),
            (
                &s.spec,
                "POST",
                s.path("note/sign"),
                json!({"version": 7}),
                409,
                "version_conflict",
                None,
            ),
            (
                &s.spec,
                "POST",
                s.path("note/sign"),
                json!({}),
                400,
                "invalid_json",
                None,
            ),
            // Amending a draft.
            (
                &s.spec,
                "POST",
                s.path("note/addenda"),
                json!({"text": "bổ sung"}),
                409,
                "note_not_signed",
                None,
            ),
            (
                &s.spec,
                "POST",
                s.path("note/addenda"),
                json!({"text": "  "}),
                422,
                "validation_failed",
                Some("text"),
            ),
            (
                &s.spec,
                "POST",
                s.path("note/addenda"),
                json!({"text": "a".repeat(8001)}),
                422,
                "validation_failed",
                Some("text"),
            ),
            (
                &s.spec,
                "GET",
                format!("{}?lang=fr", s.note()),
                Value::Null,
                422,
                "validation_failed",
                Some("lang"),
            ),
            (
                &s.spec,
                "GET",
                format!("{}?foo=1", s.path("note/history")),
                Value::Null,
                400,
                "invalid_query",
                None,
            ),
            (
                &s.spec,
                "GET",
                s.path("summary"),
                Value::Null,
                409,
                "note_not_signed",
                None,
            ),
            (
                &s.spec,
                "GET",
                "/api/v1/consultations/999999/note".to_string(),
                Value::Null,
                404,
                "not_found",
                None,
            ),
            (
                &s.spec,
                "GET",
                "/api/v1/consultations/abc/note".to_string(),
                Value::Null,
                400,
                "invalid_path",
                None,
            ),
        ];
        for (caller, method, path, body, status, code, field) in cases {
            let url = caller.url(&path);
            let req = match method {
                "GET" => caller.http.get(url),
                "PUT" => caller.http.put(url).json(&body),
                _ => caller.http.post(url).json(&body),
            };
            let r = caller.send(req).await;
            assert_eq!(r.status, status, "{method} {path} {body}: {}", r.text);
            assert_eq!(r.error_code(), code, "{method} {path}: {}", r.text);
            if let Some(field) = field {
                let fields = r.body["error"]["details"]["fields"]
                    .as_array()
                    .unwrap_or_else(|| panic!("no fields: {}", r.text));
                assert!(
                    fields.iter().any(|f| f["field"] == field),
                    "{field} not named: {}",
                    r.text
                );
                assert!(!r.body["error"]["message"].as_str().unwrap_or("").is_empty());
            }
            assert_eq!(
                note_rows(&app).await,
                before,
                "{method} {path} wrote something"
            );
        }
        // The draft is as it was.
        let note = s.spec.get(&s.note()).await.expect(200).body;
        assert_eq!(note["version"], 1);
        assert_eq!(note["draft"]["content"]["assessment"], "nháp");

        // A cancelled consultation takes no note.
        let day = next_weekday(4);
        let slots = app.free_slots(s.cast.specialist, day, day).await;
        let k2 = app
            .post("/api/v1/consultations", s.cast.booking(slots[0]))
            .await
            .expect(201)
            .id();
        app.post(
            &format!("/api/v1/consultations/{k2}/cancel"),
            json!({"reason": "bệnh nhân bận"}),
        )
        .await
        .expect(200);
        let r = s
            .spec
            .put(
                &format!("/api/v1/consultations/{k2}/note"),
                json!({"version": 0, "content": {"plan": "x"}}),
            )
            .await
            .expect(409);
        assert_eq!(r.error_code(), "consultation_not_open");
        assert_eq!(note_rows(&app).await, before);
    }
);

both_engines!(each_role_sees_what_it_should, |app: TestApp| async move {
    let s = Setup::create(&app).await;
    s.spec
        .put(
            &s.note(),
            json!({"version": 0, "content": {"assessment": "BẢN NHÁP BÍ MẬT"}}),
        )
        .await
        .expect(200);
    let other_hub = app
        .create_facility("HUB-2", "hub_hospital", "Asia/Ho_Chi_Minh")
        .await;
    let other_specialist = app.create_clinician(other_hub, &["cardiology"]).await;
    let other_patient = app.create_patient(None).await;
    let scheduler = app
        .as_new_user("sched", &[("scheduler", Some(s.cast.hub))], None, None)
        .await;
    let admin = app
        .as_new_user("adm", &[("administrator", None)], None, None)
        .await;
    let other_spec = app
        .as_new_user(
            "otherspec",
            &[("clinician", None)],
            None,
            Some(other_specialist),
        )
        .await;
    let other_pat = app
        .as_new_user("otherpat", &[("patient", None)], Some(other_patient), None)
        .await;
    let link = app.post(&s.path("visit-link"), json!({})).await.expect(201);
    let visit = app
        .anonymous()
        .post(
            "/api/v1/auth/visit",
            json!({"token": link.body["token"].as_str().expect("token"), "date_of_birth": telehealth_tests::PATIENT_BIRTH_DATE}),
        )
        .await
        .expect(200);
    let visitor = app.as_token(visit.body["token"].as_str().expect("token"));

    // Before signing: the patient (and the visit link) see that it is pending, never the draft.
    for who in [&s.patient, &visitor] {
        let r = who.get(&s.note()).await.expect(200);
        assert_eq!(r.body["status"], "pending");
        assert!(!r.text.contains("BÍ MẬT"), "a draft leaked: {}", r.text);
        who.get(&s.path("note/history")).await.expect(403);
        who.get(&s.path("summary")).await.expect(409);
    }
    let own_timeline = s
        .patient
        .get(&format!("/api/v1/patients/{}/timeline", s.cast.patient))
        .await
        .expect(200);
    assert!(!own_timeline.text.contains("BÍ MẬT"));
    assert_eq!(own_timeline.body[0]["note"]["status"], "pending");
    let clinician_timeline = s
        .rural
        .get(&format!("/api/v1/patients/{}/timeline", s.cast.patient))
        .await
        .expect(200);
    assert_eq!(clinician_timeline.body[0]["note_status"], "draft");
    assert!(!clinician_timeline.text.contains("BÍ MẬT"));
    // Both clinicians see the draft.
    for who in [&s.spec, &s.rural] {
        let r = who.get(&s.note()).await.expect(200);
        assert_eq!(r.body["draft"]["content"]["assessment"], "BẢN NHÁP BÍ MẬT");
    }

    // Schedulers see the booking, not the note; others see nothing.
    scheduler.get(&s.note()).await.expect(403);
    scheduler.get(&s.path("summary")).await.expect(403);
    scheduler
        .get(&format!("/api/v1/patients/{}/timeline", s.cast.patient))
        .await
        .expect(403);
    for who in [&admin, &other_spec, &other_pat] {
        who.get(&s.note()).await.expect(404);
        who.get(&s.path("summary")).await.expect(404);
        who.get(&format!("/api/v1/patients/{}/timeline", s.cast.patient))
            .await
            .expect(404);
    }
    visitor
        .get(&format!("/api/v1/patients/{}/timeline", s.cast.patient))
        .await
        .expect(403);

    // After signing, the patient and the visit link read it.
    let version = s.spec.get(&s.note()).await.expect(200).body["version"]
        .as_i64()
        .expect("version");
    s.spec
        .put(
            &s.note(),
            json!({"version": version, "content": full_content()}),
        )
        .await
        .expect(200);
    s.spec
        .post(&s.path("note/sign"), json!({"version": version + 1}))
        .await
        .expect(200);
    for who in [&s.patient, &visitor] {
        let r = who.get(&format!("{}?lang=en", s.note())).await.expect(200);
        assert_eq!(r.body["status"], "signed");
        assert!(!r.text.contains("BÍ MẬT"));
        assert!(r.text.contains("Amlodipin 5 mg"));
        // The advice is for the referring clinician, not the patient.
        assert!(!r.text.contains("Theo dõi huyết áp"));
        assert!(r.body.get("entries").is_none());
    }
    scheduler.get(&s.note()).await.expect(403);
    other_spec.get(&s.note()).await.expect(404);
});
