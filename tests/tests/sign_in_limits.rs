//! Sign-in limits on both engines: they hold under parallel guesses (attempts are reserved before
//! the password is checked), they limit the pair of user name and address rather than locking an
//! account for everyone, they leave a care centre behind one address alone, and a reservation of
//! a request that died stops counting.
//!
//! Clients connect from distinct loopback addresses (127.0.0.0/8), which the server sees as
//! distinct clients. Password checks are counted from the audit trail, which holds every attempt:
//! `denied` (wrong password, checked) and `allowed` (right password, checked) against `failed`
//! (refused with 429 before any check).

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::json;
use telehealth::config::Settings;
use telehealth::storage::Db;
use telehealth_tests::{PASSWORD, Reply, TestApp, both_engines};

/// The documented limits (README, "Signing in"); written out so that changing a rule means
/// changing its test.
const PAIR_FAILURES: usize = 5;
const ACCOUNT_FREE_FAILURES: usize = 10;
const ADDRESS_FAILURES: usize = 100;
const WINDOW_SECONDS: u64 = 15 * 60;

/// Creates a password account with no roles.
async fn account(app: &TestApp, username: &str) {
    app.post(
        "/api/v1/accounts",
        json!({"username": username, "display_name": username, "password": PASSWORD, "roles": []}),
    )
    .await
    .expect(201);
}

async fn sign_in(client: &TestApp, username: &str, password: &str) -> Reply {
    client
        .anonymous()
        .post(
            "/api/v1/auth/login",
            json!({"username": username, "password": password}),
        )
        .await
}

/// The `Retry-After` of a 429, checked against its body.
#[track_caller]
fn retry_after(r: &Reply) -> u64 {
    assert_eq!(r.status, 429, "not a 429: {}", r.text);
    assert_eq!(r.error_code(), "too_many_attempts");
    let header: u64 = r
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in whole seconds: {:?}", r.headers));
    assert!(header >= 1);
    assert_eq!(r.body["error"]["details"]["retry_after_seconds"], header);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("try again in"),
        "the message does not say when to try again: {}",
        r.text
    );
    header
}

fn limit(r: &Reply) -> &str {
    r.body["error"]["details"]["limit"].as_str().unwrap_or("")
}

/// The message of an error reply without its numbers (the waits differ by a second or so).
fn words(r: &Reply) -> String {
    r.body["error"]["message"]
        .as_str()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .collect()
}

/// Login events of one user name from one address in the audit trail.
#[derive(Debug)]
struct LoginEvents {
    all: i64,
    /// Checked, wrong password (401).
    wrong: i64,
    /// Checked, right password (200).
    right: i64,
    /// Refused before any check (429).
    refused: i64,
}

async fn login_events(app: &TestApp, actor: &str, addr: &str) -> LoginEvents {
    let sql = "SELECT outcome, COUNT(*) FROM audit_events
               WHERE action = 'login' AND actor = $1 AND client_addr = $2 GROUP BY outcome";
    let rows: Vec<(String, i64)> = match app.db() {
        Db::Sqlite(p) => {
            sqlx::query_as(sql)
                .bind(actor)
                .bind(addr)
                .fetch_all(p)
                .await
        }
        Db::Postgres(p) => {
            sqlx::query_as(sql)
                .bind(actor)
                .bind(addr)
                .fetch_all(p)
                .await
        }
    }
    .expect("audit query");
    let of = |o: &str| {
        rows.iter()
            .filter(|(outcome, _)| outcome == o)
            .map(|(_, n)| *n)
            .sum::<i64>()
    };
    LoginEvents {
        all: rows.iter().map(|(_, n)| *n).sum(),
        wrong: of("denied"),
        right: of("allowed"),
        refused: of("failed"),
    }
}

/// The outcomes of the reserved attempts of one pair, in the order they were reserved.
async fn reserved_outcomes(app: &TestApp, username: &str, addr: &str) -> Vec<String> {
    let sql = "SELECT outcome FROM sign_in_attempts
               WHERE username = $1 AND client_addr = $2 ORDER BY id";
    match app.db() {
        Db::Sqlite(p) => {
            sqlx::query_scalar(sql)
                .bind(username)
                .bind(addr)
                .fetch_all(p)
                .await
        }
        Db::Postgres(p) => {
            sqlx::query_scalar(sql)
                .bind(username)
                .bind(addr)
                .fetch_all(p)
                .await
        }
    }
    .expect("attempts query")
}

/// Writes a reservation as a request would have left it, `age_seconds` ago.
async fn in_flight_row(app: &TestApp, username: &str, addr: &str, age_seconds: i64) {
    let started: DateTime<Utc> =
        (Utc::now() - chrono::Duration::seconds(age_seconds)).trunc_subsecs(3);
    let sql = "INSERT INTO sign_in_attempts (username, client_addr, started_at, outcome)
               VALUES ($1, $2, $3, 'in_flight')";
    match app.db() {
        Db::Sqlite(p) => sqlx::query(sql)
            .bind(username)
            .bind(addr)
            .bind(started)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
        Db::Postgres(p) => sqlx::query(sql)
            .bind(username)
            .bind(addr)
            .bind(started)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
    }
    .expect("insert a reservation");
}

/// Stamps every recorded attempt of `username` `seconds` ago, as if they had all been made then.
async fn age_attempts(app: &TestApp, username: &str, seconds: i64) {
    let at: DateTime<Utc> = (Utc::now() - chrono::Duration::seconds(seconds)).trunc_subsecs(3);
    let sql = "UPDATE sign_in_attempts SET started_at = $1 WHERE username = $2";
    match app.db() {
        Db::Sqlite(p) => sqlx::query(sql)
            .bind(at)
            .bind(username)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
        Db::Postgres(p) => sqlx::query(sql)
            .bind(at)
            .bind(username)
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
    }
    .expect("age attempts");
}

/// Sends all `attempts` (user name, password) at once from `client` and returns the replies.
async fn burst(client: &TestApp, attempts: Vec<(String, String)>) -> Vec<Reply> {
    let gate = Arc::new(tokio::sync::Barrier::new(attempts.len()));
    let tasks: Vec<_> = attempts
        .into_iter()
        .map(|(username, password)| {
            let client = client.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.wait().await;
                sign_in(&client, &username, &password).await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.expect("request task"));
    }
    replies
}

/// 200 guesses at once, one in ten of them the right password.
fn guesses(username: &str) -> Vec<(String, String)> {
    (0..200)
        .map(|i| {
            let password = if i % 10 == 9 {
                PASSWORD.to_string()
            } else {
                format!("guess number {i}")
            };
            (username.to_string(), password)
        })
        .collect()
}

/// The pair limit is the subject here, so the node's in-process rate per address is set out of
/// the way: with the default burst of 100, whether the last attempts meet that rate or the pair
/// limit first would depend on how fast the machine refills the bucket.
async fn parallel_guesses_are_checked_at_most_the_pair_limit(app: TestApp) {
    account(&app, "victim").await;
    let attacker = app.from_address("127.0.0.2");
    let replies = burst(&attacker, guesses("victim")).await;
    let answered = |s: u16| replies.iter().filter(|r| r.status == s).count();
    let (ok, wrong, refused) = (answered(200), answered(401), answered(429));
    assert_eq!(
        ok + wrong + refused,
        200,
        "unexpected statuses: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in replies.iter().filter(|r| r.status == 429) {
        retry_after(r);
    }
    // The server's own record: every attempt is in the trail, and at most the pair limit
    // of them reached a password check with a wrong password.
    let events = login_events(&app, "victim", "127.0.0.2").await;
    assert_eq!(events.all, 200, "every attempt is audited: {events:?}");
    assert!(
        events.wrong as usize <= PAIR_FAILURES,
        "{} wrong passwords of 200 parallel guesses were checked",
        events.wrong
    );
    assert_eq!(
        (
            events.wrong as usize,
            events.right as usize,
            events.refused as usize
        ),
        (wrong, ok, refused)
    );
    // The right password was accepted only while the pair had failures left: in the order
    // the attempts were reserved, no success comes after the limit was used up.
    let outcomes = reserved_outcomes(&app, "victim", "127.0.0.2").await;
    assert_eq!(outcomes.len(), ok + wrong);
    let mut failures = 0;
    for outcome in &outcomes {
        match outcome.as_str() {
            "failed" => failures += 1,
            "succeeded" => assert!(
                failures < PAIR_FAILURES,
                "accepted after {failures} failures: {outcomes:?}"
            ),
            other => panic!("an attempt left {other}: {outcomes:?}"),
        }
    }
    // Once the pair's failures are used up, even the right password is not checked.
    let mut last = sign_in(&attacker, "victim", "one more guess").await;
    for _ in 0..PAIR_FAILURES {
        if last.status == 429 {
            break;
        }
        last = sign_in(&attacker, "victim", "one more guess").await;
    }
    retry_after(&last);
    let r = sign_in(&attacker, "victim", PASSWORD).await;
    retry_after(&r);
    assert_eq!(limit(&r), "account_address");
    let events = login_events(&app, "victim", "127.0.0.2").await;
    assert_eq!(events.wrong as usize, PAIR_FAILURES);
}

both_engines!(
    parallel_guesses_get_at_most_the_pair_limit_of_password_checks,
    settings = roomy,
    parallel_guesses_are_checked_at_most_the_pair_limit
);

both_engines!(
    the_owner_signs_in_from_another_address_right_after_an_attack,
    |app: TestApp| async move {
        account(&app, "victim").await;
        let replies = burst(&app.from_address("127.0.0.2"), guesses("victim")).await;
        assert!(replies.iter().any(|r| r.status == 429));
        let owner = app.from_address("127.0.0.3");
        let r = sign_in(&owner, "victim", PASSWORD).await.expect(200);
        assert!(r.body["token"].is_string());
        // The server saw the owner's own address.
        let events = login_events(&app, "victim", "127.0.0.3").await;
        assert_eq!((events.all, events.right), (1, 1));
    }
);

both_engines!(
    five_failures_refuse_that_name_from_that_address_only,
    |app: TestApp| async move {
        account(&app, "nurse").await;
        account(&app, "colleague").await;
        let here = app.from_address("127.0.0.30");
        for _ in 0..PAIR_FAILURES {
            let r = sign_in(&here, "nurse", "mistyped").await.expect(401);
            assert_eq!(r.error_code(), "invalid_credentials");
        }
        let r = sign_in(&here, "nurse", PASSWORD).await;
        let wait = retry_after(&r);
        assert_eq!(limit(&r), "account_address");
        assert!(
            wait > WINDOW_SECONDS - 120 && wait <= WINDOW_SECONDS,
            "wait {wait}"
        );
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("minutes")
        );
        // Not the account for everyone, and not the address for everyone.
        sign_in(&app.from_address("127.0.0.31"), "nurse", PASSWORD)
            .await
            .expect(200);
        sign_in(&here, "colleague", PASSWORD).await.expect(200);
        // A name that does not exist is limited exactly alike: no way to tell them apart.
        for _ in 0..PAIR_FAILURES {
            let r = sign_in(&here, "nobody-here", "mistyped").await.expect(401);
            assert_eq!(r.error_code(), "invalid_credentials");
        }
        let ghost = sign_in(&here, "nobody-here", PASSWORD).await;
        retry_after(&ghost);
        assert_eq!(limit(&ghost), "account_address");
        assert_eq!(words(&ghost), words(&r));
    }
);

both_engines!(
    a_care_centre_behind_one_address_is_not_locked_out,
    |app: TestApp| async move {
        // Thirty staff share the centre's one public address; each mistypes twice.
        for i in 0..30 {
            account(&app, &format!("staff{i}")).await;
        }
        account(&app, "latecomer").await;
        let centre = app.from_address("127.0.0.20");
        let typos: Vec<(String, String)> = (0..30)
            .flat_map(|i| {
                [
                    (format!("staff{i}"), "typo one".to_string()),
                    (format!("staff{i}"), "typo two".to_string()),
                ]
            })
            .collect();
        for chunk in typos.chunks(10) {
            for r in burst(&centre, chunk.to_vec()).await {
                r.expect(401);
            }
        }
        // Sixty failures from one address: the thirty-first account signs in, and so do the
        // thirty once they type the right password.
        sign_in(&centre, "latecomer", PASSWORD).await.expect(200);
        sign_in(&centre, "staff7", PASSWORD).await.expect(200);
        let events = login_events(&app, "staff7", "127.0.0.20").await;
        assert_eq!((events.wrong, events.right, events.refused), (2, 1, 0));
    }
);

both_engines!(
    many_addresses_slow_an_account_down_without_locking_it,
    |app: TestApp| async move {
        account(&app, "doctor").await;
        // The owner's usual place.
        let usual = app.from_address("127.0.0.40");
        sign_in(&usual, "doctor", PASSWORD).await.expect(200);
        // A guesser spread over many addresses: one try from each.
        for i in 1..=ACCOUNT_FREE_FAILURES {
            sign_in(
                &app.from_address(&format!("127.0.1.{i}")),
                "doctor",
                "spread guess",
            )
            .await
            .expect(401);
        }
        // Now each attempt from a new place must wait: even the right password. (The wait
        // runs from the last attempt: stamp them all "just now" so a slow machine cannot let
        // it pass before the next request arrives.)
        age_attempts(&app, "doctor", 0).await;
        let elsewhere = app.from_address("127.0.1.200");
        let r = sign_in(&elsewhere, "doctor", PASSWORD).await;
        let wait = retry_after(&r);
        assert_eq!(limit(&r), "account");
        assert!(wait <= 5, "the first wait is 5 s, got {wait}");
        // Slowed, not locked: the owner's usual address is not slowed at all...
        sign_in(&usual, "doctor", PASSWORD).await.expect(200);
        // ...and once the wait has passed, anyone may try again.
        age_attempts(&app, "doctor", 61).await;
        sign_in(&elsewhere, "doctor", PASSWORD).await.expect(200);
        // A name that does not exist slows down alike.
        for i in 1..=ACCOUNT_FREE_FAILURES {
            sign_in(
                &app.from_address(&format!("127.0.2.{i}")),
                "no-such-doctor",
                "spread guess",
            )
            .await
            .expect(401);
        }
        age_attempts(&app, "no-such-doctor", 0).await;
        let ghost = sign_in(&elsewhere, "no-such-doctor", PASSWORD).await;
        retry_after(&ghost);
        assert_eq!(limit(&ghost), "account");
    }
);

both_engines!(
    parallel_guesses_from_many_addresses_get_at_most_the_free_checks,
    |app: TestApp| async move {
        account(&app, "target").await;
        // Sixty addresses, one guess each, all at once: in-flight attempts count, so only the
        // free number of them is checked before the slowdown holds the rest.
        let mut tasks = Vec::new();
        let gate = Arc::new(tokio::sync::Barrier::new(60));
        for i in 1..=60 {
            let client = app.from_address(&format!("127.0.3.{i}"));
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                gate.wait().await;
                sign_in(&client, "target", "botnet guess").await.status
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.expect("request task"));
        }
        let checked = statuses.iter().filter(|s| **s == 401).count();
        let refused = statuses.iter().filter(|s| **s == 429).count();
        assert_eq!(checked + refused, 60, "{statuses:?}");
        assert!(
            checked <= ACCOUNT_FREE_FAILURES,
            "{checked} parallel guesses from many addresses were checked"
        );
    }
);

/// Settings whose database address limits are easy to reach: the in-process rate is not in the
/// way.
fn roomy(s: &mut Settings) {
    s.sign_in_per_address_burst = 10_000;
    s.sign_in_per_address_per_minute = 60_000;
}

async fn an_address_with_a_hundred_failures_refuses_only_names_new_to_it(app: TestApp) {
    account(&app, "regular").await;
    account(&app, "stranger").await;
    let here = app.from_address("127.0.0.50");
    sign_in(&here, "regular", PASSWORD).await.expect(200);
    // A sprayer tries one password on a hundred names from one address.
    let spray: Vec<(String, String)> = (0..ADDRESS_FAILURES)
        .map(|i| (format!("sprayed{i}"), "Summer2026!".to_string()))
        .collect();
    for chunk in spray.chunks(10) {
        for r in burst(&here, chunk.to_vec()).await {
            r.expect(401);
        }
    }
    // Names new to this address are refused from it, existing or not...
    let r = sign_in(&here, "stranger", PASSWORD).await;
    retry_after(&r);
    assert_eq!(limit(&r), "address");
    let r = sign_in(&here, "sprayed-more", "Summer2026!").await;
    let wait = retry_after(&r);
    assert_eq!(limit(&r), "address");
    assert!(wait > WINDOW_SECONDS - 120 && wait <= WINDOW_SECONDS);
    // ...a name that signed in from here before is not, and elsewhere nothing is refused.
    sign_in(&here, "regular", PASSWORD).await.expect(200);
    sign_in(&app.from_address("127.0.0.51"), "stranger", PASSWORD)
        .await
        .expect(200);
}

both_engines!(
    address_ceiling,
    settings = roomy,
    an_address_with_a_hundred_failures_refuses_only_names_new_to_it
);

async fn one_address_cannot_flood_a_node_with_attempts(app: TestApp) {
    account(&app, "someone").await;
    let flood: Vec<(String, String)> = (0..40)
        .map(|i| (format!("flood{i}"), "guess".to_string()))
        .collect();
    let replies = burst(&app.from_address("127.0.0.60"), flood).await;
    let checked = replies.iter().filter(|r| r.status == 401).count();
    // A burst of 5; one more may have been refilled if the machine took a minute.
    assert!((5..=6).contains(&checked), "{checked} checked");
    for r in replies.iter().filter(|r| r.status != 401) {
        let wait = retry_after(r);
        assert_eq!(limit(r), "address_rate");
        assert!(wait <= 60);
    }
    // Other addresses have their own budget.
    sign_in(&app.from_address("127.0.0.61"), "someone", PASSWORD)
        .await
        .expect(200);
}

/// Settings with a tight in-process rate per address.
fn tight_rate(s: &mut Settings) {
    s.sign_in_per_address_burst = 5;
    s.sign_in_per_address_per_minute = 1;
}

both_engines!(
    address_rate,
    settings = tight_rate,
    one_address_cannot_flood_a_node_with_attempts
);

both_engines!(
    a_reservation_of_a_request_that_died_stops_counting,
    |app: TestApp| async move {
        account(&app, "victim").await;
        // Five reservations left by requests that died a while ago (past the 60 s timeout)...
        for _ in 0..PAIR_FAILURES {
            in_flight_row(&app, "victim", "127.0.0.70", 61).await;
        }
        sign_in(&app.from_address("127.0.0.70"), "victim", PASSWORD)
            .await
            .expect(200);
        // ...while five that are still in flight do count.
        for _ in 0..PAIR_FAILURES {
            in_flight_row(&app, "victim", "127.0.0.71", 1).await;
        }
        let r = sign_in(&app.from_address("127.0.0.71"), "victim", PASSWORD).await;
        let wait = retry_after(&r);
        assert_eq!(limit(&r), "account_address");
        assert!(
            wait <= 2,
            "attempts in flight settle within seconds: {wait}"
        );
    }
);

both_engines!(
    limits_hold_across_nodes_and_restarts,
    |app: TestApp| async move {
        account(&app, "victim").await;
        let here = app.from_address("127.0.0.80");
        for _ in 0..PAIR_FAILURES {
            sign_in(&here, "victim", "guess").await.expect(401);
        }
        // Another node on the same database (or this one after a restart) knows.
        let node = app.another_node().await.anonymous();
        let r = sign_in(&node.from_address("127.0.0.80"), "victim", PASSWORD).await;
        assert_eq!(r.status, 429, "{}", r.text);
        assert!(r.headers.contains_key("retry-after"));
        let restarted = app.restart().await.anonymous();
        let r = sign_in(&restarted.from_address("127.0.0.80"), "victim", PASSWORD).await;
        assert_eq!(r.status, 429, "{}", r.text);
    }
);
