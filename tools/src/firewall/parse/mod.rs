//! Parsers from what each firewall prints or stores into [`Table`]s:
//! `iptables-save` text (also ufw's `user.rules` and `rules.v4`), `nft -j list
//! ruleset` JSON, nftables configuration text (`/etc/nftables.conf`), ufw's
//! `status verbose` and its `### tuple ###` lines, and firewalld's
//! `--list-all`. Every parser is total: what it does not understand becomes
//! an `extra` condition (so the rule never counts as applying), never a panic.

use std::collections::HashMap;

use serde_json::Value;

use super::model::{Chain, Family, Rule, Table, Target, is_any_addr, parse_ports};

mod firewalld;
mod iptables;
mod nft_json;
mod nft_text;
mod ufw;

pub use firewalld::*;
pub use iptables::*;
pub use nft_json::*;
pub use nft_text::*;
pub use ufw::*;
