//! The telehealth platform server: HTTP API, scheduling domain and storage.
//!
//! `main.rs` is thin; [`startup::Application`] builds and runs the server, so integration tests
//! start exactly what production runs, on port 0.

pub mod api;
pub mod audit;
pub mod auth;
pub mod calls;
pub mod config;
pub mod demo;
pub mod domain;
pub mod http;
pub mod journal;
pub mod notes;
pub mod outbox;
pub mod pause;
pub mod scheduling;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod tls;
pub mod web_client;
