//! `vigil notify test`: send a test message to every configured channel.

use anyhow::{Result, bail};

use crate::app::App;
use crate::cli::NotifyAction;
use crate::notify::{Note, Sender, channels};

/// Run `vigil notify …`.
pub async fn run(app: &App, action: NotifyAction) -> Result<u8> {
    match action {
        NotifyAction::Test => {
            let extra = crate::schedule::installed(&app.state).map(|i| i.notify).unwrap_or_default();
            let chans = channels(&app.config.notify, &extra);
            if chans.is_empty() {
                bail!(
                    "no notification channel configured: add email_to (with smtp, or a local sendmail) or [[notify.webhooks]] to {}",
                    app.config_path.display()
                );
            }
            let store = crate::auth::OsKeyring::new();
            let sender = Sender { cfg: &app.config.notify, secrets: &store, retry: Default::default() };
            let note = Note::test(&crate::state::host_name(&app.host));
            let mut failed = 0;
            for (name, r) in sender.send_all(&chans, &note, Some(&app.state)).await {
                match r {
                    Ok(()) => println!("sent: {name}"),
                    Err(e) => {
                        failed += 1;
                        println!("FAILED: {name}: {e:#}");
                    }
                }
            }
            Ok(if failed == 0 { 0 } else { 1 })
        }
    }
}
