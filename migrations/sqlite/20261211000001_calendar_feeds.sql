-- Clinicians' calendar feeds (issue 14), SQLite. Never edit once landed.
--
-- A secret iCalendar URL per clinician that their phone's or desk's calendar subscribes to. Only
-- the SHA-256 of the URL's token is kept, so the table does not hold a working URL. At most one
-- feed of a clinician is live; a new one revokes the old, and revoking leaves the row (who made
-- it, when, when it was last read). Patient names appear in the feed only when the clinician
-- chose so (`with_patient_names`).
CREATE TABLE calendar_feeds (
    id                  INTEGER PRIMARY KEY,
    clinician_id        INTEGER NOT NULL REFERENCES clinicians(id),
    token_hash          TEXT NOT NULL UNIQUE,
    with_patient_names  INTEGER NOT NULL,
    created_at          TEXT NOT NULL,
    created_by          INTEGER NOT NULL REFERENCES accounts(id),
    revoked_at          TEXT,
    last_fetched_at     TEXT
);
CREATE UNIQUE INDEX calendar_feeds_live ON calendar_feeds (clinician_id) WHERE revoked_at IS NULL;
