-- How each patient wants to be told of their visits (issue 14), SQLite. Never edit once landed.
--
-- One row per patient who has been asked. Without a row, or with consent withdrawn, nothing is
-- sent to the patient by any channel (a clinic records the patient's answer, or the patient does
-- in their own session; every change is in the audit trail with who made it). The phone is the
-- patient record's own (patients.phone); an email address is kept here because only messages
-- use it. Quiet hours are minutes after local midnight in the patient's care centre's zone, and
-- may wrap past midnight (21:00 to 07:00 is 1260 to 420); both NULL: none.
CREATE TABLE patient_contacts (
    patient_id     INTEGER PRIMARY KEY REFERENCES patients(id),
    consent        INTEGER NOT NULL,
    channel        TEXT NOT NULL CHECK (channel IN ('zalo', 'sms', 'email', 'none')),
    language       TEXT NOT NULL CHECK (language IN ('vi', 'en')),
    email          TEXT,
    quiet_from     INTEGER CHECK (quiet_from BETWEEN 0 AND 1439),
    quiet_until    INTEGER CHECK (quiet_until BETWEEN 0 AND 1439),
    updated_at     TEXT NOT NULL,
    updated_by     INTEGER NOT NULL REFERENCES accounts(id),
    CHECK ((quiet_from IS NULL) = (quiet_until IS NULL)),
    CHECK (channel <> 'email' OR email IS NOT NULL)
);
