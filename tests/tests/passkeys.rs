//! Signatures the server alone cannot make (issue 12), on both engines: a clinician enrols a
//! passkey, and from then on their note and addenda are signed by it, with a WebAuthn challenge
//! that is the SHA-256 of the entry's document. The authenticator here is webauthn-rs's software
//! passkey (a real CTAP2 authenticator in memory, with the WebAuthn client's checks); the
//! assertion stored with the entry is then checked outside the server, with an ECDSA P-256
//! verifier and nothing but the published key. An entry the server could make alone (its own
//! key's signature with the passkey's assertion removed or swapped) fails verification.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Verifier;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use telehealth::storage::Db;
use telehealth_tests::{NoteCast, TestApp, both_engines};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{CreationChallengeResponse, RequestChallengeResponse};

/// The page the clinician signs on: passkeys are bound to `localhost`, on any port.
fn origin(app: &TestApp) -> Url {
    Url::parse(&format!("http://localhost:{}", app.addr().port())).expect("origin")
}

fn b64d(s: &Value) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(s.as_str().expect("base64url string"))
        .expect("base64url")
}

/// Enrols `authenticator` for the clinician signed in as `who`; returns the published passkey.
async fn enrol(app: &TestApp, who: &TestApp, authenticator: &mut SoftPasskey) -> Value {
    let start = who
        .post("/api/v1/me/passkeys/registration", json!({}))
        .await
        .expect(201)
        .body;
    let options: CreationChallengeResponse =
        serde_json::from_value(start["options"].clone()).expect("creation options");
    let credential = authenticator
        .do_registration(origin(app), options)
        .expect("the authenticator makes a credential");
    let body = json!({
        "ceremony_id": start["ceremony_id"],
        "name": "điện thoại",
        "credential": credential,
    });
    let enrolled = who
        .post("/api/v1/me/passkeys", body.clone())
        .await
        .expect(201)
        .body;
    // A ceremony answers once.
    let again = who.post("/api/v1/me/passkeys", body).await.expect(404);
    assert_eq!(again.body["error"]["code"], "not_found");
    enrolled
}

/// The authenticator's answer to a signing challenge.
fn answer(app: &TestApp, authenticator: &mut SoftPasskey, challenge: &Value) -> Value {
    let options: RequestChallengeResponse =
        serde_json::from_value(challenge["options"].clone()).expect("request options");
    let credential = authenticator
        .do_authentication(origin(app), options)
        .expect("the authenticator signs");
    json!({"ceremony_id": challenge["ceremony_id"], "credential": credential})
}

/// What anyone can check with the published key and nothing of this server: the client data
/// is a `webauthn.get` over the document's hash, the authenticator data is for the relying
/// party with the user present and verified, and the ECDSA signature covers both.
fn verify_outside(document: &str, assertion: &Value, published: &Value) {
    let client_data = b64d(&assertion["client_data_json"]);
    let client: Value = serde_json::from_slice(&client_data).expect("client data JSON");
    assert_eq!(client["type"], "webauthn.get");
    let hash = Sha256::digest(document.as_bytes());
    assert_eq!(client["challenge"], URL_SAFE_NO_PAD.encode(hash));
    let auth_data = b64d(&assertion["authenticator_data"]);
    let rp = published["relying_party_id"].as_str().expect("rp id");
    assert_eq!(&auth_data[..32], Sha256::digest(rp.as_bytes()).as_slice());
    assert_eq!(auth_data[32] & 0x05, 0x05, "user present and verified");

    let passkey = published["passkeys"]
        .as_array()
        .expect("passkeys")
        .iter()
        .find(|p| p["credential_id"] == assertion["credential_id"])
        .expect("the assertion names a published passkey");
    assert_eq!(passkey["algorithm"], "ES256");
    let jwk = &passkey["public_key_jwk"];
    assert_eq!(jwk["crv"], "P-256");
    let mut sec1 = vec![0x04];
    sec1.extend(b64d(&jwk["x"]));
    sec1.extend(b64d(&jwk["y"]));
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).expect("P-256 key");
    let signature =
        p256::ecdsa::Signature::from_der(&b64d(&assertion["signature"])).expect("DER signature");
    let mut signed = auth_data.clone();
    signed.extend(Sha256::digest(&client_data));
    key.verify(&signed, &signature)
        .expect("the assertion verifies under the published key");
    // And not over anything else.
    let mut other = signed.clone();
    other[0] ^= 1;
    assert!(key.verify(&other, &signature).is_err());
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

/// Runs `sql` with one text (or null) and one number bound; returns the rows it changed.
async fn change(app: &TestApp, sql: &'static str, text: Option<&str>, number: i64) -> u64 {
    match app.db() {
        Db::Sqlite(p) => sqlx::query(sql)
            .bind(text)
            .bind(number)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
        Db::Postgres(p) => sqlx::query(sql)
            .bind(text)
            .bind(number)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn set_assertion(app: &TestApp, entry: i64, assertion: Option<&str>) {
    let sql = "UPDATE note_entries SET passkey_assertion = $1 WHERE id = $2";
    assert_eq!(change(app, sql, assertion, entry).await, 1);
}

fn note_content() -> Value {
    json!({
        "subjective": "Khó thở khi gắng sức.",
        "assessment": "Suy tim độ II.",
        "plan": "Furosemid 20 mg/ngày.",
        "diagnoses": [{"code": "I50", "text": "Suy tim"}],
        "advice": "Hạn chế muối.",
        "follow_up": "teleconsultation"
    })
}

both_engines!(
    a_passkey_signs_entries_the_server_alone_cannot_make,
    |app: TestApp| async move {
        let cast = NoteCast::create(&app).await;
        let path = |rest: &str| format!("/api/v1/consultations/{}/{rest}", cast.k);
        let mut phone = SoftPasskey::new(true);

        // Only clinicians have passkeys.
        let refused = cast
            .patient
            .post("/api/v1/me/passkeys/registration", json!({}))
            .await
            .expect(403);
        assert_eq!(refused.body["error"]["code"], "forbidden");

        let enrolled = enrol(&app, &cast.spec, &mut phone).await;
        assert_eq!(enrolled["algorithm"], "ES256");
        let mine = cast.spec.get("/api/v1/me/passkeys").await.expect(200).body;
        assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");
        let published = app
            .get(&format!(
                "/api/v1/clinicians/{}/signing-key",
                cast.cast.specialist
            ))
            .await
            .expect(200)
            .body;
        assert_eq!(published["relying_party_id"], "localhost");
        assert_eq!(
            published["passkeys"][0]["credential_id"],
            enrolled["credential_id"]
        );

        // With a passkey, the server no longer signs alone.
        let saved = cast
            .spec
            .put(
                &path("note"),
                json!({"version": 0, "content": note_content()}),
            )
            .await
            .expect(200);
        let version = saved.body["version"].as_i64().expect("version");
        let alone = cast
            .spec
            .post(&path("note/sign"), json!({"version": version}))
            .await
            .expect(409);
        assert_eq!(
            alone.body["error"]["code"], "passkey_required",
            "{}",
            alone.text
        );

        // A challenge is the document's hash; a forged answer is refused and uses it up.
        let challenge = cast
            .spec
            .post(&path("note/sign/challenge"), json!({"version": version}))
            .await
            .expect(201)
            .body;
        let document = challenge["document"]
            .as_str()
            .expect("document")
            .to_string();
        let hash: String = Sha256::digest(document.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(challenge["content_hash"], hash.as_str());
        let good = answer(&app, &mut phone, &challenge);
        let mut forged = good.clone();
        let mut signature = b64d(&forged["credential"]["response"]["signature"]);
        let last = signature.len() - 1;
        signature[last] ^= 0x55;
        forged["credential"]["response"]["signature"] = json!(URL_SAFE_NO_PAD.encode(&signature));
        let rejected = cast
            .spec
            .post(
                &path("note/sign"),
                json!({"version": version, "passkey": forged}),
            )
            .await
            .expect(422);
        assert_eq!(rejected.body["error"]["code"], "passkey_rejected");
        let used = cast
            .spec
            .post(
                &path("note/sign"),
                json!({"version": version, "passkey": good}),
            )
            .await
            .expect(404);
        assert_eq!(used.body["error"]["code"], "not_found", "{}", used.text);
        let note = cast.spec.get(&path("note")).await.expect(200).body;
        assert_eq!(note["status"], "draft", "nothing was signed: {note}");

        // Another clinician cannot answer it (the rural clinician may not sign this note).
        let challenge = cast
            .spec
            .post(&path("note/sign/challenge"), json!({"version": version}))
            .await
            .expect(201)
            .body;
        // The document this challenge names (its signing time is this challenge's, a second
        // later than the first one's, perhaps).
        let document = challenge["document"]
            .as_str()
            .expect("document")
            .to_string();
        let good = answer(&app, &mut phone, &challenge);
        cast.rural
            .post(
                &path("note/sign"),
                json!({"version": version, "passkey": good.clone()}),
            )
            .await
            .expect(403);

        // The right answer signs exactly the challenged document.
        let signed = cast
            .spec
            .post(
                &path("note/sign"),
                json!({"version": version, "passkey": good}),
            )
            .await
            .expect(200)
            .body;
        let entry = &signed["entries"][0];
        assert_eq!(entry["verification"], "verified", "{signed}");
        assert_eq!(entry["signed_with"], "passkey");
        let stored = entry["document"].as_str().expect("document");
        assert_eq!(stored, document);
        verify_outside(stored, &entry["passkey_assertion"], &published);

        // An addendum is signed the same way (the counter moves on).
        let text = "Bổ sung: kali máu bình thường.";
        let challenge = cast
            .spec
            .post(&path("note/addenda/challenge"), json!({"text": text}))
            .await
            .expect(201)
            .body;
        let good = answer(&app, &mut phone, &challenge);
        let addendum = cast
            .spec
            .post(
                &path("note/addenda"),
                json!({"text": text, "passkey": good}),
            )
            .await
            .expect(201)
            .body;
        assert_eq!(addendum["verification"], "verified", "{addendum}");
        assert_eq!(addendum["signed_with"], "passkey");
        let addendum_doc = addendum["document"].as_str().expect("document");
        verify_outside(addendum_doc, &addendum["passkey_assertion"], &published);

        // What the server could make alone: the note's own server-key signature is intact, but
        // the passkey's assertion is swapped for the addendum's, then removed.
        let note_id = entry["id"].as_i64().expect("id");
        drop_entry_triggers(&app).await;
        let swapped = serde_json::to_string(&addendum["passkey_assertion"]).expect("json");
        set_assertion(&app, note_id, Some(&swapped)).await;
        let read = cast.spec.get(&path("note")).await.expect(200).body;
        assert_eq!(read["entries"][0]["verification"], "failed", "{read}");
        assert!(read["entries"][0]["content"].is_null());
        set_assertion(&app, note_id, None).await;
        let read = cast.spec.get(&path("note")).await.expect(200).body;
        assert_eq!(read["entries"][0]["verification"], "failed", "{read}");
        assert_eq!(
            read["entries"][0]["verification_failure"],
            "signed without the passkey the signer had enrolled by then"
        );
        // The addendum, untouched, still verifies.
        assert_eq!(read["entries"][1]["verification"], "verified", "{read}");
    }
);

both_engines!(
    a_passkey_planted_through_the_database_verifies_nothing,
    |app: TestApp| async move {
        let cast = NoteCast::create(&app).await;
        let mut phone = SoftPasskey::new(true);
        enrol(&app, &cast.spec, &mut phone).await;
        // Someone with the database but not the KEK file moves the passkey to another
        // clinician: its tag no longer checks, so it is neither published nor used.
        // ($1 is unused: the helper binds a text and a number.)
        let moved = change(
            &app,
            "UPDATE clinician_passkeys SET clinician_id = $2 WHERE $1 IS NULL",
            None,
            cast.cast.rural,
        )
        .await;
        assert_eq!(moved, 1);
        let published = app
            .get(&format!(
                "/api/v1/clinicians/{}/signing-key",
                cast.cast.rural
            ))
            .await
            .expect(200)
            .body;
        assert_eq!(published["passkeys"], json!([]), "{published}");
        let challenge = cast
            .rural
            .post(
                "/api/v1/me/passkeys",
                json!({"ceremony_id": "x", "name": "n", "credential": {}}),
            )
            .await;
        assert_eq!(challenge.status, 400, "{}", challenge.text);
    }
);
