-- Video calls of a consultation, as the signaling server saw them: a call starts when the first
-- clinician joins the room and ends when the last participant has left (after the reconnection
-- grace period). A consultation may have several calls (everyone left, then came back).
CREATE TABLE calls (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consultation_id   BIGINT NOT NULL REFERENCES consultations (id),
    started_at        TIMESTAMPTZ NOT NULL,
    ended_at          TIMESTAMPTZ,
    duration_seconds  BIGINT
);
CREATE INDEX calls_consultation ON calls (consultation_id);
