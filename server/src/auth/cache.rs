//! A short-lived cache of authenticated sessions.
//!
//! Looking a session up costs a database round trip, and on these machines a round trip costs
//! more than the lookup; a caller making several requests a second pays it once per
//! [`TTL`]. Logout, revocation and role changes clear the entries of this node at once; another
//! node notices within [`TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{AccountId, Principal};

pub const TTL: Duration = Duration::from_secs(2);
/// Bound on entries; past it the cache starts over rather than grow.
const CAPACITY: usize = 50_000;

#[derive(Default)]
pub struct SessionCache {
    entries: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl SessionCache {
    /// The principal of a token hash, if it was looked up less than [`TTL`] ago.
    pub fn get(&self, token_hash: &str) -> Option<Principal> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(token_hash)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(p, _)| p.clone())
    }

    pub fn put(&self, token_hash: String, principal: Principal) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(token_hash, (principal, Instant::now()));
        }
    }

    pub fn forget_session(&self, session_id: i64) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (p, _)| p.session_id != session_id);
        }
    }

    pub fn forget_account(&self, account: AccountId) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, (p, _)| p.account_id != account);
        }
    }
}
