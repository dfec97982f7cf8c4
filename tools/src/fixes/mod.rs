//! The fixes: the three mutating tools a review can offer in a conversation
//! (`firewall_deny_port`, `lock_account`, `verify_backup_restore`), for
//! patterns 5, 7 and 4 of the seven mistakes (`docs/architecture.md`).
//!
//! What makes a change safe to offer is shared with the WordPress updater and
//! lives elsewhere: the commands a plan shows and runs in [`crate::change`], and
//! the rule that only the plan the administrator approved runs in the registry
//! ([`crate::registry::Registry::run_approved`]).

pub mod deny_port;
pub mod lock_account;
pub mod restore;
mod restore_db;

pub use deny_port::FirewallDenyPort;
pub use lock_account::LockAccount;
pub use restore::VerifyBackupRestore;
