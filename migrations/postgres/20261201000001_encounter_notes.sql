-- Encounter notes (PostgreSQL): one note per consultation, its draft history, and its signed entries.
-- Never edit once landed: add a new migration instead.

-- The note of a consultation. `version` counts draft saves; it is the version a client must send
-- with its next save or with the signature (optimistic concurrency). Once signed, the draft is
-- closed and corrections are addenda in note_entries.
CREATE TABLE encounter_notes (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consultation_id  BIGINT NOT NULL UNIQUE REFERENCES consultations (id),
    patient_id       BIGINT NOT NULL REFERENCES patients (id),
    status           TEXT NOT NULL CHECK (status IN ('draft', 'signed')),
    version          INTEGER NOT NULL CHECK (version >= 1),
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX encounter_notes_patient ON encounter_notes (patient_id);

-- Every draft save is a new row: the draft's history, never rewritten.
CREATE TABLE note_revisions (
    note_id              BIGINT NOT NULL REFERENCES encounter_notes (id),
    version              INTEGER NOT NULL,
    content              TEXT NOT NULL,
    author_clinician_id  BIGINT NOT NULL REFERENCES clinicians (id),
    saved_at             TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (note_id, version)
);

-- Signed entries: the note itself (seq 1) and its addenda (seq 2, 3, ...), each the canonical JSON
-- document that was signed and its SHA-256. An addendum names the entry it amends.
CREATE TABLE note_entries (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    note_id              BIGINT NOT NULL REFERENCES encounter_notes (id),
    seq                  INTEGER NOT NULL CHECK (seq >= 1),
    kind                 TEXT NOT NULL CHECK (kind IN ('note', 'addendum')),
    amends               BIGINT REFERENCES note_entries (id),
    document             TEXT NOT NULL,
    content_hash         TEXT NOT NULL,
    signer_clinician_id  BIGINT NOT NULL REFERENCES clinicians (id),
    signed_at            TIMESTAMPTZ NOT NULL,
    UNIQUE (note_id, seq),
    CHECK ((kind = 'note') = (amends IS NULL))
);

-- Signed entries and draft history are append-only, whatever the application does.
CREATE FUNCTION note_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'signed note entries and draft revisions cannot be changed; add an addendum';
END;
$$;
CREATE TRIGGER note_entries_no_change BEFORE UPDATE OR DELETE ON note_entries
    FOR EACH ROW EXECUTE FUNCTION note_records_append_only();
CREATE TRIGGER note_entries_no_truncate BEFORE TRUNCATE ON note_entries
    FOR EACH STATEMENT EXECUTE FUNCTION note_records_append_only();
CREATE TRIGGER note_revisions_no_change BEFORE UPDATE OR DELETE ON note_revisions
    FOR EACH ROW EXECUTE FUNCTION note_records_append_only();
CREATE TRIGGER note_revisions_no_truncate BEFORE TRUNCATE ON note_revisions
    FOR EACH STATEMENT EXECUTE FUNCTION note_records_append_only();

-- A signed note never goes back to draft, and its draft version no longer moves.
CREATE FUNCTION encounter_notes_signed_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'encounter notes are never deleted';
    END IF;
    IF OLD.status = 'signed' THEN
        RAISE EXCEPTION 'a signed note cannot be changed; add an addendum';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER encounter_notes_final BEFORE UPDATE OR DELETE ON encounter_notes
    FOR EACH ROW EXECUTE FUNCTION encounter_notes_signed_is_final();
CREATE TRIGGER encounter_notes_no_truncate BEFORE TRUNCATE ON encounter_notes
    FOR EACH STATEMENT EXECUTE FUNCTION note_records_append_only();
