-- The write journal: what a write commits in its own transaction besides the change itself.
--
-- audit_pending: the audit event of a write, staged in the write's transaction (so no change
-- commits without its event) and moved into the hash chain (audit_events) by the audit writer
-- moments later. Staging takes no lock, so concurrent writes do not queue behind the chain.
CREATE TABLE audit_pending (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at       TIMESTAMPTZ NOT NULL,
    actor_account_id  BIGINT,
    actor             TEXT NOT NULL,
    actor_role        TEXT NOT NULL,
    action            TEXT NOT NULL,
    record_type       TEXT NOT NULL,
    record_id         TEXT,
    patient_id        BIGINT,
    client_addr       TEXT,
    outcome           TEXT NOT NULL
);

-- idempotency_keys: the first answer to a request sent with an Idempotency-Key, stored in the
-- same transaction as the change it answers, so a retry after a crash gets that answer again.
CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
