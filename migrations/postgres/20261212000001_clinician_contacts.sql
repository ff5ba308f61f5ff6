-- How each clinician is told of what needs them (issue 14), PostgreSQL. Never edit once landed.
--
-- A clinician chooses a channel for the messages about their consultations: a patient waiting
-- in the room of a visit they take (the web client shows it live too), a move or cancellation of
-- a visit they referred, and the signature of its note. Without a row nothing is sent to them.
-- Their own mobile number and work email are kept here: clinicians' records hold neither.
CREATE TABLE clinician_contacts (
    clinician_id   BIGINT PRIMARY KEY REFERENCES clinicians(id),
    channel        TEXT NOT NULL CHECK (channel IN ('zalo', 'sms', 'email', 'none')),
    language       TEXT NOT NULL CHECK (language IN ('vi', 'en')),
    phone          TEXT,
    email          TEXT,
    updated_at     TIMESTAMPTZ NOT NULL,
    updated_by     BIGINT NOT NULL REFERENCES accounts(id),
    CHECK (channel <> 'email' OR email IS NOT NULL),
    CHECK (channel NOT IN ('sms', 'zalo') OR phone IS NOT NULL)
);

-- A message to a clinician names them, as a patient's message names the patient.
ALTER TABLE outbox_messages ADD COLUMN recipient_clinician_id BIGINT REFERENCES clinicians(id);
