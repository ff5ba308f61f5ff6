-- Hold limits (issue 12, finding 8). Never edit once landed.
--
-- The account that made each booking or hold, so that the holds one booker keeps at once can be
-- counted and capped. Null for consultations made before this column existed (they count for
-- nobody) and for the demo seed. No foreign key: accounts are disabled, never deleted, and a
-- referential check on every booking would weigh on the platform's hottest insert.
ALTER TABLE consultations ADD COLUMN booked_by BIGINT;

-- The cap counts an account's live holds; only held rows are in this index, so it stays as small
-- as the number of holds standing at any moment. (A patient's holds are counted through the
-- existing consultations_patient index: one patient has few consultations.)
CREATE INDEX consultations_holds_by ON consultations (booked_by) WHERE status = 'held';
