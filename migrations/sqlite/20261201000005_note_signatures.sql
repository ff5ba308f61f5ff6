-- Ed25519 signatures of signed note entries (SQLite). Never edit once landed: add a new migration.
-- Each entry stores the signature of its `document` by the signer's key and that public key (both
-- base64). Entries signed before this migration have neither; every entry written since has both.
-- Adding columns changes no row, so the append-only triggers are not involved.
ALTER TABLE note_entries ADD COLUMN signature TEXT;
ALTER TABLE note_entries ADD COLUMN public_key TEXT;
