//! The jobs to judge: the configured `[[backups]]` and those discovered in
//! restic/borg repositories and archive directories under the usual backup roots.

use super::*;

pub(super) fn subject_of(name: &str) -> String {
    format!("backup:{name}")
}

/// "8 months", "3 days", "20 hours".
pub fn human_age(secs: i64) -> String {
    let h = secs / 3600;
    match h {
        _ if h < 48 => format!("{h} hours"),
        _ if h < 24 * 60 => format!("{} days", h / 24),
        _ => format!("{} months ({} days)", h / 24 / 30, h / 24),
    }
}

/// The literal directory before the first wildcard of a glob.
pub(super) fn glob_dir(glob: &str) -> String {
    let cut = glob.find(['*', '?', '[']).unwrap_or(glob.len());
    let lit = &glob[..cut];
    if cut == glob.len() {
        return lit.trim_end_matches('/').to_string();
    }
    match lit.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => lit[..i].to_string(),
    }
}

pub(super) fn parent(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => path[..i].to_string(),
    }
}

pub(super) fn item_of(host: &Host, path: &str) -> Option<Item> {
    let m = host.metadata(path).ok()?;
    Some(Item { path: path.to_string(), mtime: m.mtime(), size: m.is_file().then_some(m.len()) })
}

/// Items of a repository: restic snapshots, or borg transactions (index.N files).
pub(super) fn repo_items(host: &Host, dir: &str, kind: RepoKind) -> Vec<Item> {
    match kind {
        RepoKind::Restic => host
            .read_dir(&format!("{dir}/snapshots"))
            .unwrap_or_default()
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .filter_map(|n| item_of(host, &format!("{dir}/snapshots/{n}")))
            .map(|i| Item { size: None, ..i })
            .collect(),
        RepoKind::Borg => host
            .read_dir(dir)
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.strip_prefix("index.").is_some_and(|r| r.bytes().all(|b| b.is_ascii_digit())))
            .filter_map(|n| item_of(host, &format!("{dir}/{n}")))
            .map(|i| Item { size: None, ..i })
            .collect(),
    }
}

pub(super) fn kind_of(k: RepoKind) -> JobKind {
    match k {
        RepoKind::Restic => JobKind::Restic,
        RepoKind::Borg => JobKind::Borg,
    }
}

/// Expand a configured job.
pub(super) fn configured(host: &Host, cfg: &BackupJob) -> Job {
    let mut job = Job {
        cfg: cfg.clone(),
        source: Source::Config,
        kind: JobKind::Files,
        items: Vec::new(),
        dirs: vec![glob_dir(&cfg.path)],
        repo: None,
        max_age_inferred: false,
    };
    if !cfg.path.starts_with('/') {
        return job;
    }
    let matches = host.glob(&cfg.path);
    if let [only] = matches.as_slice() {
        if let Some(k) = discover::repo_kind(host, only) {
            job.kind = kind_of(k);
            job.items = repo_items(host, only, k);
            job.dirs = vec![only.clone()];
            job.repo = Some(only.clone());
            return job;
        }
    }
    let mut dirs: Vec<String> = Vec::new();
    for p in matches {
        if let Some(i) = item_of(host, &p) {
            let d = parent(&p);
            if !dirs.contains(&d) {
                dirs.push(d);
            }
            job.items.push(i);
        }
    }
    if !dirs.is_empty() {
        job.dirs = dirs;
    }
    job
}

/// Discover repositories and archive directories under the backup roots.
pub(super) fn discovered(host: &Host, taken: &HashSet<String>, truncated: &mut bool) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut budget = DISCOVERY_BUDGET;
    let mut roots: Vec<String> = Vec::new();
    for r in DISCOVERY_ROOTS {
        for p in if r.contains('*') { host.glob(r) } else { vec![r.to_string()] } {
            if host.metadata(&p).map(|m| m.is_dir()).unwrap_or(false) && !roots.contains(&p) {
                roots.push(p);
            }
        }
    }
    let mut stack: Vec<(String, usize)> = roots.into_iter().rev().map(|r| (r, 0)).collect();
    let mut seen = HashSet::new();
    while let Some((dir, depth)) = stack.pop() {
        // The same directory can be reached through two roots (a symlink); follow it once.
        let key = host.metadata(&dir).map(|m| (m.dev(), m.ino())).unwrap_or((0, 0));
        if !seen.insert(key) {
            continue;
        }
        if taken.contains(&dir) {
            continue;
        }
        if let Some(k) = discover::repo_kind(host, &dir) {
            let max = DISCOVERED_MAX_AGE;
            jobs.push(Job {
                cfg: discovered_cfg(&dir, max),
                source: Source::Discovered,
                kind: kind_of(k),
                items: repo_items(host, &dir, k),
                dirs: vec![dir.clone()],
                repo: Some(dir.clone()),
                max_age_inferred: true,
            });
            continue;
        }
        let names = host.read_dir(&dir).unwrap_or_default();
        if names.len() > budget {
            *truncated = true;
            continue;
        }
        budget -= names.len();
        let top_var_backups = dir == "/var/backups";
        let mut items = Vec::new();
        for n in names {
            if n.starts_with('.') || (top_var_backups && discover::is_distro_backup(&n)) {
                continue;
            }
            let p = format!("{dir}/{n}");
            if taken.contains(&p) {
                continue;
            }
            let Ok(m) = host.metadata(&p) else { continue };
            if m.is_dir() {
                if depth < 3 {
                    stack.push((p, depth + 1));
                }
            } else if m.is_file() && (top_var_backups || discover::looks_like_archive(&n)) {
                items.push(Item { path: p, mtime: m.mtime(), size: Some(m.len()) });
            }
        }
        if !items.is_empty() {
            jobs.push(Job {
                cfg: discovered_cfg(&dir, DISCOVERED_MAX_AGE),
                source: Source::Discovered,
                kind: JobKind::Files,
                items,
                dirs: vec![dir.clone()],
                repo: None,
                max_age_inferred: true,
            });
        }
    }
    jobs
}

pub(super) fn discovered_cfg(dir: &str, max_age_hours: u64) -> BackupJob {
    BackupJob {
        name: dir.to_string(),
        path: dir.to_string(),
        max_age_hours,
        min_size: None,
        log: None,
        offsite: None,
        offsite_log: None,
        password_file: None,
        max_members: None,
    }
}

/// `site-2026-11-26.tar.gz` and `site-2026-11-25.tar.gz` are one series: digits folded.
pub(super) fn series_key(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let mut out = String::new();
    let mut in_digits = false;
    for c in name.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    format!("{}/{out}", parent(path))
}
