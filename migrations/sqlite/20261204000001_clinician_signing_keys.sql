-- Per-clinician note signing keys (issue 12, finding 6), SQLite. Never edit once landed.
--
-- Keys used to be derived from the server's visit-link secret, so whoever held the data folder
-- could sign as any clinician. Now each clinician gets a random Ed25519 key on first signing; its
-- private half is stored here only encrypted (ChaCha20-Poly1305) under the key-encryption key in
-- the `notes_kek_file`, outside the database. A row's `tag` (HMAC under a key derived from that
-- KEK) covers every other column, so a key row added or changed by someone holding the database
-- but not the KEK is not part of the published history and verifies nothing.
--
-- Rows with no private key are retired keys kept only to verify entries signed before: the
-- derived keys of entries that existed when this table came (recorded at startup), each good for
-- entries up to `legacy_through_entry` only.
CREATE TABLE clinician_signing_keys (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    clinician_id          INTEGER NOT NULL REFERENCES clinicians (id),
    public_key            TEXT NOT NULL UNIQUE,
    encrypted_private_key TEXT,
    legacy_through_entry  INTEGER,
    tag                   TEXT NOT NULL,
    created_at            TEXT NOT NULL,
    retired_at            TEXT
);
-- At most one current key per clinician: two first signatures at once agree on one key.
CREATE UNIQUE INDEX clinician_signing_keys_current ON clinician_signing_keys (clinician_id)
    WHERE retired_at IS NULL;
CREATE INDEX clinician_signing_keys_clinician ON clinician_signing_keys (clinician_id);
