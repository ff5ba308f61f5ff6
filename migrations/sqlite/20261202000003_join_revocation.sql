-- Join tokens follow the consultation (signaling/PROTOCOL.md, "Revocation"). Never edit once landed.
--
-- The access version changes when the consultation's people or its joinability change: moved to
-- another clinician, cancelled, completed, not attended. Not on every status change: a call
-- starting (booked -> in_progress) must not revoke the tokens of the people about to join it.
-- Join tokens carry the version they were issued at; every join compares it with this one.
ALTER TABLE consultations ADD COLUMN access_version INTEGER NOT NULL DEFAULT 1;

-- Participants a clinician denied or removed from a consultation's call: their join tokens issued
-- until revoked_at are refused, on every node and after restarts. A guest's participant id
-- belongs to one invitation, so a denied guest stays out until invited again.
CREATE TABLE call_revocations (
    consultation_id  INTEGER NOT NULL REFERENCES consultations (id),
    participant      TEXT NOT NULL,
    revoked_at       TEXT NOT NULL,
    PRIMARY KEY (consultation_id, participant)
);
