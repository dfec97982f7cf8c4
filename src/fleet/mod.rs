//! Many servers at once, from the inventory administrators already keep.
//!
//! A hosting business rarely has one server, and its administrators already
//! describe their servers in an Ansible inventory and reach each one with
//! OpenSSH. The fleet rides on exactly that: [`inventory`] reads Ansible's
//! static INI and YAML formats and the JSON of `ansible-inventory --list` (a
//! file or an executable inventory script), with `host_vars/` and
//! `group_vars/` beside it, and [`pattern`] selects hosts with Ansible's
//! `--limit` patterns. Each selected host becomes a [`inventory::Target`]: the
//! address, port, user, key and SSH arguments the system `ssh` client is given,
//! whether to use `sudo -n`, and the remote `--root` to audit.
//!
//! See `docs/architecture.md` ("The fleet") for how a fleet review runs.

pub mod agent;
pub mod digest;
pub mod history;
pub mod inventory;
pub mod outcome;
pub mod pattern;
pub mod proto;
pub mod remote;
pub mod remote_tools;
pub mod report;
pub mod run;
pub mod scheduled;
pub mod ssh;
pub mod status;

pub use inventory::{Inventory, InventoryError, Target};
