//! Administrators manage accounts, not patients: nobody changes their own roles, and linking an
//! account to a patient or a clinician, or granting a privileged role, waits for a second
//! administrator. Every proposal and decision is listed and in the audit trail. Both engines.
//!
//! The harness has two administrators made in storage: `root` (who also schedules for the whole
//! network) proposes, `approver` decides.

use serde_json::{Value, json};
use telehealth::storage::Db;
use telehealth_tests::{Cast, PASSWORD, TestApp, both_engines, next_weekday};

/// Creates an account with neither links nor roles (immediate), signs it in, and returns its id
/// and the server as that account.
async fn plain_account(app: &TestApp, username: &str) -> (i64, TestApp) {
    let id = app
        .post(
            "/api/v1/accounts",
            json!({"username": username, "display_name": username, "password": PASSWORD}),
        )
        .await
        .expect(201)
        .id();
    let token = app.login(username, PASSWORD).await;
    (id, app.as_token(&token))
}

async fn my_id(app: &TestApp) -> i64 {
    app.get("/api/v1/auth/me").await.expect(200).body["account_id"]
        .as_i64()
        .expect("account id")
}

async fn roles_of(app: &TestApp, account: i64) -> Vec<Value> {
    app.get(&format!("/api/v1/accounts/{account}"))
        .await
        .expect(200)
        .body["roles"]
        .as_array()
        .expect("roles")
        .clone()
}

async fn changes(app: &TestApp, query: &str) -> Vec<Value> {
    app.get(&format!("/api/v1/account-changes{query}"))
        .await
        .expect(200)
        .body
        .as_array()
        .expect("changes")
        .clone()
}

fn ids(list: &[Value]) -> Vec<i64> {
    list.iter().filter_map(|c| c["id"].as_i64()).collect()
}

async fn exec(app: &TestApp, sql: &'static str) -> Result<u64, sqlx::Error> {
    match app.db() {
        Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
        Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
    }
}

both_engines!(
    no_administrator_changes_their_own_roles,
    |app: TestApp| async move {
        let approver = app.second_admin();
        let approver_id = my_id(&approver).await;
        let root_id = my_id(&app).await;
        // Granting oneself any role is refused, whatever it is.
        for role in ["patient", "clinician", "scheduler"] {
            let r = approver
                .post(
                    &format!("/api/v1/accounts/{approver_id}/roles"),
                    json!({"roles": [{"role": "administrator"}, {"role": role}]}),
                )
                .await
                .expect(403);
            assert_eq!(r.error_code(), "own_roles");
        }
        // Taking one's own roles away is refused as well.
        let r = app
            .post(
                &format!("/api/v1/accounts/{root_id}/roles"),
                json!({"roles": [{"role": "administrator"}]}),
            )
            .await
            .expect(403);
        assert_eq!(r.error_code(), "own_roles");
        assert_eq!(
            roles_of(&app, approver_id).await,
            vec![json!({"role": "administrator", "facility_id": null})]
        );
        assert_eq!(roles_of(&app, root_id).await.len(), 2);
        assert!(changes(&app, "").await.is_empty(), "nothing was proposed");

        // Not even with another administrator's proposal: a change to one's own account is decided
        // by someone else.
        let change = app
            .post(
                &format!("/api/v1/accounts/{approver_id}/roles"),
                json!({"roles": [{"role": "administrator"}, {"role": "scheduler"}]}),
            )
            .await
            .expect(202);
        let r = approver
            .post(
                &format!("/api/v1/account-changes/{}/approve", change.id()),
                json!({}),
            )
            .await
            .expect(403);
        assert_eq!(r.error_code(), "needs_another_administrator");
        assert_eq!(roles_of(&app, approver_id).await.len(), 1);
    }
);

both_engines!(
    a_scheduler_grant_takes_effect_only_when_a_second_administrator_approves,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let calendar = format!("/api/v1/facilities/{}/calendar", cast.hub);
        let (coord_id, coord) = plain_account(&app, "coord").await;
        coord.get(&calendar).await.expect(403);

        let proposed = app
            .post(
                &format!("/api/v1/accounts/{coord_id}/roles"),
                json!({"roles": [{"role": "scheduler"}]}),
            )
            .await
            .expect(202)
            .body;
        assert_eq!(proposed["status"], "pending");
        assert_eq!(proposed["account_id"], coord_id);
        assert_eq!(proposed["proposed_by_username"], "root");
        assert_eq!(proposed["roles_before"], json!([]));
        assert_eq!(
            proposed["roles_after"],
            json!([{"role": "scheduler", "facility_id": null}])
        );
        // Proposed is not granted.
        coord.get(&calendar).await.expect(403);
        assert!(roles_of(&app, coord_id).await.is_empty());

        let approved = app
            .second_admin()
            .post(
                &format!("/api/v1/account-changes/{}/approve", proposed["id"]),
                json!({}),
            )
            .await
            .expect(200)
            .body;
        assert_eq!(approved["status"], "approved");
        assert_eq!(approved["decided_by_username"], "approver");
        // The same session acts with the new role at once.
        coord.get(&calendar).await.expect(200);
        assert_eq!(roles_of(&app, coord_id).await.len(), 1);

        // Taking it away again waits for nobody.
        app.post(
            &format!("/api/v1/accounts/{coord_id}/roles"),
            json!({"roles": []}),
        )
        .await
        .expect(200);
        coord.get(&calendar).await.expect(403);
    }
);

both_engines!(
    one_administrator_alone_cannot_make_another_administrator,
    |app: TestApp| async move {
        // A puppet: root knows its password, so an immediate grant would be a second vote.
        let r = app
            .post(
                "/api/v1/accounts",
                json!({"username": "puppet", "display_name": "puppet", "password": PASSWORD,
                       "roles": [{"role": "administrator"}]}),
            )
            .await
            .expect(202);
        let change = r.id();
        let puppet_id = r.body["account_id"].as_i64().expect("account id");
        let puppet = app.as_token(&app.login("puppet", PASSWORD).await);
        puppet.get("/api/v1/accounts").await.expect(403);
        // Neither the proposer nor the puppet can approve it.
        let r = app
            .post(
                &format!("/api/v1/account-changes/{change}/approve"),
                json!({}),
            )
            .await
            .expect(403);
        assert_eq!(r.error_code(), "needs_another_administrator");
        puppet
            .post(
                &format!("/api/v1/account-changes/{change}/approve"),
                json!({}),
            )
            .await
            .expect(403);
        assert!(roles_of(&app, puppet_id).await.is_empty());
        assert_eq!(ids(&changes(&app, "?status=pending").await), vec![change]);
    }
);

both_engines!(
    the_proposer_cannot_decide_their_own_change,
    |app: TestApp| async move {
        let (coord_id, _) = plain_account(&app, "coord").await;
        let change = app
            .post(
                &format!("/api/v1/accounts/{coord_id}/roles"),
                json!({"roles": [{"role": "scheduler"}]}),
            )
            .await
            .expect(202)
            .id();
        for verb in ["approve", "reject"] {
            let r = app
                .post(
                    &format!("/api/v1/account-changes/{change}/{verb}"),
                    json!({}),
                )
                .await
                .expect(403);
            assert_eq!(r.error_code(), "needs_another_administrator");
        }
        assert!(roles_of(&app, coord_id).await.is_empty());
        let pending = changes(&app, "?status=pending").await;
        assert_eq!(ids(&pending), vec![change]);
        // One pending change per account: a second proposal names the first.
        let r = app
            .post(
                &format!("/api/v1/accounts/{coord_id}/roles"),
                json!({"roles": [{"role": "administrator"}]}),
            )
            .await
            .expect(409);
        assert_eq!(r.error_code(), "change_pending");
        assert_eq!(r.body["error"]["details"]["change_id"], change);
    }
);

both_engines!(
    an_account_linked_to_a_patient_or_clinician_reaches_nothing_until_approved,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        app.add_daily_rule(cast.specialist, "08:00:00", "12:00:00", 30, 0)
            .await;
        let day = next_weekday(2);
        let slots = app.free_slots(cast.specialist, day, day).await;
        let k = app
            .post("/api/v1/consultations", cast.booking(slots[0]))
            .await
            .expect(201)
            .id();

        // The finding: an administrator makes a password account for any patient and signs in.
        let patient_change = app
            .post(
                "/api/v1/accounts",
                json!({"username": "mai", "display_name": "Mai", "password": PASSWORD,
                       "patient_id": cast.patient, "roles": [{"role": "patient"}]}),
            )
            .await
            .expect(202)
            .body;
        assert_eq!(patient_change["patient_id"], cast.patient);
        let clinician_change = app
            .post(
                "/api/v1/accounts",
                json!({"username": "bs.an", "display_name": "BS An", "password": PASSWORD,
                       "clinician_id": cast.specialist, "roles": [{"role": "clinician"}]}),
            )
            .await
            .expect(202)
            .body;
        // It may sign in, as nobody in particular.
        let mai = app.as_token(&app.login("mai", PASSWORD).await);
        let an = app.as_token(&app.login("bs.an", PASSWORD).await);
        let me = mai.get("/api/v1/auth/me").await.expect(200).body;
        assert_eq!(me["patient_id"], Value::Null);
        assert_eq!(me["grants"], json!([]));
        let reads = [
            format!("/api/v1/patients/{}", cast.patient),
            format!("/api/v1/patients/{}/timeline", cast.patient),
            format!("/api/v1/consultations/{k}"),
        ];
        for caller in [&mai, &an] {
            for path in &reads {
                let r = caller.get(path).await;
                assert!(
                    matches!(r.status, 403 | 404),
                    "{path} before approval: {} {}",
                    r.status,
                    r.text
                );
            }
        }

        let approver = app.second_admin();
        for change in [&patient_change, &clinician_change] {
            approver
                .post(
                    &format!("/api/v1/account-changes/{}/approve", change["id"]),
                    json!({}),
                )
                .await
                .expect(200);
        }
        mai.get(&reads[0]).await.expect(200);
        mai.get(&format!("/api/v1/consultations/{k}"))
            .await
            .expect(200);
        an.get(&format!("/api/v1/consultations/{k}"))
            .await
            .expect(200);
        let me = mai.get("/api/v1/auth/me").await.expect(200).body;
        assert_eq!(me["patient_id"], cast.patient);
    }
);

both_engines!(a_rejected_change_never_applies, |app: TestApp| async move {
    let cast = Cast::create(&app).await;
    let (coord_id, coord) = plain_account(&app, "coord").await;
    let change = app
        .post(
            &format!("/api/v1/accounts/{coord_id}/roles"),
            json!({"roles": [{"role": "scheduler"}, {"role": "administrator"}]}),
        )
        .await
        .expect(202)
        .id();
    let approver = app.second_admin();
    let rejected = approver
        .post(
            &format!("/api/v1/account-changes/{change}/reject"),
            json!({"reason": "not requested by the hospital"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["reason"], "not requested by the hospital");
    assert_eq!(rejected["decided_by_username"], "approver");
    // Deciding it again changes nothing.
    for verb in ["approve", "reject"] {
        let r = approver
            .post(
                &format!("/api/v1/account-changes/{change}/{verb}"),
                json!({}),
            )
            .await
            .expect(409);
        assert_eq!(r.error_code(), "change_decided");
    }
    assert!(roles_of(&app, coord_id).await.is_empty());
    coord
        .get(&format!("/api/v1/facilities/{}/calendar", cast.hub))
        .await
        .expect(403);
    // The decision is history: the database refuses to rewrite it.
    assert!(
        exec(
            &app,
            "UPDATE account_changes SET status = 'approved' WHERE status = 'rejected'"
        )
        .await
        .is_err()
    );
    assert!(exec(&app, "DELETE FROM account_changes").await.is_err());

    // A rejected patient link leaves the account unlinked.
    let link = app
        .post(
            "/api/v1/accounts",
            json!({"username": "mai", "display_name": "Mai", "password": PASSWORD,
                   "patient_id": cast.patient, "roles": [{"role": "patient"}]}),
        )
        .await
        .expect(202);
    approver
        .post(
            &format!("/api/v1/account-changes/{}/reject", link.id()),
            json!({}),
        )
        .await
        .expect(200);
    let mai = app
        .get(&format!("/api/v1/accounts/{}", link.body["account_id"]))
        .await
        .expect(200)
        .body;
    assert_eq!(mai["patient_id"], Value::Null);
    assert_eq!(mai["roles"], json!([]));
    // Its account is free for a new proposal.
    app.post(
        &format!("/api/v1/accounts/{coord_id}/roles"),
        json!({"roles": [{"role": "scheduler", "facility_id": cast.hub}]}),
    )
    .await
    .expect(202);
});

both_engines!(
    approval_refuses_a_change_whose_account_changed_since,
    |app: TestApp| async move {
        // An unlinked clinician role reaches nothing, so it is granted at once.
        let id = app
            .post(
                "/api/v1/accounts",
                json!({"username": "coord", "display_name": "coord", "password": PASSWORD,
                       "roles": [{"role": "clinician"}]}),
            )
            .await
            .expect(201)
            .id();
        let change = app
            .post(
                &format!("/api/v1/accounts/{id}/roles"),
                json!({"roles": [{"role": "clinician"}, {"role": "scheduler"}]}),
            )
            .await
            .expect(202)
            .id();
        app.post(
            &format!("/api/v1/accounts/{id}/roles"),
            json!({"roles": []}),
        )
        .await
        .expect(200);
        let r = app
            .second_admin()
            .post(
                &format!("/api/v1/account-changes/{change}/approve"),
                json!({}),
            )
            .await
            .expect(409);
        assert_eq!(r.error_code(), "change_stale");
        assert!(roles_of(&app, id).await.is_empty());
    }
);

both_engines!(
    a_pending_change_lapses_after_seven_days,
    |app: TestApp| async move {
        let (coord_id, _) = plain_account(&app, "coord").await;
        let proposed = app
            .post(
                &format!("/api/v1/accounts/{coord_id}/roles"),
                json!({"roles": [{"role": "scheduler"}]}),
            )
            .await
            .expect(202)
            .body;
        let at = |field: &str| {
            chrono::DateTime::parse_from_rfc3339(proposed[field].as_str().expect(field))
                .expect(field)
        };
        assert_eq!(
            at("expires_at") - at("proposed_at"),
            chrono::Duration::days(7)
        );
        exec(
            &app,
            "UPDATE account_changes SET expires_at = proposed_at WHERE status = 'pending'",
        )
        .await
        .expect("move the expiry into the past");
        assert!(changes(&app, "?status=pending").await.is_empty());
        assert_eq!(
            ids(&changes(&app, "?status=expired").await),
            vec![proposed["id"].as_i64().expect("id")]
        );
        let r = app
            .second_admin()
            .post(
                &format!("/api/v1/account-changes/{}/approve", proposed["id"]),
                json!({}),
            )
            .await
            .expect(409);
        assert_eq!(r.error_code(), "change_expired");
        assert!(roles_of(&app, coord_id).await.is_empty());
        // The account is free for a new proposal.
        app.post(
            &format!("/api/v1/accounts/{coord_id}/roles"),
            json!({"roles": [{"role": "scheduler"}]}),
        )
        .await
        .expect(202);
    }
);

both_engines!(
    every_proposal_and_decision_is_listed_and_audited,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let link = app
            .post(
                "/api/v1/accounts",
                json!({"username": "mai", "display_name": "Mai", "password": PASSWORD,
                       "patient_id": cast.patient, "roles": [{"role": "patient"}]}),
            )
            .await
            .expect(202)
            .body;
        let (coord_id, _) = plain_account(&app, "coord").await;
        let grant = app
            .post(
                &format!("/api/v1/accounts/{coord_id}/roles"),
                json!({"roles": [{"role": "scheduler", "facility_id": cast.hub}]}),
            )
            .await
            .expect(202)
            .body;
        let (a, b) = (
            link["id"].as_i64().expect("id"),
            grant["id"].as_i64().expect("id"),
        );
        let mai_id = link["account_id"].as_i64().expect("account id");
        let approver = app.second_admin();
        // A refused attempt first: root deciding its own proposal.
        app.post(&format!("/api/v1/account-changes/{b}/approve"), json!({}))
            .await
            .expect(403);
        assert_eq!(
            ids(&changes(&approver, "?status=pending").await),
            vec![b, a]
        );
        approver
            .post(&format!("/api/v1/account-changes/{a}/approve"), json!({}))
            .await
            .expect(200);
        approver
            .post(
                &format!("/api/v1/account-changes/{b}/reject"),
                json!({"reason": "wrong hospital"}),
            )
            .await
            .expect(200);

        // The list: everything, newest first, and by state and account.
        let all = changes(&app, "").await;
        assert_eq!(ids(&all), vec![b, a]);
        assert_eq!(all[0]["proposed_by_username"], "root");
        assert_eq!(all[0]["decided_by_username"], "approver");
        assert!(all[0]["decided_at"].is_string());
        assert_eq!(ids(&changes(&app, "?status=approved").await), vec![a]);
        assert_eq!(ids(&changes(&app, "?status=rejected").await), vec![b]);
        assert!(changes(&app, "?status=pending").await.is_empty());
        assert_eq!(
            ids(&changes(&app, &format!("?account_id={coord_id}")).await),
            vec![b]
        );
        let r = app
            .get("/api/v1/account-changes?status=maybe")
            .await
            .expect(422);
        assert_eq!(r.error_code(), "validation_failed");
        app.get("/api/v1/account-changes?state=pending")
            .await
            .expect(400);

        // The audit trail names the change and its account in every proposal and decision.
        let events = |query: String| {
            let app = app.clone();
            async move {
                app.get(&format!("/api/v1/audit?{query}&limit=200"))
                    .await
                    .expect(200)
                    .body
                    .as_array()
                    .expect("events")
                    .clone()
            }
        };
        let has = |events: &[Value], actor: &str, action: &str, record: String, outcome: &str| {
            events.iter().any(|e| {
                e["actor"] == actor
                    && e["action"] == action
                    && e["record_type"] == "account_change"
                    && e["record_id"] == record.as_str()
                    && e["outcome"] == outcome
            })
        };
        let root = events("actor=root".into()).await;
        let by_approver = events("actor=approver".into()).await;
        let record_a = format!("change={a} account={mai_id}");
        let record_b = format!("change={b} account={coord_id}");
        assert!(has(
            &root,
            "root",
            "propose_account_change",
            record_a.clone(),
            "allowed"
        ));
        assert!(has(
            &root,
            "root",
            "propose_account_change",
            record_b.clone(),
            "allowed"
        ));
        assert!(has(
            &root,
            "root",
            "approve_account_change",
            record_b.clone(),
            "denied"
        ));
        assert!(has(
            &by_approver,
            "approver",
            "approve_account_change",
            record_a.clone(),
            "allowed"
        ));
        assert!(has(
            &by_approver,
            "approver",
            "reject_account_change",
            record_b,
            "allowed"
        ));
        // A patient link is filed under the patient too.
        let patient = events(format!("patient_id={}", cast.patient)).await;
        assert!(has(
            &patient,
            "root",
            "propose_account_change",
            record_a.clone(),
            "allowed"
        ));
        assert!(has(
            &patient,
            "approver",
            "approve_account_change",
            record_a,
            "allowed"
        ));
    }
);

both_engines!(
    deciding_refuses_bad_input_with_a_clear_message,
    |app: TestApp| async move {
        let approver = app.second_admin();
        let r = approver
            .post("/api/v1/account-changes/abc/approve", json!({}))
            .await
            .expect(400);
        assert_eq!(r.error_code(), "invalid_path");
        approver
            .post("/api/v1/account-changes/999999/approve", json!({}))
            .await
            .expect(404);
        let (coord_id, _) = plain_account(&app, "coord").await;
        let change = app
            .post(
                &format!("/api/v1/accounts/{coord_id}/roles"),
                json!({"roles": [{"role": "scheduler"}]}),
            )
            .await
            .expect(202)
            .id();
        let r = approver
            .post(
                &format!("/api/v1/account-changes/{change}/approve"),
                json!({"force": true}),
            )
            .await
            .expect(400);
        assert_eq!(r.error_code(), "invalid_json");
        let r = approver
            .post(
                &format!("/api/v1/account-changes/{change}/reject"),
                json!({"reason": "x".repeat(501)}),
            )
            .await
            .expect(422);
        assert_eq!(r.error_code(), "validation_failed");
        // Nothing was decided by the refused requests.
        assert_eq!(ids(&changes(&app, "?status=pending").await), vec![change]);
    }
);

both_engines!(
    a_change_is_proposed_and_applied_once_however_many_try_at_once,
    |app: TestApp| async move {
        let (coord_id, _) = plain_account(&app, "coord").await;
        // Twenty proposals at once for one account: one is pending, the others are told so.
        let proposals = futures::future::join_all((0..20).map(|_| {
            let app = app.clone();
            async move {
                app.post(
                    &format!("/api/v1/accounts/{coord_id}/roles"),
                    json!({"roles": [{"role": "scheduler"}]}),
                )
                .await
            }
        }))
        .await;
        let mut statuses: Vec<u16> = proposals.iter().map(|r| r.status).collect();
        statuses.sort_unstable();
        assert_eq!(statuses[0], 202, "{statuses:?}");
        assert!(statuses[1..].iter().all(|s| *s == 409), "{statuses:?}");
        let change = proposals
            .iter()
            .find(|r| r.status == 202)
            .map(|r| r.id())
            .expect("one proposal");
        // Twenty approvals at once: one applies it, the others find it decided.
        let approver = app.second_admin();
        let approvals = futures::future::join_all((0..20).map(|_| {
            let approver = approver.clone();
            async move {
                approver
                    .post(
                        &format!("/api/v1/account-changes/{change}/approve"),
                        json!({}),
                    )
                    .await
            }
        }))
        .await;
        let ok = approvals.iter().filter(|r| r.status == 200).count();
        assert_eq!(ok, 1);
        assert!(
            approvals
                .iter()
                .filter(|r| r.status != 200)
                .all(|r| r.status == 409 && r.error_code() == "change_decided")
        );
        assert_eq!(roles_of(&app, coord_id).await.len(), 1);
    }
);
