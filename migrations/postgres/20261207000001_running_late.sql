-- A specialist running late tells the patients waiting for them (issue 13), PostgreSQL. Never edit once
-- landed.
--
-- The delay, in minutes, that a booked consultation's clinician announced; NULL when on time.
-- The patient's waiting room shows it (and the time it makes), and each change is an event of
-- the consultation and in the audit trail.
ALTER TABLE consultations ADD COLUMN running_late_minutes INTEGER;
