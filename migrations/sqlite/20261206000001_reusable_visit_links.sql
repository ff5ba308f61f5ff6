-- Visit links that behave like the links patients get from any clinic (issue 13), SQLite. Never
-- edit once landed.
--
-- A link is no longer used once: it opens the visit on any device until it expires (an hour after
-- the visit's end), each device that has no session of the patient's confirming their date of
-- birth first. A few wrong dates lock the link (the clinic sees it and sends a new one), and the
-- clinic can withdraw a link at any time. `used_at` stays the first use.
ALTER TABLE visit_links ADD COLUMN uses INTEGER NOT NULL DEFAULT 0;
ALTER TABLE visit_links ADD COLUMN last_used_at TEXT;
ALTER TABLE visit_links ADD COLUMN failed_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE visit_links ADD COLUMN locked_at TEXT;
ALTER TABLE visit_links ADD COLUMN revoked_at TEXT;
CREATE INDEX visit_links_consultation ON visit_links (consultation_id);
