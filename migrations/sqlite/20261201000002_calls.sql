-- Video calls of a consultation, as the signaling server saw them: a call starts when the first
-- clinician joins the room and ends when the last participant has left (after the reconnection
-- grace period). A consultation may have several calls (everyone left, then came back).
CREATE TABLE calls (
    id                INTEGER PRIMARY KEY,
    consultation_id   INTEGER NOT NULL REFERENCES consultations (id),
    started_at        TEXT NOT NULL,
    ended_at          TEXT,
    duration_seconds  INTEGER
);
CREATE INDEX calls_consultation ON calls (consultation_id);
