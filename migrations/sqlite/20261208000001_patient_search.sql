-- A hub's scheduler finds a patient's bookings by name, typed without diacritics, SQLite. Never edit
-- once landed.
--
-- The patient's name folded for search: lowercase, diacritics removed, đ as d ("nguyen van an"
-- for "Nguyễn Văn An"). SQLite's lower() and LIKE fold ASCII only, so the server folds names
-- (telehealth::domain::text::fold_for_search) and writes this column wherever it writes a name;
-- rows from before this migration are NULL until the server fills them in at start.
ALTER TABLE patients ADD COLUMN search_name TEXT;
-- Finds the rows still to fill in at start (search_name IS NULL) without a scan; a name search
-- matches a substring, which no B-tree serves: it filters the consultations of one hospital's
-- date range, which their own indexes find.
CREATE INDEX patients_search_name ON patients (search_name);
