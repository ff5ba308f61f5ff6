-- The booking's write statement alone, as PostgreSQL runs it for POST /api/v1/consultations
-- (server/src/scheduling/booking/store.rs, insert_booking_audited): the consultation, its slot
-- claims, its first event and its staged audit event in one statement. Each transaction books
-- the next half hour of a far-future day (a sequence instead of the service's free-slot search),
-- six five-minute cells, so no two collide: the database's own ceiling for bookings.
WITH n AS (SELECT nextval('pgbench_booking') AS v),
c AS (
  INSERT INTO consultations (kind, status, clinician_id, patient_id, requesting_facility_id,
    referring_clinician_id, reason, urgency, start_at, end_at, hold_expires_at, created_at,
    updated_at, version, booked_by)
  SELECT 'teleconsultation', 'booked', 1, 1, NULL, NULL, 'pgbench', 'routine',
    timestamptz '2040-01-01 00:00Z' + n.v * interval '30 minutes',
    timestamptz '2040-01-01 00:30Z' + n.v * interval '30 minutes', NULL, now(), now(), 1, 1
  FROM n
  RETURNING id, kind, status, clinician_id, patient_id, requesting_facility_id,
    referring_clinician_id, reason, urgency, start_at, end_at, hold_expires_at, cancel_reason,
    started_at, ended_at, created_at, updated_at, version),
claims AS (
  INSERT INTO slot_claims (clinician_id, cell, consultation_id)
  SELECT 1, g, c.id FROM c, n, generate_series(n.v * 6, n.v * 6 + 5) AS g),
ev AS (
  INSERT INTO consultation_events (consultation_id, occurred_at, actor, action, detail)
  SELECT c.id, now(), 'pgbench', 'booked', '' FROM c),
audit AS (
  INSERT INTO audit_pending (occurred_at, actor_account_id, actor, actor_role, action,
    record_type, record_id, patient_id, client_addr, outcome)
  SELECT now(), 1, 'pgbench', 'clinician', 'POST /api/v1/consultations', 'consultation',
    c.id::text, 1, '127.0.0.1', 'success' FROM c)
SELECT * FROM c;
