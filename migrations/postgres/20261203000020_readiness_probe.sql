-- The readiness probe's table (`/readyz`, server/src/storage/readiness.rs): each probe inserts a
-- row with filler and deletes it in the same transaction, so that it fails where a write would
-- (a standby, a read-only database). Empty between probes.
CREATE TABLE readiness_probe (
    node    TEXT PRIMARY KEY,
    filler  BYTEA NOT NULL
);
