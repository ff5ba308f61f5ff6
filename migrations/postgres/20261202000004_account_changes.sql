-- Privileged account changes wait for a second administrator (PostgreSQL).
-- Never edit once landed: add a new migration instead.
--
-- Linking an account to a patient or a clinician, and granting a role that reaches patient data
-- or other accounts (scheduler, administrator, or patient/clinician on a linked account), is
-- proposed by one administrator and applied only when another one approves it.

CREATE TABLE account_changes (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id     BIGINT NOT NULL REFERENCES accounts (id),
    proposed_by    BIGINT NOT NULL REFERENCES accounts (id),
    proposed_at    TIMESTAMPTZ NOT NULL,
    -- A pending change lapses at this time (it is marked 'expired' the next time it is touched).
    expires_at     TIMESTAMPTZ NOT NULL,
    -- The links the change makes (NULL: none).
    patient_id     BIGINT REFERENCES patients (id),
    clinician_id   BIGINT REFERENCES clinicians (id),
    -- The account's roles when proposed, and the roles it asks for: JSON arrays of
    -- {"role", "facility_id"}. Approval refuses a change whose account moved on since.
    roles_before   TEXT NOT NULL,
    roles_after    TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    decided_by     BIGINT REFERENCES accounts (id),
    decided_at     TIMESTAMPTZ,
    reason         TEXT,
    -- Nobody proposes a change to their own account, and nobody decides a change they proposed
    -- or that is to their own account.
    CHECK (proposed_by <> account_id),
    CHECK (decided_by IS NULL OR (decided_by <> proposed_by AND decided_by <> account_id)),
    CHECK ((status IN ('approved', 'rejected')) = (decided_by IS NOT NULL AND decided_at IS NOT NULL))
);
-- One pending change per account at a time.
CREATE UNIQUE INDEX account_changes_one_pending ON account_changes (account_id) WHERE status = 'pending';
CREATE INDEX account_changes_status ON account_changes (status, id);

-- A decided change is history: it never changes and is never removed.
CREATE FUNCTION account_changes_keep_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'account changes are never deleted';
    END IF;
    IF OLD.status <> 'pending' THEN
        RAISE EXCEPTION 'a decided account change cannot be altered';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER account_changes_history BEFORE UPDATE OR DELETE ON account_changes
    FOR EACH ROW EXECUTE FUNCTION account_changes_keep_history();
CREATE TRIGGER account_changes_no_truncate BEFORE TRUNCATE ON account_changes
    FOR EACH STATEMENT EXECUTE FUNCTION account_changes_keep_history();
