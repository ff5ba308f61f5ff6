-- Scheduling foundation (SQLite). Never edit once landed: add a new migration instead.
-- Timestamps are UTC, encoded by sqlx as RFC 3339 text with whole seconds, so text order is time order.

CREATE TABLE facilities (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('hub_hospital', 'care_centre')),
    level       TEXT NOT NULL CHECK (level IN ('central', 'provincial', 'regional', 'district', 'commune')),
    province    TEXT NOT NULL,
    address     TEXT NOT NULL,
    time_zone   TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX facilities_province ON facilities (province);

CREATE TABLE departments (
    id           INTEGER PRIMARY KEY,
    facility_id  INTEGER NOT NULL REFERENCES facilities (id),
    name         TEXT NOT NULL,
    UNIQUE (facility_id, name)
);

CREATE TABLE specialties (
    id       INTEGER PRIMARY KEY,
    code     TEXT NOT NULL UNIQUE,
    name_en  TEXT NOT NULL,
    name_vi  TEXT NOT NULL
);

CREATE TABLE clinicians (
    id             INTEGER PRIMARY KEY,
    facility_id    INTEGER NOT NULL REFERENCES facilities (id),
    department_id  INTEGER REFERENCES departments (id),
    full_name      TEXT NOT NULL,
    title          TEXT NOT NULL,
    active         BOOLEAN NOT NULL DEFAULT TRUE,
    created_at     TEXT NOT NULL
);
CREATE INDEX clinicians_facility ON clinicians (facility_id);

CREATE TABLE clinician_specialties (
    clinician_id  INTEGER NOT NULL REFERENCES clinicians (id),
    specialty_id  INTEGER NOT NULL REFERENCES specialties (id),
    PRIMARY KEY (clinician_id, specialty_id)
);
CREATE INDEX clinician_specialties_specialty ON clinician_specialties (specialty_id);

CREATE TABLE patients (
    id                INTEGER PRIMARY KEY,
    full_name         TEXT NOT NULL,
    date_of_birth     TEXT NOT NULL,
    sex               TEXT NOT NULL CHECK (sex IN ('female', 'male', 'other', 'unknown')),
    phone             TEXT,
    national_id       TEXT UNIQUE,
    home_facility_id  INTEGER REFERENCES facilities (id),
    created_at        TEXT NOT NULL
);
CREATE INDEX patients_home_facility ON patients (home_facility_id);

-- Weekly recurring availability, in the clinician's facility's local time.
CREATE TABLE availability_rules (
    id              INTEGER PRIMARY KEY,
    clinician_id    INTEGER NOT NULL REFERENCES clinicians (id),
    weekday         INTEGER NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    start_time      TEXT NOT NULL,
    end_time        TEXT NOT NULL,
    slot_minutes    INTEGER NOT NULL,
    buffer_minutes  INTEGER NOT NULL,
    valid_from      TEXT,
    valid_until     TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX availability_rules_clinician ON availability_rules (clinician_id);

-- Dated exceptions: leave removes time (a whole day when no times are given), extra adds a session.
CREATE TABLE availability_exceptions (
    id              INTEGER PRIMARY KEY,
    clinician_id    INTEGER NOT NULL REFERENCES clinicians (id),
    on_date         TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('leave', 'extra')),
    start_time      TEXT,
    end_time        TEXT,
    slot_minutes    INTEGER,
    buffer_minutes  INTEGER,
    note            TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL
);
CREATE INDEX availability_exceptions_clinician_date ON availability_exceptions (clinician_id, on_date);

CREATE TABLE consultations (
    id                      INTEGER PRIMARY KEY,
    kind                    TEXT NOT NULL CHECK (kind IN ('video_visit', 'teleconsultation')),
    status                  TEXT NOT NULL CHECK (status IN ('held', 'booked', 'in_progress', 'completed', 'cancelled', 'no_show', 'expired')),
    clinician_id            INTEGER NOT NULL REFERENCES clinicians (id),
    patient_id              INTEGER NOT NULL REFERENCES patients (id),
    requesting_facility_id  INTEGER REFERENCES facilities (id),
    referring_clinician_id  INTEGER REFERENCES clinicians (id),
    reason                  TEXT NOT NULL,
    urgency                 TEXT NOT NULL CHECK (urgency IN ('routine', 'soon', 'urgent')),
    start_at                TEXT NOT NULL,
    end_at                  TEXT NOT NULL,
    hold_expires_at         TEXT,
    cancel_reason           TEXT,
    started_at              TEXT,
    ended_at                TEXT,
    created_at              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    version                 INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX consultations_clinician_start ON consultations (clinician_id, start_at);
CREATE INDEX consultations_patient ON consultations (patient_id);
CREATE INDEX consultations_requesting_facility ON consultations (requesting_facility_id, start_at);

-- The guard against double booking. Every live consultation (held, booked, in progress) claims each
-- five-minute cell of its time; the primary key lets only one consultation hold a cell, so two
-- overlapping bookings cannot both commit, whatever the application does. No foreign keys here:
-- claims are written and removed only together with their consultation, in one statement or
-- transaction, and two referential checks per cell (twelve per half-hour booking) weighed on the
-- hottest write.
CREATE TABLE slot_claims (
    clinician_id     INTEGER NOT NULL,
    cell             INTEGER NOT NULL,
    consultation_id  INTEGER NOT NULL,
    PRIMARY KEY (clinician_id, cell)
);
CREATE INDEX slot_claims_consultation ON slot_claims (consultation_id);

CREATE TABLE consultation_events (
    id               INTEGER PRIMARY KEY,
    consultation_id  INTEGER NOT NULL REFERENCES consultations (id),
    occurred_at      TEXT NOT NULL,
    actor            TEXT NOT NULL,
    action           TEXT NOT NULL,
    detail           TEXT NOT NULL DEFAULT ''
);
CREATE INDEX consultation_events_consultation ON consultation_events (consultation_id);

CREATE TABLE platform_meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
