-- The outbox of notifications (issue 14), PostgreSQL. Never edit once landed.
--
-- One row per message to one endpoint, written in the same transaction as the change that causes
-- it (a booking, a reschedule, a cancellation), so a change that rolls back leaves no message and
-- a committed change always has its messages. The dispatcher (server/src/outbox/dispatcher.rs)
-- claims due rows with a lease (status 'sending', lease_owner, lease_until); a lease that runs
-- out (its node crashed) is claimable again. `payload` is JSON without clinical content: ids and
-- times only, never a patient's name or a consultation's reason. `last_error` is a short
-- description of the transport failure (a status code, a timeout), never a response body.
-- A message to a person (a patient's reminder) names them in `recipient_patient_id` and is
-- rendered only when sent, from the records as they are then (so a changed phone number or a
-- moved visit is what the message says); a reminder whose visit was cancelled or moved is
-- `cancelled`, in the transaction that cancelled or moved it. `sent_via` is the channel that
-- delivered it (Zalo, or SMS when Zalo refused).
CREATE TABLE outbox_messages (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Sent to the receiver (webhook-id) so that a retry after a crash is recognisable there.
    idempotency_key  TEXT NOT NULL UNIQUE,
    event_kind       TEXT NOT NULL,
    consultation_id  BIGINT REFERENCES consultations(id),
    channel          TEXT NOT NULL,
    -- The configured endpoint's name (for a webhook), or a recipient reference.
    endpoint         TEXT NOT NULL,
    payload          TEXT NOT NULL,
    recipient_patient_id BIGINT REFERENCES patients(id),
    -- The account whose change caused the message (a visit link in it is issued in their name).
    actor_account_id BIGINT REFERENCES accounts(id),
    due_at           TIMESTAMPTZ NOT NULL,
    status           TEXT NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'sending', 'sent', 'dead', 'cancelled')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_until      TIMESTAMPTZ,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    sent_at          TIMESTAMPTZ,
    sent_via         TEXT
);

-- What the dispatcher scans: messages still to send, by when they are due.
CREATE INDEX outbox_messages_due ON outbox_messages (due_at)
    WHERE status IN ('queued', 'sending');
CREATE INDEX outbox_messages_consultation ON outbox_messages (consultation_id);
CREATE INDEX outbox_messages_patient ON outbox_messages (recipient_patient_id);
