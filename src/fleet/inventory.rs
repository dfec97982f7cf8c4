//! Ansible inventories: static INI, static YAML, and the JSON of
//! `ansible-inventory --list` (a file, or an executable inventory script run
//! with `--list`), with `host_vars/` and `group_vars/` beside the inventory.
//!
//! What vigil takes from them is what OpenSSH needs to reach a host the way the
//! administrator's Ansible does (`ansible_host`, `ansible_port`, `ansible_user`,
//! `ansible_ssh_private_key_file`, `ansible_ssh_common_args`), whether to use
//! `sudo -n` (`ansible_become`), and two variables of its own: `vigil_root`
//! (audit a mounted image or a container's root on that host) and `vigil_path`
//! (where vigil is on that host). Variables merge as Ansible merges them: the
//! `all` group first, then groups from parent to child, then the host; values
//! from `group_vars/` and `host_vars/` files over those in the inventory at the
//! same level. Vault-encrypted values are not decrypted: each is named in
//! [`Inventory::unsupported`] and treated as unset.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

/// Variables of a host or group.
pub type Vars = BTreeMap<String, Value>;

/// Why an inventory could not be read. Each says which file (and line) and what to do.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The file could not be read.
    #[error("cannot read the inventory {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line that is not what the format allows.
    #[error("{path}:{line}: {msg}")]
    Syntax {
        /// The file.
        path: String,
        /// The line (1-based; 0 when the parser could not say).
        line: usize,
        /// What is wrong, and what would be right.
        msg: String,
    },
    /// A structure the format does not allow, or a variable vigil cannot use.
    #[error("{path}: {msg}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// An inventory script that failed, hung or printed something unusable.
    #[error("the inventory script {path} {msg}")]
    Script {
        /// The script.
        path: String,
        /// What happened.
        msg: String,
    },
    /// A `--limit` pattern that matches nothing or does not parse.
    #[error("{0}")]
    Pattern(String),
}

/// A group: its own hosts, its child groups, its variables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// Hosts named in the group itself.
    pub hosts: BTreeSet<String>,
    /// Child groups (their hosts are this group's too).
    pub children: BTreeSet<String>,
    /// The group's variables.
    pub vars: Vars,
}

/// A parsed inventory.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Where it was read from (its directory holds `host_vars/` and `group_vars/`).
    pub source: PathBuf,
    /// Every host, in the order the inventory first names it.
    hosts: Vec<String>,
    host_vars: BTreeMap<String, Vars>,
    groups: BTreeMap<String, Group>,
    /// Values vigil does not read (vault-encrypted), by name: `web1: ansible_become_password`.
    pub unsupported: Vec<String>,
}

/// How vigil reaches one host, resolved from its variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The inventory's name for the host.
    pub name: String,
    /// What `ssh` connects to (`ansible_host`, else the name).
    pub address: String,
    /// `ansible_port` (else ssh's own configuration decides).
    pub port: Option<u16>,
    /// `ansible_user` (else ssh's own configuration decides).
    pub user: Option<String>,
    /// `ansible_ssh_private_key_file`, `~/` expanded.
    pub key_file: Option<PathBuf>,
    /// `ansible_ssh_common_args`, split as a shell would.
    pub ssh_args: Vec<String>,
    /// `ansible_become`: run vigil through `sudo -n` (never a password prompt).
    pub become_root: bool,
    /// `vigil_root`: the remote `--root`.
    pub root: Option<String>,
    /// `vigil_path`: vigil's path on the host.
    pub vigil_path: Option<String>,
}

/// Largest inventory file or script output read (bytes).
const MAX_BYTES: u64 = 64 << 20;
/// How long an inventory script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

#[expect(clippy::disallowed_methods, reason = "the administrator's own inventory, named on the command line")]
fn read_text(path: &Path) -> Result<String, InventoryError> {
    let io = |source| InventoryError::Io { path: path.display().to_string(), source };
    let md = std::fs::metadata(path).map_err(io)?;
    if !md.is_file() {
        return Err(InventoryError::Format {
            path: path.display().to_string(),
            msg: "is not a regular file (name an INI, YAML or JSON inventory, or an executable inventory script)"
                .into(),
        });
    }
    if md.len() > MAX_BYTES {
        return Err(InventoryError::Format {
            path: path.display().to_string(),
            msg: format!("is {} bytes, over the {} MiB limit", md.len(), MAX_BYTES >> 20),
        });
    }
    std::fs::read_to_string(path).map_err(io)
}

impl Inventory {
    /// Read the inventory at `path`: an executable file is an inventory script
    /// (run with `--list`), else JSON, YAML or INI by content.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let shown = path.display().to_string();
        let md = std::fs::metadata(path).map_err(|source| InventoryError::Io { path: shown.clone(), source })?;
        let executable = std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o111 != 0;
        let mut inv = if md.is_file() && executable {
            let out = run_script(path)?;
            Inventory::from_json(&out, &shown)?
        } else {
            let text = read_text(path)?;
            Inventory::parse(&text, &shown)?
        };
        inv.source = path.to_path_buf();
        if let Some(dir) = path.parent() {
            inv.read_var_dirs(dir)?;
        }
        Ok(inv)
    }

    /// Parse inventory text by its content: JSON (`{`), YAML (a mapping), else INI.
    pub fn parse(text: &str, path: &str) -> Result<Inventory, InventoryError> {
        let head = text.trim_start();
        if head.starts_with('{') {
            return Inventory::from_json(text, path);
        }
        if looks_like_yaml(text) {
            return Inventory::from_yaml(text, path);
        }
        Inventory::from_ini(text, path)
    }

    fn add_host(&mut self, name: &str) {
        if !self.host_vars.contains_key(name) {
            self.hosts.push(name.to_string());
            self.host_vars.insert(name.to_string(), Vars::new());
        }
    }

    fn group(&mut self, name: &str) -> &mut Group {
        self.groups.entry(name.to_string()).or_default()
    }

    /// Record a value, or name it as unsupported when it is vault-encrypted.
    fn set_var(&mut self, owner: Owner, key: &str, value: Value) {
        if is_vault(&value) {
            self.unsupported
                .push(format!("{}: {key} is vault-encrypted (not supported: the value is ignored)", owner.label()));
            return;
        }
        match owner {
            Owner::Host(h) => {
                self.add_host(h);
                if let Some(v) = self.host_vars.get_mut(h) {
                    v.insert(key.to_string(), value);
                }
            }
            Owner::Group(g) => {
                self.group(g).vars.insert(key.to_string(), value);
            }
        }
    }

    /// Static INI, as Ansible reads it.
    pub fn from_ini(text: &str, path: &str) -> Result<Inventory, InventoryError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Section {
            Hosts,
            Vars,
            Children,
        }
        let mut inv = Inventory::default();
        let mut group = "ungrouped".to_string();
        let mut section = Section::Hosts;
        let err = |line: usize, msg: String| InventoryError::Syntax { path: path.to_string(), line, msg };
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let Some(inner) = rest.split(']').next().filter(|_| rest.contains(']')) else {
                    return Err(err(n, format!("`{line}` is not a section header: it needs a closing `]`")));
                };
                let (name, kind) = match inner.split_once(':') {
                    None => (inner, Section::Hosts),
                    Some((g, "vars")) => (g, Section::Vars),
                    Some((g, "children")) => (g, Section::Children),
                    Some((_, other)) => {
                        return Err(err(
                            n,
                            format!("unknown section kind `:{other}` (Ansible knows :vars and :children)"),
                        ));
                    }
                };
                check_group_name(name).map_err(|m| err(n, m))?;
                group = name.to_string();
                section = kind;
                inv.group(&group);
                continue;
            }
            match section {
                Section::Vars => {
                    let Some((k, v)) = line.split_once('=') else {
                        return Err(err(n, format!("`{line}` in [{group}:vars] is not `name=value`")));
                    };
                    let value = ini_value(v.trim());
                    inv.set_var(Owner::Group(&group), k.trim(), value);
                }
                Section::Children => {
                    check_group_name(line).map_err(|m| err(n, m))?;
                    inv.group(line);
                    inv.group(&group).children.insert(line.to_string());
                }
                Section::Hosts => {
                    let words = shell_words(line).map_err(|m| err(n, m))?;
                    let Some((first, rest)) = words.split_first() else { continue };
                    let (pattern, port) = split_port(first);
                    let names = expand_ranges(pattern).map_err(|m| err(n, m))?;
                    let mut vars = Vec::new();
                    for w in rest {
                        let Some((k, v)) = w.split_once('=') else {
                            return Err(err(n, format!("`{w}` after the host name is not `name=value`")));
                        };
                        vars.push((k.to_string(), ini_value(v)));
                    }
                    for h in names {
                        inv.add_host(&h);
                        inv.group(&group).hosts.insert(h.clone());
                        if let Some(p) = port {
                            inv.set_var(Owner::Host(&h), "ansible_port", Value::from(p));
                        }
                        for (k, v) in &vars {
                            inv.set_var(Owner::Host(&h), k, v.clone());
                        }
                    }
                }
            }
        }
        inv.finish();
        Ok(inv)
    }

    /// Static YAML: top-level groups (usually `all`), each with `hosts`, `vars` and `children`.
    pub fn from_yaml(text: &str, path: &str) -> Result<Inventory, InventoryError> {
        let doc = load_yaml(text, path)?;
        let fmt = |msg: String| InventoryError::Format { path: path.to_string(), msg };
        let mut inv = Inventory::default();
        match doc {
            Yaml::Hash(m) => {
                for (k, v) in &m {
                    let name = yaml_key(k).ok_or_else(|| fmt("a top-level key is not a group name".into()))?;
                    inv.yaml_group(&name, v, path, 0)?;
                }
            }
            Yaml::Null => {}
            _ => return Err(fmt("the top level must be a mapping of groups (`all:`)".into())),
        }
        inv.finish();
        Ok(inv)
    }

    fn yaml_group(&mut self, name: &str, v: &Yaml, path: &str, depth: usize) -> Result<(), InventoryError> {
        use Yaml as Y;
        let fmt = |msg: String| InventoryError::Format { path: path.to_string(), msg };
        if depth > 64 {
            return Err(fmt(format!("group {name}: children nested more than 64 deep")));
        }
        check_group_name(name).map_err(fmt)?;
        self.group(name);
        let m = match v {
            Y::Null => return Ok(()),
            Y::Hash(m) => m,
            _ => return Err(fmt(format!("group {name}: expected `hosts`, `vars` or `children`"))),
        };
        for (k, v) in m {
            match yaml_key(k).as_deref() {
                Some("hosts") => match v {
                    Y::Null => {}
                    Y::Hash(hosts) => {
                        for (h, hv) in hosts {
                            let pattern =
                                yaml_key(h).ok_or_else(|| fmt(format!("group {name}: a host name is not text")))?;
                            let (pattern, port) = split_port(&pattern);
                            for host in expand_ranges(pattern).map_err(|m| fmt(format!("group {name}: {m}")))? {
                                self.add_host(&host);
                                self.group(name).hosts.insert(host.clone());
                                if let Some(p) = port {
                                    self.set_var(Owner::Host(&host), "ansible_port", Value::from(p));
                                }
                                for (key, val) in yaml_vars(hv, &format!("host {host}"), path)? {
                                    self.set_var(Owner::Host(&host), &key, val);
                                }
                            }
                        }
                    }
                    _ => return Err(fmt(format!("group {name}: `hosts` must be a mapping of host names"))),
                },
                Some("vars") => {
                    for (key, val) in yaml_vars(v, &format!("group {name}"), path)? {
                        self.set_var(Owner::Group(name), &key, val);
                    }
                }
                Some("children") => match v {
                    Y::Null => {}
                    Y::Hash(children) => {
                        for (c, cv) in children {
                            let child =
                                yaml_key(c).ok_or_else(|| fmt(format!("group {name}: a child is not a name")))?;
                            self.yaml_group(&child, cv, path, depth + 1)?;
                            self.group(name).children.insert(child);
                        }
                    }
                    _ => return Err(fmt(format!("group {name}: `children` must be a mapping of groups"))),
                },
                Some(other) => {
                    return Err(fmt(format!("group {name}: unknown key `{other}` (expected hosts, vars or children)")));
                }
                None => return Err(fmt(format!("group {name}: a key is not text"))),
            }
        }
        Ok(())
    }

    /// The JSON of `ansible-inventory --list` or of an inventory script's `--list`.
    pub fn from_json(text: &str, path: &str) -> Result<Inventory, InventoryError> {
        let fmt = |msg: String| InventoryError::Format { path: path.to_string(), msg };
        let doc: Value = serde_json::from_str(text).map_err(|e| fmt(format!("not valid JSON: {e}")))?;
        let Value::Object(top) = doc else {
            return Err(fmt("the top level must be an object of groups".into()));
        };
        let mut inv = Inventory::default();
        // Groups in the order `all`'s children name them (depth first), then any others:
        // the host order Ansible shows (a JSON object's own key order is not kept).
        let mut order: Vec<&String> = Vec::new();
        let mut stack: Vec<&String> = top.get_key_value("all").map(|(k, _)| vec![k]).unwrap_or_default();
        while let Some(g) = stack.pop() {
            if order.contains(&g) {
                continue;
            }
            order.push(g);
            let children = top.get(g.as_str()).and_then(|v| v.get("children")).and_then(Value::as_array);
            for c in children.into_iter().flatten().rev() {
                if let Some((k, _)) = c.as_str().and_then(|c| top.get_key_value(c)) {
                    stack.push(k);
                }
            }
        }
        for k in top.keys() {
            if !order.contains(&k) {
                order.push(k);
            }
        }
        for name in order {
            let g = &top[name.as_str()];
            if name == "_meta" {
                continue;
            }
            check_group_name(name).map_err(fmt)?;
            inv.group(name);
            let (hosts, children, vars) = match g {
                Value::Array(hosts) => (Some(hosts), None, None),
                Value::Object(o) => (
                    o.get("hosts").and_then(Value::as_array),
                    o.get("children").and_then(Value::as_array),
                    o.get("vars").and_then(Value::as_object),
                ),
                _ => return Err(fmt(format!("group {name}: expected a list of hosts or an object"))),
            };
            for h in hosts.into_iter().flatten() {
                let h = h.as_str().ok_or_else(|| fmt(format!("group {name}: a host is not a string")))?;
                inv.add_host(h);
                inv.group(name).hosts.insert(h.to_string());
            }
            for c in children.into_iter().flatten() {
                let c = c.as_str().ok_or_else(|| fmt(format!("group {name}: a child is not a string")))?;
                inv.group(c);
                inv.group(name).children.insert(c.to_string());
            }
            for (k, v) in vars.into_iter().flatten() {
                inv.set_var(Owner::Group(name), k, v.clone());
            }
        }
        if let Some(hv) = top.get("_meta").and_then(|m| m.get("hostvars")).and_then(Value::as_object) {
            for (h, vars) in hv {
                let Value::Object(vars) = vars else { continue };
                for (k, v) in vars {
                    inv.set_var(Owner::Host(h), k, v.clone());
                }
            }
        }
        inv.finish();
        Ok(inv)
    }

    /// Every host is in `all`; a host in no other group is in `ungrouped`.
    fn finish(&mut self) {
        let top: BTreeSet<String> = self.groups.keys().filter(|g| *g != "all").cloned().collect();
        let mut children_anywhere = BTreeSet::new();
        for g in self.groups.values() {
            children_anywhere.extend(g.children.iter().cloned());
        }
        let grouped: BTreeSet<String> = self
            .groups
            .iter()
            .filter(|(n, _)| *n != "all" && *n != "ungrouped")
            .flat_map(|(_, g)| g.hosts.clone())
            .collect();
        let ungrouped: Vec<String> = self.hosts.iter().filter(|h| !grouped.contains(*h)).cloned().collect();
        let ug = self.group("ungrouped");
        ug.hosts.extend(ungrouped);
        let all_hosts: Vec<String> = self.hosts.clone();
        let all = self.group("all");
        all.hosts.extend(all_hosts);
        for g in top.into_iter().chain(["ungrouped".to_string()]) {
            if !children_anywhere.contains(&g) {
                self.group("all").children.insert(g);
            }
        }
        self.group("all").children.remove("all");
    }

    /// Merge `group_vars/` and `host_vars/` found in `dir`.
    fn read_var_dirs(&mut self, dir: &Path) -> Result<(), InventoryError> {
        for (kind, names) in
            [("group_vars", self.groups.keys().cloned().collect::<Vec<_>>()), ("host_vars", self.hosts.clone())]
        {
            let base = dir.join(kind);
            if !base.is_dir() {
                continue;
            }
            for name in names {
                for file in var_files(&base, &name) {
                    let text = read_text(&file)?;
                    let shown = file.display().to_string();
                    if text.trim_start().starts_with("$ANSIBLE_VAULT;") {
                        self.unsupported
                            .push(format!("{shown} is vault-encrypted (not supported: its values are ignored)"));
                        continue;
                    }
                    let vars = parse_var_file(&text, &shown)?;
                    let owner = if kind == "host_vars" { Owner::Host(&name) } else { Owner::Group(&name) };
                    for (k, v) in vars {
                        // Files beside the inventory override its inline values at the same level.
                        self.set_var(owner, &k, v);
                    }
                }
            }
        }
        Ok(())
    }

    /// Host names, in inventory order.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The groups, by name.
    pub fn groups(&self) -> &BTreeMap<String, Group> {
        &self.groups
    }

    /// Hosts of `group` and of its descendants, in inventory order.
    pub fn group_hosts(&self, group: &str) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut members = BTreeSet::new();
        let mut stack = vec![group.to_string()];
        while let Some(g) = stack.pop() {
            if !seen.insert(g.clone()) {
                continue;
            }
            if let Some(gr) = self.groups.get(&g) {
                members.extend(gr.hosts.iter().cloned());
                stack.extend(gr.children.iter().cloned());
            }
        }
        self.hosts.iter().filter(|h| members.contains(*h)).cloned().collect()
    }

    /// Depth of each group below `all` (longest path), for merging variables parent first.
    fn depths(&self) -> BTreeMap<String, usize> {
        let mut depth: BTreeMap<String, usize> = BTreeMap::new();
        depth.insert("all".into(), 0);
        // Relax edges; cycles are cut by the bound on rounds.
        for _ in 0..=self.groups.len() {
            let mut changed = false;
            for (name, g) in &self.groups {
                let Some(&d) = depth.get(name) else { continue };
                for c in &g.children {
                    if depth.get(c).is_none_or(|&cd| cd < d + 1) && d < self.groups.len() {
                        depth.insert(c.clone(), d + 1);
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        depth
    }

    /// The host's variables, merged as Ansible merges them.
    pub fn vars(&self, host: &str) -> Vars {
        let depth = self.depths();
        let mut groups: Vec<(&String, usize)> = self
            .groups
            .keys()
            .filter(|g| self.group_hosts(g).iter().any(|h| h == host))
            .map(|g| (g, depth.get(g).copied().unwrap_or(1)))
            .collect();
        groups.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
        let mut out = Vars::new();
        for (g, _) in groups {
            if let Some(gr) = self.groups.get(g) {
                out.extend(gr.vars.clone());
            }
        }
        if let Some(hv) = self.host_vars.get(host) {
            out.extend(hv.clone());
        }
        out
    }

    /// How to reach `host`, from its merged variables.
    pub fn target(&self, host: &str) -> Result<Target, InventoryError> {
        let v = self.vars(host);
        let bad = |k: &str, why: &str| InventoryError::Format {
            path: self.source.display().to_string(),
            msg: format!("host {host}: {k} {why}"),
        };
        let text = |k: &str| -> Option<String> {
            match v.get(k) {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            }
        };
        let port = match v.get("ansible_port").or_else(|| v.get("ansible_ssh_port")) {
            None | Some(Value::Null) => None,
            Some(p) => {
                let s = match p {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                Some(
                    s.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| bad("ansible_port", "is not a port number (1-65535)"))?,
                )
            }
        };
        let ssh_args = match text("ansible_ssh_common_args") {
            Some(a) => shell_words(&a).map_err(|m| bad("ansible_ssh_common_args", &m))?,
            None => Vec::new(),
        };
        let become_root = match v.get("ansible_become") {
            None | Some(Value::Null) => false,
            Some(b) => truthy(b).ok_or_else(|| bad("ansible_become", "is not a boolean (yes/no, true/false)"))?,
        };
        let address = text("ansible_host").or_else(|| text("ansible_ssh_host")).unwrap_or_else(|| host.to_string());
        if address.starts_with('-') {
            return Err(bad("ansible_host", "starts with `-` (it would be read as an ssh option)"));
        }
        let user = text("ansible_user").or_else(|| text("ansible_ssh_user"));
        if user.as_deref().is_some_and(|u| u.starts_with('-')) {
            return Err(bad("ansible_user", "starts with `-`"));
        }
        Ok(Target {
            name: host.to_string(),
            address,
            port,
            user,
            key_file: text("ansible_ssh_private_key_file")
                .or_else(|| text("ansible_private_key_file"))
                .map(|k| expand_home(&k)),
            ssh_args,
            become_root,
            root: text("vigil_root"),
            vigil_path: text("vigil_path"),
        })
    }
}

#[derive(Clone, Copy)]
enum Owner<'a> {
    Host(&'a str),
    Group(&'a str),
}

impl Owner<'_> {
    fn label(&self) -> String {
        match self {
            Owner::Host(h) => format!("host {h}"),
            Owner::Group(g) => format!("group {g}"),
        }
    }
}

fn check_group_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.') {
        return Err(format!("`{name}` is not a group name (letters, digits, `_`, `-` and `.`)"));
    }
    Ok(())
}

fn looks_like_yaml(text: &str) -> bool {
    let first = text.lines().map(str::trim_end).find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    match first {
        Some(l) => l == "---" || (!l.starts_with('[') && l.ends_with(':') && !l.contains(' ') && !l.contains('=')),
        None => false,
    }
}

/// A value from an INI file: quotes removed; `true`/`false` and integers typed as Ansible does.
fn ini_value(v: &str) -> Value {
    let v = v.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return Value::from(&v[1..v.len() - 1]);
        }
    }
    match v {
        "True" | "true" => Value::Bool(true),
        "False" | "false" => Value::Bool(false),
        _ => v.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(v)),
    }
}

fn truthy(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "yes" | "y" | "true" | "on" | "1" => Some(true),
            "no" | "n" | "false" | "off" | "0" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn is_vault(v: &Value) -> bool {
    match v {
        Value::String(s) => s.trim_start().starts_with("$ANSIBLE_VAULT;"),
        Value::Object(o) => o.contains_key("__ansible_vault"),
        _ => false,
    }
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// `host:port` (not an IPv6 address, not inside a range).
fn split_port(s: &str) -> (&str, Option<u16>) {
    if s.matches(':').count() == 1
        || (s.contains(']') && s.rsplit_once(']').is_some_and(|(_, tail)| tail.contains(':')))
    {
        if let Some((h, p)) = s.rsplit_once(':') {
            if !h.is_empty() && !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && !h.ends_with('[') {
                // `web[01:03]` has its colon inside the brackets: not a port.
                if h.matches('[').count() == h.matches(']').count() {
                    if let Ok(port) = p.parse() {
                        return (h, Some(port));
                    }
                }
            }
        }
    }
    (s, None)
}

/// Ansible's host ranges: `web[01:20].example.org`, `db-[a:c]`, `[1:10:2]`; several multiply.
pub fn expand_ranges(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('[') else { return Ok(vec![pattern.to_string()]) };
    let close = pattern[open..].find(']').map(|c| open + c).ok_or_else(|| format!("`{pattern}`: `[` without `]`"))?;
    let (head, inner, tail) = (&pattern[..open], &pattern[open + 1..close], &pattern[close + 1..]);
    let parts: Vec<&str> = inner.split(':').collect();
    let bad = || format!("`{pattern}`: `[{inner}]` is not a range like [01:20], [a:f] or [1:10:2]");
    let (beg, end, step) = match parts.as_slice() {
        [b, e] => (*b, *e, 1usize),
        [b, e, s] => (*b, *e, s.parse::<usize>().ok().filter(|s| *s > 0).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    let mut items = Vec::new();
    if let (Ok(b), Ok(e)) = (beg.parse::<u64>(), end.parse::<u64>()) {
        if b > e || e - b > 100_000 {
            return Err(format!("`{pattern}`: the range [{inner}] is empty or over 100,000 hosts"));
        }
        let width = if beg.starts_with('0') && beg.len() > 1 { beg.len() } else { 0 };
        let mut i = b;
        while i <= e {
            items.push(format!("{i:0width$}"));
            i += step as u64;
        }
    } else {
        let (b, e) = (single_letter(beg).ok_or_else(bad)?, single_letter(end).ok_or_else(bad)?);
        if b > e {
            return Err(bad());
        }
        items.extend((b..=e).step_by(step).map(|c| c.to_string()));
    }
    // Ansible's order: the first range varies slowest.
    let rests = expand_ranges(tail)?;
    let mut out = Vec::with_capacity(items.len() * rests.len());
    for it in &items {
        for rest in &rests {
            out.push(format!("{head}{it}{rest}"));
        }
    }
    Ok(out)
}

fn single_letter(s: &str) -> Option<char> {
    let mut c = s.chars();
    match (c.next(), c.next()) {
        (Some(ch), None) if ch.is_ascii_alphabetic() => Some(ch),
        _ => None,
    }
}

/// Split as a POSIX shell would (quotes and backslashes; no expansion).
pub fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err(format!("unclosed `'` in `{s}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => cur.push(ch),
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => return Err(format!("unclosed `\"` in `{s}`")),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err(format!("unclosed `\"` in `{s}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(ch) = chars.next() {
                    cur.push(ch);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn yaml_key(k: &Yaml) -> Option<String> {
    match k {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(n) => Some(n.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A YAML value as JSON; a vault-encrypted value (`!vault |` followed by `$ANSIBLE_VAULT;…`)
/// becomes a vault marker.
fn yaml_to_json(v: &Yaml) -> Value {
    match v {
        Yaml::Null | Yaml::BadValue | Yaml::Alias(_) => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(r) => r.parse::<f64>().ok().map(Value::from).unwrap_or_else(|| Value::from(r.as_str())),
        Yaml::String(s) if s.trim_start().starts_with("$ANSIBLE_VAULT;") => {
            serde_json::json!({ "__ansible_vault": "" })
        }
        Yaml::String(s) => Value::from(s.as_str()),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(m) => Value::Object(m.iter().filter_map(|(k, v)| Some((yaml_key(k)?, yaml_to_json(v)))).collect()),
    }
}

fn yaml_vars(v: &Yaml, owner: &str, path: &str) -> Result<Vec<(String, Value)>, InventoryError> {
    match v {
        Yaml::Null => Ok(Vec::new()),
        Yaml::Hash(m) => Ok(m.iter().filter_map(|(k, v)| Some((yaml_key(k)?, yaml_to_json(v)))).collect()),
        _ => {
            Err(InventoryError::Format { path: path.to_string(), msg: format!("{owner}: variables must be a mapping") })
        }
    }
}

/// Variables of one `group_vars`/`host_vars` file: YAML (or JSON, which YAML reads).
fn parse_var_file(text: &str, path: &str) -> Result<Vec<(String, Value)>, InventoryError> {
    let doc = load_yaml(text, path)?;
    yaml_vars(&doc, "the file", path)
}

/// The first document of a YAML text (`Null` when empty). yaml-rust2 is Rust throughout: the
/// portable binary carries no copy of libyaml (lintian would flag it in the .deb).
fn load_yaml(text: &str, path: &str) -> Result<Yaml, InventoryError> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| InventoryError::Syntax {
        path: path.to_string(),
        line: e.marker().line(),
        msg: format!("not valid YAML: {e}"),
    })?;
    Ok(docs.into_iter().next().unwrap_or(Yaml::Null))
}

/// `BASE/NAME`, `BASE/NAME.yml|.yaml|.json`, or every such file in the directory `BASE/NAME/`.
fn var_files(base: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for ext in ["", ".yml", ".yaml", ".json"] {
        let p = base.join(format!("{name}{ext}"));
        if p.is_file() {
            out.push(p);
        }
    }
    let d = base.join(name);
    if d.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yml" || x == "yaml" || x == "json"))
            .collect();
        files.sort();
        out.extend(files);
    }
    out
}

/// Run an inventory script with `--list` (as the administrator, with their environment:
/// it is their program), capped in time and output.
fn run_script(path: &Path) -> Result<String, InventoryError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let err = |msg: String| InventoryError::Script { path: shown.clone(), msg };
    let mut child = Command::new(path)
        .arg("--list")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("could not be run: {e}")))?;
    let mut stdout = child.stdout.take().ok_or_else(|| err("has no output pipe".into()))?;
    let mut stderr = child.stderr.take().ok_or_else(|| err("has no error pipe".into()))?;
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let r = (&mut stdout).take(MAX_BYTES + 1).read_to_end(&mut buf);
        r.map(|_| buf)
    });
    let errs = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut stderr).take(64 << 10).read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > SCRIPT_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err(format!("did not finish `--list` within {} s", SCRIPT_TIMEOUT.as_secs())));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(err(format!("could not be waited for: {e}"))),
        }
    };
    let buf = out.join().map_err(|_| err("output reader failed".into()))?.map_err(|e| err(format!("output: {e}")))?;
    let stderr = String::from_utf8_lossy(&errs.join().unwrap_or_default()).trim().to_string();
    if !status.success() {
        let tail: String = stderr.lines().last().unwrap_or("").chars().take(300).collect();
        return Err(err(format!("`--list` failed ({status}): {tail}")));
    }
    if buf.len() as u64 > MAX_BYTES {
        return Err(err(format!("printed over {} MiB", MAX_BYTES >> 20)));
    }
    String::from_utf8(buf).map_err(|_| err("printed output that is not UTF-8".into()))
}

#[cfg(test)]
#[path = "inventory_tests.rs"]
mod tests;
