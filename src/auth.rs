//! The API key: where it comes from, and the OS keyring behind `vigil auth`.
//!
//! Order: `ANTHROPIC_API_KEY`, then (for scheduled runs) the systemd
//! credential, `VIGIL_API_KEY_FILE` (cron) or a root-owned 0600 key file named
//! in the root-owned config, then the OS keyring. The keyring is the
//! desktop Secret Service when one answers, else the kernel's persistent
//! keyring (keyutils) on a headless server. The key is held in `secrecy` types,
//! never printed, logged, recorded or written to a plain file silently. Secrets
//! sit behind [`SecretStore`], with an in-memory store for tests.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use secrecy::{ExposeSecret, SecretString};

/// The keyring service name (`VIGIL_KEYRING_SERVICE` keeps several installs, or a test, apart).
pub fn service() -> String {
    std::env::var("VIGIL_KEYRING_SERVICE").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "vigil".into())
}
/// The keyring entry of the Anthropic API key.
pub const API_KEY_ENTRY: &str = "anthropic-api-key";
/// The systemd credential name the scheduled service loads the API key under
/// (`LoadCredential=`, read back from `$CREDENTIALS_DIRECTORY`).
pub const CREDENTIAL: &str = "anthropic-api-key";
/// The keyring entry of the Wordfence Intelligence API key (`vigil vulndb update`).
pub const WORDFENCE_KEY_ENTRY: &str = "wordfence-api-key";

/// Where secrets are stored.
pub trait SecretStore: Send + Sync {
    /// A human name of the backend ("Secret Service", "kernel keyring").
    fn backend(&self) -> String;
    /// Read a secret: `Ok(None)` when there is none.
    fn get(&self, name: &str) -> Result<Option<SecretString>>;
    /// Store a secret.
    fn set(&self, name: &str, value: &SecretString) -> Result<()>;
    /// Remove a secret: `Ok(false)` when there was none.
    fn delete(&self, name: &str) -> Result<bool>;
}

/// Secrets in memory, for tests.
#[derive(Default)]
pub struct MemoryStore(Mutex<HashMap<String, String>>);

impl SecretStore for MemoryStore {
    fn backend(&self) -> String {
        "memory".into()
    }
    fn get(&self, name: &str) -> Result<Option<SecretString>> {
        let m = self.0.lock().map_err(|_| anyhow::anyhow!("secret store lock poisoned"))?;
        Ok(m.get(name).map(|s| SecretString::from(s.clone())))
    }
    fn set(&self, name: &str, value: &SecretString) -> Result<()> {
        let mut m = self.0.lock().map_err(|_| anyhow::anyhow!("secret store lock poisoned"))?;
        m.insert(name.to_string(), value.expose_secret().to_string());
        Ok(())
    }
    fn delete(&self, name: &str) -> Result<bool> {
        let mut m = self.0.lock().map_err(|_| anyhow::anyhow!("secret store lock poisoned"))?;
        Ok(m.remove(name).is_some())
    }
}

/// Which OS keyring backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    SecretService,
    KernelKeyring,
}

/// The OS keyring: Secret Service when reachable, else the kernel keyring.
pub struct OsKeyring {
    backend: Backend,
}

impl OsKeyring {
    /// Pick the backend: `VIGIL_KEYRING=secret-service|kernel` forces one.
    pub fn new() -> Self {
        let forced = std::env::var("VIGIL_KEYRING").ok();
        let backend = match forced.as_deref() {
            Some("kernel") => Backend::KernelKeyring,
            Some("secret-service") => Backend::SecretService,
            _ if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() => Backend::SecretService,
            _ => Backend::KernelKeyring,
        };
        OsKeyring { backend }
    }

    fn entry(&self, name: &str) -> Result<keyring::Entry> {
        let cred: Box<keyring::credential::Credential> = match self.backend {
            Backend::SecretService => Box::new(
                keyring::secret_service::SsCredential::new_with_target(None, &service(), name).map_err(explain)?,
            ),
            Backend::KernelKeyring => Box::new(
                keyring::keyutils::KeyutilsCredential::new_with_target(None, &service(), name).map_err(explain)?,
            ),
        };
        Ok(keyring::Entry::new_with_credential(cred))
    }
}

impl Default for OsKeyring {
    fn default() -> Self {
        OsKeyring::new()
    }
}

fn explain(e: keyring::Error) -> anyhow::Error {
    let msg = e.to_string();
    let hint = match &e {
        keyring::Error::NoStorageAccess(_) => {
            "the keyring is locked or unreachable: unlock it (e.g. `gnome-keyring-daemon --unlock`), \
             or on a headless server use the kernel keyring inside a session (`keyctl session - vigil auth login`), \
             or set ANTHROPIC_API_KEY"
        }
        keyring::Error::PlatformFailure(_) if msg.contains("dbus") || msg.contains("D-Bus") => {
            "no D-Bus session for the Secret Service: run inside a desktop session, use \
             VIGIL_KEYRING=kernel (kernel keyring, headless servers), or set ANTHROPIC_API_KEY"
        }
        _ => "set ANTHROPIC_API_KEY instead, or see `vigil auth status`",
    };
    anyhow::anyhow!("keyring: {msg} ({hint})")
}

impl SecretStore for OsKeyring {
    fn backend(&self) -> String {
        match self.backend {
            Backend::SecretService => "Secret Service (desktop keyring)".into(),
            Backend::KernelKeyring => "kernel persistent keyring (keyutils)".into(),
        }
    }
    fn get(&self, name: &str) -> Result<Option<SecretString>> {
        match self.entry(name)?.get_password() {
            Ok(p) => Ok(Some(SecretString::from(p))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(explain(e)),
        }
    }
    fn set(&self, name: &str, value: &SecretString) -> Result<()> {
        match self.entry(name)?.set_password(value.expose_secret()) {
            Err(keyring::Error::NoEntry) if self.backend == Backend::KernelKeyring => Err(anyhow::anyhow!(
                "keyring: this process has no kernel session keyring to store the key in: run it inside one \
                 (`keyctl session - vigil auth login`, package keyutils), use a desktop keyring \
                 (VIGIL_KEYRING=secret-service), or for scheduled runs a root-owned 0600 key file \
                 (`vigil schedule install --key-file FILE`)"
            )),
            r => r.map_err(explain),
        }
    }
    fn delete(&self, name: &str) -> Result<bool> {
        match self.entry(name)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(explain(e)),
        }
    }
}

/// Where the key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The `ANTHROPIC_API_KEY` environment variable.
    Env,
    /// A root-owned key file for scheduled runs.
    File(String),
    /// The OS keyring.
    Keyring(String),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Env => f.write_str("the ANTHROPIC_API_KEY environment variable"),
            KeySource::File(p) => write!(f, "the key file {p}"),
            KeySource::Keyring(b) => write!(f, "the OS keyring ({b})"),
        }
    }
}

/// Read a key file, refusing one that others can read or that root does not own when we are root.
#[expect(
    clippy::disallowed_methods,
    reason = "the administrator's key file, checked to be private and root-owned first"
)]
pub fn read_key_file(path: &Path) -> Result<SecretString> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read the key file {}", path.display()))?;
    if meta.mode() & 0o077 != 0 {
        bail!("the key file {} is readable by others: chmod 600 {}", path.display(), path.display());
    }
    if crate::state::is_root() && meta.uid() != 0 {
        bail!("the key file {} is not owned by root: refusing it for a root run", path.display());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the key file {}", path.display()))?;
    let key = text.trim().to_string();
    if key.is_empty() {
        bail!("the key file {} is empty", path.display());
    }
    Ok(SecretString::from(key))
}

/// Find the API key. `Ok(None)` when there is none anywhere (offline work still runs).
///
/// Order: `ANTHROPIC_API_KEY`; the systemd credential `$CREDENTIALS_DIRECTORY/anthropic-api-key`
/// (`LoadCredential=` of the scheduled service); `VIGIL_API_KEY_FILE` (set in the cron.d entry);
/// the config's `schedule.api_key_file`; the OS keyring. Every file is validated by [`read_key_file`].
pub fn find_api_key(store: &dyn SecretStore, key_file: Option<&Path>) -> Result<Option<(SecretString, KeySource)>> {
    find_api_key_with(store, key_file, &|name| std::env::var(name).ok())
}

/// [`find_api_key`] with the environment given (tests).
pub fn find_api_key_with(
    store: &dyn SecretStore,
    key_file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(SecretString, KeySource)>> {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if let Some(k) = set("ANTHROPIC_API_KEY") {
        return Ok(Some((SecretString::from(k.trim().to_string()), KeySource::Env)));
    }
    let file = |p: &Path| -> Result<Option<(SecretString, KeySource)>> {
        Ok(Some((read_key_file(p)?, KeySource::File(p.display().to_string()))))
    };
    // systemd credentials: the directory may hold others; ours may be absent.
    if let Some(dir) = set("CREDENTIALS_DIRECTORY") {
        let p = Path::new(&dir).join(CREDENTIAL);
        if p.exists() {
            return file(&p).context("the systemd credential (LoadCredential=) is not usable");
        }
    }
    // Named explicitly (the cron.d entry): a missing file is an error, not a fallback.
    if let Some(p) = set("VIGIL_API_KEY_FILE") {
        return file(Path::new(p.trim())).context("VIGIL_API_KEY_FILE is not usable");
    }
    if let Some(p) = key_file {
        if p.exists() {
            return file(p);
        }
    }
    Ok(store.get(API_KEY_ENTRY)?.map(|k| (k, KeySource::Keyring(store.backend()))))
}

/// Show a key as `sk-ant-…wxyz`-free text: never any of it, only its length class.
pub fn describe_key(key: &SecretString) -> String {
    let k = key.expose_secret();
    let kind = if k.starts_with("sk-ant-") { "an Anthropic API key" } else { "a key of unrecognised format" };
    format!("{kind}, {} characters", k.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_round_trip() {
        let s = MemoryStore::default();
        assert!(s.get(API_KEY_ENTRY).unwrap().is_none());
        s.set(API_KEY_ENTRY, &SecretString::from("sk-ant-test".to_string())).unwrap();
        assert_eq!(s.get(API_KEY_ENTRY).unwrap().unwrap().expose_secret(), "sk-ant-test");
        assert!(s.delete(API_KEY_ENTRY).unwrap());
        assert!(!s.delete(API_KEY_ENTRY).unwrap());
    }

    #[test]
    fn key_files_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("key");
        std::fs::write(&p, "sk-ant-x\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_key_file(&p).unwrap_err().to_string().contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_key_file(&p).unwrap().expose_secret(), "sk-ant-x");
    }

    #[test]
    fn scheduled_key_sources_in_order_and_validated() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let creds = t.path().join("creds");
        std::fs::create_dir(&creds).unwrap();
        let cred = creds.join(CREDENTIAL);
        let cron = t.path().join("cron-key");
        for (p, k) in [(&cred, "sk-ant-cred"), (&cron, "sk-ant-cron")] {
            std::fs::write(p, format!("{k}\n")).unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o400)).unwrap();
        }
        let store = MemoryStore::default();
        store.set(API_KEY_ENTRY, &SecretString::from("sk-ant-ring".to_string())).unwrap();
        let creds_s = creds.display().to_string();
        let cron_s = cron.display().to_string();
        let find = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
            find_api_key_with(&store, None, &move |n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()))
        };
        let got = |r: Result<Option<(SecretString, KeySource)>>| r.unwrap().unwrap().0.expose_secret().to_string();
        assert_eq!(
            got(find(&[("ANTHROPIC_API_KEY", "sk-ant-env"), ("CREDENTIALS_DIRECTORY", &creds_s)])),
            "sk-ant-env"
        );
        assert_eq!(got(find(&[("CREDENTIALS_DIRECTORY", &creds_s), ("VIGIL_API_KEY_FILE", &cron_s)])), "sk-ant-cred");
        assert_eq!(got(find(&[("VIGIL_API_KEY_FILE", &cron_s)])), "sk-ant-cron");
        // A credentials directory without ours falls through.
        let other = t.path().display().to_string();
        assert_eq!(got(find(&[("CREDENTIALS_DIRECTORY", &other)])), "sk-ant-ring");
        assert_eq!(got(find(&[])), "sk-ant-ring");
        // Validated like any key file: readable by others is refused, a named missing file is an error.
        std::fs::set_permissions(&cron, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = format!("{:#}", find(&[("VIGIL_API_KEY_FILE", &cron_s)]).unwrap_err());
        assert!(e.contains("VIGIL_API_KEY_FILE") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&cred, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = format!("{:#}", find(&[("CREDENTIALS_DIRECTORY", &creds_s)]).unwrap_err());
        assert!(e.contains("LoadCredential") && e.contains("chmod 600"), "{e}");
        let missing = t.path().join("nope").display().to_string();
        assert!(find(&[("VIGIL_API_KEY_FILE", &missing)]).is_err());
    }

    #[test]
    fn descriptions_never_show_the_key() {
        let d = describe_key(&SecretString::from("sk-ant-api03-SECRETSECRET".to_string()));
        assert!(!d.contains("SECRET"));
    }
}
