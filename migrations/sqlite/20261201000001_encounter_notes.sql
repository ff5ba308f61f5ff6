-- Encounter notes (SQLite): one note per consultation, its draft history, and its signed entries.
-- Never edit once landed: add a new migration instead.

-- The note of a consultation. `version` counts draft saves; it is the version a client must send
-- with its next save or with the signature (optimistic concurrency). Once signed, the draft is
-- closed and corrections are addenda in note_entries.
CREATE TABLE encounter_notes (
    id               INTEGER PRIMARY KEY,
    consultation_id  INTEGER NOT NULL UNIQUE REFERENCES consultations (id),
    patient_id       INTEGER NOT NULL REFERENCES patients (id),
    status           TEXT NOT NULL CHECK (status IN ('draft', 'signed')),
    version          INTEGER NOT NULL CHECK (version >= 1),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX encounter_notes_patient ON encounter_notes (patient_id);

-- Every draft save is a new row: the draft's history, never rewritten.
CREATE TABLE note_revisions (
    note_id              INTEGER NOT NULL REFERENCES encounter_notes (id),
    version              INTEGER NOT NULL,
    content              TEXT NOT NULL,
    author_clinician_id  INTEGER NOT NULL REFERENCES clinicians (id),
    saved_at             TEXT NOT NULL,
    PRIMARY KEY (note_id, version)
);

-- Signed entries: the note itself (seq 1) and its addenda (seq 2, 3, ...), each the canonical JSON
-- document that was signed and its SHA-256. An addendum names the entry it amends.
CREATE TABLE note_entries (
    id                   INTEGER PRIMARY KEY,
    note_id              INTEGER NOT NULL REFERENCES encounter_notes (id),
    seq                  INTEGER NOT NULL CHECK (seq >= 1),
    kind                 TEXT NOT NULL CHECK (kind IN ('note', 'addendum')),
    amends               INTEGER REFERENCES note_entries (id),
    document             TEXT NOT NULL,
    content_hash         TEXT NOT NULL,
    signer_clinician_id  INTEGER NOT NULL REFERENCES clinicians (id),
    signed_at            TEXT NOT NULL,
    UNIQUE (note_id, seq),
    CHECK ((kind = 'note') = (amends IS NULL))
);

-- Signed entries and draft history are append-only, whatever the application does.
CREATE TRIGGER note_entries_no_update BEFORE UPDATE ON note_entries
BEGIN
    SELECT RAISE(ABORT, 'signed note entries cannot be changed; add an addendum');
END;
CREATE TRIGGER note_entries_no_delete BEFORE DELETE ON note_entries
BEGIN
    SELECT RAISE(ABORT, 'signed note entries cannot be changed; add an addendum');
END;
CREATE TRIGGER note_revisions_no_update BEFORE UPDATE ON note_revisions
BEGIN
    SELECT RAISE(ABORT, 'note revisions are append-only');
END;
CREATE TRIGGER note_revisions_no_delete BEFORE DELETE ON note_revisions
BEGIN
    SELECT RAISE(ABORT, 'note revisions are append-only');
END;
-- A signed note never goes back to draft, and its draft version no longer moves.
CREATE TRIGGER encounter_notes_signed_is_final BEFORE UPDATE ON encounter_notes
WHEN OLD.status = 'signed'
BEGIN
    SELECT RAISE(ABORT, 'a signed note cannot be changed; add an addendum');
END;
CREATE TRIGGER encounter_notes_no_delete BEFORE DELETE ON encounter_notes
BEGIN
    SELECT RAISE(ABORT, 'encounter notes are never deleted');
END;
