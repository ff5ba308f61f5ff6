//! The demo network: a realistic, deterministic Vietnamese telehealth network seeded into the
//! database by `telehealth demo`, so one command shows the whole platform.

pub mod network;
pub mod seed;
