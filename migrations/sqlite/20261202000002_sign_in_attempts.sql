-- Sign-in attempts, reserved before the password is checked (SQLite).
-- Never edit once landed: add a new migration instead.
--
-- The limits of server/src/auth/throttle.rs count these rows: a reservation is written as
-- 'in_flight' in the same transaction that checked the limits, then becomes 'failed' or
-- 'succeeded'. An 'in_flight' row of a request that died stops counting after a timeout.
-- Rows are kept only as long as the limits need them; the audit trail keeps every attempt.
CREATE TABLE sign_in_attempts (
    id           INTEGER PRIMARY KEY,
    -- The normalised user name tried, whether or not such an account exists.
    username     TEXT NOT NULL,
    -- The client's address (an IPv6 client's /64 network): what the address limits count.
    client_addr  TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    outcome      TEXT NOT NULL CHECK (outcome IN ('in_flight', 'failed', 'succeeded')),
    finished_at  TEXT
);
CREATE INDEX sign_in_attempts_account ON sign_in_attempts (username, started_at);
CREATE INDEX sign_in_attempts_address ON sign_in_attempts (client_addr, started_at);
