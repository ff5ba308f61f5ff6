-- Care relationships (SQLite): break-the-glass grants, and the patients a list read touched.
-- Never edit once landed: add a new migration instead.

-- A clinician who opens a record outside the care-relationship rules gives a reason; the grant
-- is time-limited, listed for review and shown to the patient's care centre. Never changed or
-- removed: a grant ends by its expiry.
CREATE TABLE break_glass_grants (
    id            INTEGER PRIMARY KEY,
    patient_id    INTEGER NOT NULL REFERENCES patients (id),
    clinician_id  INTEGER NOT NULL REFERENCES clinicians (id),
    account_id    INTEGER NOT NULL REFERENCES accounts (id),
    reason        TEXT NOT NULL,
    granted_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL
);
CREATE INDEX break_glass_patient ON break_glass_grants (patient_id, expires_at);
CREATE INDEX break_glass_clinician ON break_glass_grants (clinician_id, granted_at);
CREATE TRIGGER break_glass_no_update BEFORE UPDATE ON break_glass_grants
BEGIN
    SELECT RAISE(ABORT, 'break-the-glass grants are append-only');
END;
CREATE TRIGGER break_glass_no_delete BEFORE DELETE ON break_glass_grants
BEGIN
    SELECT RAISE(ABORT, 'break-the-glass grants are append-only');
END;

-- Every patient an audited request touched when there was more than one (a list, a calendar):
-- the event's own patient_id names a single patient. The event's hash covers these rows.
CREATE TABLE audit_event_patients (
    seq         INTEGER NOT NULL REFERENCES audit_events (seq),
    patient_id  INTEGER NOT NULL,
    PRIMARY KEY (patient_id, seq)
);
CREATE INDEX audit_event_patients_seq ON audit_event_patients (seq);
CREATE TRIGGER audit_event_patients_no_update BEFORE UPDATE ON audit_event_patients
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_event_patients_no_delete BEFORE DELETE ON audit_event_patients
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
