-- Privileged account changes wait for a second administrator (SQLite).
-- Never edit once landed: add a new migration instead.
--
-- Linking an account to a patient or a clinician, and granting a role that reaches patient data
-- or other accounts (scheduler, administrator, or patient/clinician on a linked account), is
-- proposed by one administrator and applied only when another one approves it.

CREATE TABLE account_changes (
    id             INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL REFERENCES accounts (id),
    proposed_by    INTEGER NOT NULL REFERENCES accounts (id),
    proposed_at    TEXT NOT NULL,
    -- A pending change lapses at this time (it is marked 'expired' the next time it is touched).
    expires_at     TEXT NOT NULL,
    -- The links the change makes (NULL: none).
    patient_id     INTEGER REFERENCES patients (id),
    clinician_id   INTEGER REFERENCES clinicians (id),
    -- The account's roles when proposed, and the roles it asks for: JSON arrays of
    -- {"role", "facility_id"}. Approval refuses a change whose account moved on since.
    roles_before   TEXT NOT NULL,
    roles_after    TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    decided_by     INTEGER REFERENCES accounts (id),
    decided_at     TEXT,
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
CREATE TRIGGER account_changes_decided_no_update BEFORE UPDATE ON account_changes
WHEN OLD.status <> 'pending'
BEGIN
    SELECT RAISE(ABORT, 'a decided account change cannot be altered');
END;
CREATE TRIGGER account_changes_no_delete BEFORE DELETE ON account_changes
BEGIN
    SELECT RAISE(ABORT, 'account changes are never deleted');
END;
