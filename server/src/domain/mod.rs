//! The domain: values parsed once at the edge and trusted inside, and the codes of failures.
//!
//! Nothing here touches the database or HTTP; the rules of availability and of a consultation's
//! life cycle live here so they can be tested without either.

pub mod account_change;
pub mod availability;
pub mod code;
pub mod consultation;
pub mod ids;
pub mod note;
pub mod text;
pub mod time;
