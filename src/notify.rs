//! Notifications after a review: email (SMTP with STARTTLS through lettre, or
//! the local `sendmail`) and webhooks (Slack-compatible or plain JSON).
//!
//! A notification says what changed since last time first, then the counts.
//! Each channel is retried with backoff; one that still fails is recorded in
//! `STATE/notify-failures.json` and shown at the top of the next report and
//! the next `vigil chat`, so a broken mail relay cannot silence the review.
//! Secrets (the SMTP password, a webhook URL's token) come from the OS
//! keyring or a root-owned 0600 file and are never logged.

use std::path::Path;
use std::time::Duration;

use crate::config::NotifyConfig;
use anyhow::{Context, Result, anyhow, bail};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use vigil_tools::Redactor;

use crate::auth::SecretStore;
use crate::review::{Review, render};
use crate::state::{StateDir, read_private, write_atomic};

/// The keyring entry of the SMTP password.
pub const SMTP_PASSWORD_ENTRY: &str = "smtp-password";

/// One message, in every channel's shape.
#[derive(Debug, Clone)]
pub struct Note {
    /// Subject / first line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
    /// Structured payload for JSON webhooks.
    pub json: serde_json::Value,
}

/// Send `note` to every channel: the config's and the installed schedule's `--notify`
/// targets; returns the failures ("channel: why"), for the run record.
pub async fn send_to_all(app: &crate::app::App, note: &Note) -> Vec<String> {
    let extra = crate::schedule::installed(&app.state).map(|i| i.notify).unwrap_or_default();
    let channels = channels(&app.config.notify, &extra);
    if channels.is_empty() {
        return Vec::new();
    }
    let store = crate::auth::OsKeyring::new();
    let sender = Sender { cfg: &app.config.notify, secrets: &store, retry: Default::default() };
    sender
        .send_all(&channels, note, Some(&app.state))
        .await
        .into_iter()
        .filter_map(|(name, res)| res.err().map(|e| format!("{name}: {e:#}")))
        .collect()
}

impl Note {
    /// The message for a review: what changed first, then the counts and the top findings.
    pub fn for_review(r: &Review, reports: &[String]) -> Note {
        let s = &r.summary;
        let c = |k: &str| s.by_severity.get(k).copied().unwrap_or(0);
        let subject = format!(
            "vigil {}: {} new since last review, {} critical, {} high",
            r.host.name,
            s.new,
            c("critical"),
            c("high")
        );
        let mut body = String::new();
        for n in &r.notices {
            body.push_str(&format!("!! {n}\n"));
        }
        match &r.changes.since {
            Some(since) => {
                body.push_str(&format!("Since the last review ({since}):\n"));
                if r.changes.new.is_empty() && r.changes.resolved.is_empty() && r.changes.host.is_empty() {
                    body.push_str("  nothing changed\n");
                }
                for n in &r.changes.new {
                    body.push_str(&format!(
                        "  NEW      [{}] {} {}\n",
                        n.severity.map(|s| s.as_str()).unwrap_or(""),
                        n.subject,
                        n.title.as_deref().unwrap_or(&n.id)
                    ));
                }
                for n in &r.changes.resolved {
                    body.push_str(&format!("  RESOLVED {} {}\n", n.subject, n.title.as_deref().unwrap_or(&n.id)));
                }
                for h in &r.changes.host {
                    body.push_str(&format!("  HOST     {}\n", h.describe()));
                }
            }
            None => body.push_str("First review of this host.\n"),
        }
        body.push_str(&format!("\n{}\n\nMost severe open findings:\n", render::headline(r)));
        for f in r.findings.iter().filter(|f| f.severity >= vigil_tools::Severity::High).take(10) {
            body.push_str(&format!("  [{}] {} {}\n      fix: {}\n", f.severity, f.subject, f.title, f.remediation));
        }
        if let Some(a) = render::audit_line(r) {
            body.push_str(&format!("\n{a}\n"));
        }
        if !reports.is_empty() {
            body.push_str("\nFull reports on the host:\n");
            for p in reports {
                body.push_str(&format!("  {p}\n"));
            }
        }
        let json = serde_json::json!({
            "host": r.host.name,
            "generated_at": r.generated_at,
            "headline": render::headline(r),
            "notices": r.notices,
            "summary": r.summary,
            "changes": r.changes,
            "top_findings": r.findings.iter().filter(|f| f.severity >= vigil_tools::Severity::High).take(10).collect::<Vec<_>>(),
            "reports": reports,
            "audit_head": r.audit_head,
        });
        Note { subject, body: Redactor::global().text(&body).into_owned(), json: Redactor::global().value(json) }
    }

    /// A test message.
    pub fn test(host: &str) -> Note {
        Note {
            subject: format!("vigil {host}: test notification"),
            body: format!("This is a test notification from vigil on {host}. Reviews will be reported like this.\n"),
            json: serde_json::json!({"host": host, "test": true, "headline": "test notification"}),
        }
    }
}

/// One failed delivery.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Failure {
    /// When (RFC 3339).
    pub at: String,
    /// Which channel.
    pub channel: String,
    /// Why.
    pub error: String,
    /// Shown in a report already.
    #[serde(default)]
    pub shown_in_report: bool,
    /// Shown in a chat already.
    #[serde(default)]
    pub shown_in_chat: bool,
}

fn failures_path(state: &StateDir) -> std::path::PathBuf {
    state.path().join("notify-failures.json")
}

/// Recorded failures.
pub fn failures(state: &StateDir) -> Vec<Failure> {
    read_private(&failures_path(state)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn save_failures(state: &StateDir, all: &[Failure]) -> Result<()> {
    let skip = all.len().saturating_sub(50);
    write_atomic(&failures_path(state), &serde_json::to_vec_pretty(&all[skip..])?)
}

/// Failures not yet shown where `for_chat` says, marking them shown.
pub fn take_unshown(state: &StateDir, for_chat: bool) -> Vec<Failure> {
    let mut all = failures(state);
    let mut out = Vec::new();
    for f in &mut all {
        let shown = if for_chat { &mut f.shown_in_chat } else { &mut f.shown_in_report };
        if !*shown {
            *shown = true;
            out.push(f.clone());
        }
    }
    if !out.is_empty() {
        let _ = save_failures(state, &all);
    }
    out
}

/// A channel to deliver to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    /// Email to these addresses.
    Email(Vec<String>),
    /// A Slack-compatible webhook (`{"text": …}`).
    Slack(String),
    /// A plain JSON webhook.
    Json(String),
}

impl Channel {
    /// A name safe to show (no URL path or token).
    pub fn name(&self) -> String {
        match self {
            Channel::Email(to) => format!("email to {}", to.join(", ")),
            Channel::Slack(u) | Channel::Json(u) => {
                let kind = if matches!(self, Channel::Slack(_)) { "slack webhook" } else { "webhook" };
                let host = reqwest::Url::parse(u).ok().and_then(|u| u.host_str().map(String::from)).unwrap_or_default();
                format!("{kind} at {host}")
            }
        }
    }
}

/// Every configured channel, plus targets given at `schedule install --notify`.
pub fn channels(cfg: &NotifyConfig, extra: &[String]) -> Vec<Channel> {
    let mut emails: Vec<String> = cfg.email_to.clone();
    let mut out = Vec::new();
    for w in &cfg.webhooks {
        let slack =
            w.kind.as_deref().map(|k| k.eq_ignore_ascii_case("slack")).unwrap_or(w.url.contains("hooks.slack.com"));
        out.push(if slack { Channel::Slack(w.url.clone()) } else { Channel::Json(w.url.clone()) });
    }
    for t in extra {
        if t.starts_with("http://") || t.starts_with("https://") {
            let c = if t.contains("hooks.slack.com") { Channel::Slack(t.clone()) } else { Channel::Json(t.clone()) };
            if !out.contains(&c) {
                out.push(c);
            }
        } else if t.contains('@') && !emails.contains(t) {
            emails.push(t.clone());
        }
    }
    if !emails.is_empty() {
        out.insert(0, Channel::Email(emails));
    }
    out
}

/// Retries: attempts and the first delay (doubling).
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts per channel.
    pub attempts: u32,
    /// Delay before the second attempt.
    pub first_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { attempts: 3, first_delay: Duration::from_secs(2) }
    }
}

/// Sends notes.
pub struct Sender<'a> {
    /// The notify config.
    pub cfg: &'a NotifyConfig,
    /// Where secrets live.
    pub secrets: &'a dyn SecretStore,
    /// Retry policy.
    pub retry: Retry,
}

impl Sender<'_> {
    async fn smtp_password(&self) -> Result<Option<String>> {
        if let Some(f) = &self.cfg.smtp_password_file {
            let k = crate::auth::read_key_file(f).context("smtp_password_file")?;
            return Ok(Some(k.expose_secret().to_string()));
        }
        if self.cfg.smtp_user.is_none() {
            return Ok(None);
        }
        Ok(self.secrets.get(SMTP_PASSWORD_ENTRY)?.map(|s| s.expose_secret().to_string()))
    }

    async fn email(&self, to: &[String], note: &Note) -> Result<()> {
        let from = self.cfg.email_from.clone().unwrap_or_else(|| "vigil@localhost".to_string());
        let mut b = Message::builder()
            .from(from.parse().with_context(|| format!("email_from `{from}` is not an address"))?)
            .subject(&note.subject)
            .header(ContentType::TEXT_PLAIN);
        for t in to {
            b = b.to(t.parse().with_context(|| format!("`{t}` is not an email address"))?);
        }
        let msg = b.body(note.body.clone()).context("cannot build the email")?;
        match &self.cfg.smtp {
            None => {
                let prog = vigil_tools::spawn::resolve("sendmail")
                    .or_else(|| vigil_tools::spawn::resolve("/usr/lib/sendmail"))
                    .ok_or_else(|| anyhow!("sendmail: no local `sendmail` is installed; set smtp in [notify]"))?;
                sendmail(&prog, &msg).await?;
            }
            Some(server) => {
                let (host, port) = match server.rsplit_once(':') {
                    Some((h, p)) => {
                        (h.to_string(), p.parse::<u16>().with_context(|| format!("smtp `{server}`: bad port"))?)
                    }
                    None => (server.clone(), 587),
                };
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
                    .port(port)
                    .timeout(Some(Duration::from_secs(20)));
                if self.cfg.starttls.unwrap_or(true) {
                    let mut params = TlsParameters::builder(host.clone());
                    if let Some(ca) = &self.cfg.smtp_ca_file {
                        #[expect(clippy::disallowed_methods, reason = "a CA file the root-owned config names")]
                        let pem =
                            std::fs::read(ca).with_context(|| format!("cannot read smtp_ca_file {}", ca.display()))?;
                        params = params.add_root_certificate(
                            Certificate::from_pem(&pem).context("smtp_ca_file is not a PEM certificate")?,
                        );
                    }
                    builder = builder.tls(Tls::Required(params.build().context("TLS parameters")?));
                }
                if let (Some(user), Some(pass)) = (&self.cfg.smtp_user, self.smtp_password().await?) {
                    builder = builder.credentials(Credentials::new(user.clone(), pass));
                }
                builder.build().send(msg).await.map_err(|e| anyhow!("SMTP {host}:{port}: {e}"))?;
            }
        }
        Ok(())
    }

    async fn webhook(&self, url: &str, body: serde_json::Value) -> Result<()> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build()?;
        let r = client
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| anyhow!("{}", Redactor::global().text(&e.to_string())))?;
        if !r.status().is_success() {
            bail!("HTTP {}", r.status());
        }
        Ok(())
    }

    async fn once(&self, c: &Channel, note: &Note) -> Result<()> {
        match c {
            Channel::Email(to) => self.email(to, note).await,
            Channel::Slack(u) => {
                self.webhook(u, serde_json::json!({"text": format!("*{}*\n{}", note.subject, note.body)})).await
            }
            Channel::Json(u) => self.webhook(u, note.json.clone()).await,
        }
    }

    /// Deliver to one channel with retries.
    pub async fn deliver(&self, c: &Channel, note: &Note) -> Result<()> {
        let mut delay = self.retry.first_delay;
        let mut last = None;
        for attempt in 1..=self.retry.attempts.max(1) {
            match self.once(c, note).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::info!("notification {} attempt {attempt} failed: {e:#}", c.name());
                    last = Some(e);
                    if attempt < self.retry.attempts {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no attempt made")))
    }

    /// Deliver to every channel; failures are recorded in `state` and returned.
    pub async fn send_all(
        &self,
        channels: &[Channel],
        note: &Note,
        state: Option<&StateDir>,
    ) -> Vec<(String, Result<()>)> {
        let mut out = Vec::new();
        for c in channels {
            let r = self.deliver(c, note).await;
            if let (Err(e), Some(state)) = (&r, state) {
                let mut all = failures(state);
                all.push(Failure {
                    at: crate::audit::now_rfc3339(),
                    channel: c.name(),
                    error: Redactor::global().text(&format!("{e:#}")).into_owned(),
                    shown_in_report: false,
                    shown_in_chat: false,
                });
                if let Err(e) = save_failures(state, &all) {
                    eprintln!("vigil: cannot record the failed notification: {e:#}");
                }
            }
            out.push((c.name(), r));
        }
        out
    }
}

/// Used by tests: does a path exist (for sendmail discovery messages).
pub fn sendmail_available() -> bool {
    Path::new("/usr/sbin/sendmail").exists() || Path::new("/usr/lib/sendmail").exists()
}

/// Hand `msg` to the local sendmail as lettre's transport would (`sendmail -i -f FROM --
/// TO…`, the message on stdin), but started by the one spawner: the mailer gets none
/// of vigil's environment (the API key, proxies) or descriptors.
async fn sendmail(prog: &Path, msg: &Message) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let envelope = msg.envelope();
    let mut args: Vec<String> = vec!["-i".into()];
    if let Some(from) = envelope.from() {
        args.extend(["-f".to_string(), from.to_string()]);
    }
    args.push("--".into());
    args.extend(envelope.to().iter().map(|a| a.to_string()));
    let mut child = vigil_tools::spawn::command(prog, &args, &[])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("sendmail: cannot start {}", prog.display()))?;
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&msg.formatted()).await?;
        }
        child.wait_with_output().await
    };
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .map_err(|_| anyhow!("sendmail: {} did not finish within 60 s", prog.display()))?
        .context("sendmail")?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        bail!("sendmail: {} failed ({}): {}", prog.display(), out.status, why.trim().lines().next().unwrap_or(""));
    }
    Ok(())
}

#[cfg(test)]
mod sendmail_tests {
    use super::*;

    #[tokio::test]
    async fn sendmail_gets_the_message_and_nothing_of_our_environment() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("sendmail");
        let d = dir.path().display();
        std::fs::write(&fake, format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {d}/args\nenv > {d}/env\ncat > {d}/msg\n"))
            .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        // SAFETY: no other test in this binary reads this variable.
        unsafe { std::env::set_var("VIGIL_NOTIFY_TEST_SECRET", "sk-ant-notify-test") };
        let msg = Message::builder()
            .from("vigil@host.example".parse().unwrap())
            .to("admin@example.com".parse().unwrap())
            .subject("vigil: 2 new findings")
            .body("the body".to_string())
            .unwrap();
        sendmail(&fake, &msg).await.unwrap();
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        assert_eq!(args, "-i\n-f\nvigil@host.example\n--\nadmin@example.com\n");
        let body = std::fs::read_to_string(dir.path().join("msg")).unwrap();
        assert!(body.contains("Subject: vigil: 2 new findings") && body.contains("the body"), "{body}");
        let env = std::fs::read_to_string(dir.path().join("env")).unwrap();
        assert!(!env.contains("sk-ant") && !env.contains("HOME="), "{env}");
        assert!(env.contains("LC_ALL=C"), "{env}");
    }
}
