-- Identity (accounts, roles, sessions, visit links) and the audit trail (SQLite).
-- Never edit once landed: add a new migration instead.

CREATE TABLE accounts (
    id             INTEGER PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    -- argon2id PHC string; NULL for people who only ever arrive through visit links.
    password_hash  TEXT,
    patient_id     INTEGER UNIQUE REFERENCES patients (id),
    clinician_id   INTEGER UNIQUE REFERENCES clinicians (id),
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     TEXT NOT NULL
);

-- A person may hold several roles. A scheduler's facility is their hospital; NULL means the whole
-- network (a national coordinator).
CREATE TABLE account_roles (
    account_id   INTEGER NOT NULL REFERENCES accounts (id),
    role         TEXT NOT NULL CHECK (role IN ('patient', 'clinician', 'scheduler', 'administrator')),
    facility_id  INTEGER REFERENCES facilities (id),
    PRIMARY KEY (account_id, role)
);

-- Sessions are opaque random tokens; only their SHA-256 is stored.
CREATE TABLE sessions (
    id               INTEGER PRIMARY KEY,
    token_hash       TEXT NOT NULL UNIQUE,
    account_id       INTEGER NOT NULL REFERENCES accounts (id),
    -- A visit-link session may reach this one consultation only.
    consultation_id  INTEGER REFERENCES consultations (id),
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    last_seen_at     TEXT NOT NULL,
    revoked_at       TEXT
);
CREATE INDEX sessions_account ON sessions (account_id);

-- Each visit link can be used once.
CREATE TABLE visit_links (
    id               INTEGER PRIMARY KEY,
    consultation_id  INTEGER NOT NULL REFERENCES consultations (id),
    patient_id       INTEGER NOT NULL REFERENCES patients (id),
    issued_by        INTEGER NOT NULL REFERENCES accounts (id),
    issued_at        TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    used_at          TEXT
);

-- Append-only, hash-chained: each event's hash covers its fields and the previous event's hash.
-- seq is assigned by the writer (not an identity) because the hash covers it.
CREATE TABLE audit_events (
    seq               INTEGER PRIMARY KEY,
    occurred_at       TEXT NOT NULL,
    actor_account_id  INTEGER,
    actor             TEXT NOT NULL,
    actor_role        TEXT NOT NULL,
    action            TEXT NOT NULL,
    record_type       TEXT NOT NULL,
    record_id         TEXT,
    patient_id        INTEGER,
    client_addr       TEXT,
    outcome           TEXT NOT NULL,
    prev_hash         TEXT NOT NULL,
    hash              TEXT NOT NULL
);
CREATE INDEX audit_events_patient ON audit_events (patient_id, occurred_at);
CREATE INDEX audit_events_actor ON audit_events (actor, occurred_at);
CREATE INDEX audit_events_action_addr ON audit_events (action, client_addr, occurred_at);
CREATE INDEX audit_events_time ON audit_events (occurred_at);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
