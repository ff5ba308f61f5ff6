-- Care relationships (PostgreSQL): break-the-glass grants, and the patients a list read touched.
-- Never edit once landed: add a new migration instead.

-- A clinician who opens a record outside the care-relationship rules gives a reason; the grant
-- is time-limited, listed for review and shown to the patient's care centre. Never changed or
-- removed: a grant ends by its expiry.
CREATE TABLE break_glass_grants (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id    BIGINT NOT NULL REFERENCES patients (id),
    clinician_id  BIGINT NOT NULL REFERENCES clinicians (id),
    account_id    BIGINT NOT NULL REFERENCES accounts (id),
    reason        TEXT NOT NULL,
    granted_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX break_glass_patient ON break_glass_grants (patient_id, expires_at);
CREATE INDEX break_glass_clinician ON break_glass_grants (clinician_id, granted_at);
CREATE FUNCTION break_glass_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'break-the-glass grants are append-only';
END;
$$;
CREATE TRIGGER break_glass_no_change BEFORE UPDATE OR DELETE ON break_glass_grants
    FOR EACH ROW EXECUTE FUNCTION break_glass_append_only();
CREATE TRIGGER break_glass_no_truncate BEFORE TRUNCATE ON break_glass_grants
    FOR EACH STATEMENT EXECUTE FUNCTION break_glass_append_only();

-- Every patient an audited request touched when there was more than one (a list, a calendar):
-- the event's own patient_id names a single patient. The event's hash covers these rows.
CREATE TABLE audit_event_patients (
    seq         BIGINT NOT NULL REFERENCES audit_events (seq),
    patient_id  BIGINT NOT NULL,
    PRIMARY KEY (patient_id, seq)
);
CREATE INDEX audit_event_patients_seq ON audit_event_patients (seq);
CREATE TRIGGER audit_event_patients_no_change BEFORE UPDATE OR DELETE ON audit_event_patients
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_event_patients_no_truncate BEFORE TRUNCATE ON audit_event_patients
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
