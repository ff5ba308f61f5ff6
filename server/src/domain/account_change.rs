//! The life cycle of an account change that waits for a second administrator: pending, then
//! approved or rejected by another administrator, or expired unapproved (see
//! [`crate::auth::changes`]).

use serde::{Deserialize, Serialize};

use super::consultation::text_enum;

text_enum!(
    /// Where a proposed account change stands.
    Status {
        Pending => "pending",
        Approved => "approved",
        Rejected => "rejected",
        Expired => "expired",
    }
);
