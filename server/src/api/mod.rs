//! The JSON API under `/api/v1`.
//!
//! Where to start reading: [`routes`] declares every endpoint (the only place routes are
//! declared, checked against `openapi.json`); [`dispatch`] takes a request through its steps
//! (route, session and CSRF, body, handler, audit event, metrics); [`ctx`] is what every handler
//! receives. Handlers parse their input at this edge and answer with [`reply`] or
//! [`error::ApiError`]; [`service_errors`] maps the services' errors to responses, and [`access`]
//! asks the access policy about a request's patient or consultation.
//!
//! This file only declares the modules: each file imports what it uses from the file that
//! defines it, so the handlers and the route table that names them do not import each other.

// The request's way through the API.
pub mod csrf;
pub mod ctx;
pub mod dispatch;
pub mod error;
pub mod idempotency;
pub mod links;
pub mod reply;
pub mod request_audit;
pub mod request_body;
pub mod routes;
pub mod service_errors;
pub mod validate;

// Access decisions shared by the handlers.
pub mod access;

// The handlers, one file per area.
pub mod account_changes;
pub mod accounts;
pub mod audit_trail;
pub mod availability;
pub mod break_glass;
pub mod calendar_feeds;
pub mod calls;
pub mod consultations;
pub mod directory;
pub mod notes;
pub mod notifications;
pub mod openapi;
pub mod passkeys;
pub mod schedule;
pub mod sessions;
pub mod visit_links;
