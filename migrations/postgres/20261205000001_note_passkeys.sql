-- Passkeys that sign encounter notes (issue 12, "signatures the server alone cannot make"),
-- PostgreSQL. Never edit once landed.
--
-- A clinician enrols WebAuthn credentials; once they have one, their notes and addenda are signed
-- by their authenticator: the WebAuthn challenge is the SHA-256 of the entry's canonical document,
-- so the assertion stored with the entry proves the clinician's device signed exactly that
-- document, and anyone can check it against the published public key (public_jwk).
--
-- `credential` is the credential as webauthn-rs keeps it (public key, signature counter, policy);
-- `tag` is an HMAC under the notes key-encryption key over the clinician, credential id and public
-- key, so a credential planted through the database alone verifies nothing.
CREATE TABLE clinician_passkeys (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    clinician_id   BIGINT NOT NULL REFERENCES clinicians (id),
    credential_id  TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    credential     TEXT NOT NULL,
    public_jwk     TEXT NOT NULL,
    tag            TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    last_used_at   TIMESTAMPTZ
);
CREATE INDEX clinician_passkeys_clinician ON clinician_passkeys (clinician_id);

-- The server's half of a WebAuthn ceremony between its challenge and the authenticator's answer:
-- in the database, so the answer may reach any node. One use each; expired rows are refused and
-- swept. For a signature it holds the exact document the challenge is the hash of.
CREATE TABLE webauthn_ceremonies (
    id               TEXT PRIMARY KEY,
    account_id       BIGINT NOT NULL REFERENCES accounts (id),
    purpose          TEXT NOT NULL CHECK (purpose IN ('register', 'sign_note', 'sign_addendum')),
    state            TEXT NOT NULL,
    consultation_id  BIGINT REFERENCES consultations (id),
    note_version     INTEGER,
    document         TEXT,
    expires_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);

-- The assertion that signed an entry: JSON of the credential id, authenticator data, client data
-- and signature (base64url), exactly as the authenticator returned them. Null for entries signed
-- with the server-held key of a clinician without a passkey.
ALTER TABLE note_entries ADD COLUMN passkey_assertion TEXT;
