//! `vigil chat` on a pseudo-terminal, as a person uses it.
#![allow(clippy::disallowed_methods, reason = "tests build and inspect fixtures with std::fs")]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use support::pty::Pty;
use support::*;

const T: Duration = Duration::from_secs(20);

fn chat(state: &Path, api: &FakeApi) -> Pty {
    let mut c = vigil_cmd(state, Some(api), &["chat"]);
    c.env("TERM", "xterm");
    let mut p = Pty::spawn(c);
    p.expect("/help for commands", T);
    p.expect("vigil> ", T);
    p
}

#[test]
fn chat_streams_answers_refuses_unknown_tools_and_keeps_private_history() {
    let t = tempfile::tempdir().unwrap();
    let api = FakeApi::start(vec![
        Reply::Sse(fixture("ports_tool_use.sse")),
        Reply::Sse(fixture("ports_answer.sse")),
        Reply::Sse(tool_use_sse("toolu_rm", "delete_all_backups", &serde_json::json!({}))),
        Reply::Sse(text_sse("Not done: there is no such tool.")),
        Reply::Sse(text_sse("multi ok")),
    ]);
    let mut p = chat(t.path(), &api);
    p.send("which ports are open?\r");
    p.expect("✓ list_open_ports:", T);
    p.expect("Elasticsearch is listening on all interfaces (tcp:9200)", T);
    p.expect("vigil> ", T);
    p.send("/cost\r");
    p.expect("cache-read tokens", T);
    // The model the API said answered, not the alias configured.
    p.expect("claude-sonnet-4-5-20250929", T);
    p.expect("vigil> ", T);
    p.send("/tools\r");
    p.expect("list_open_ports", T);
    p.expect("vigil> ", T);
    // An unknown tool counts as mutating and is refused; the model is told and answers.
    p.send("wipe the backups\r");
    p.expect("✗ delete_all_backups refused: There is no tool named", T);
    p.expect("Not done: there is no such tool.", T);
    p.expect("vigil> ", T);
    // A trailing backslash continues the input.
    p.send("first line \\\r");
    p.expect("...> ", T);
    p.send("second line\r");
    p.expect("multi ok", T);
    p.expect("vigil> ", T);
    p.send("\x04");
    assert_eq!(p.wait(T), 0, "Ctrl-D leaves cleanly");
    if std::env::var_os("SHOW_SCREEN").is_some() {
        eprintln!("{}", p.screen());
    }

    let got = api.check();
    assert_eq!(got.len(), 5);
    let last = &got[4].body["messages"];
    let n = last.as_array().unwrap().len();
    assert_eq!(last[n - 1]["content"][0]["text"], "first line \nsecond line");
    let refused = &tool_results(&got[3].body)["toolu_rm"];
    assert_eq!(refused["is_error"], true);

    let hist = t.path().join("chat_history");
    assert_eq!(std::fs::metadata(&hist).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&hist).unwrap().contains("which ports are open?"));
}

#[test]
fn ctrl_c_cancels_the_turn_not_the_program() {
    let t = tempfile::tempdir().unwrap();
    let api = FakeApi::start(vec![Reply::Stall(fixture("stall.sse")), Reply::Sse(text_sse("second answer"))]);
    let mut p = chat(t.path(), &api);
    p.send("think hard\r");
    p.expect("Let me think about that", T);
    p.send("\x03");
    p.expect("(cancelled: not sent)", T);
    p.expect("vigil> ", T);
    p.send("again\r");
    p.expect("second answer", T);
    p.expect("vigil> ", T);
    p.send("/exit\r");
    assert_eq!(p.wait(T), 0);
    let got = api.check();
    assert_eq!(got.len(), 2);
    // The cancelled turn is gone: neither the question nor a half answer is sent again.
    let msgs = got[1].body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    assert_eq!(msgs[0]["content"].as_array().map(Vec::len), Some(1), "{msgs:#?}");
    assert_eq!(msgs[0]["content"][0]["text"], "again");
    assert!(!got[1].body.to_string().contains("think hard"), "the cancelled question is not resent");
}

/// Between Enter and the first token the terminal says what it is waiting for.
#[test]
fn a_spinner_shows_while_waiting_for_the_first_token() {
    let t = tempfile::tempdir().unwrap();
    let api = FakeApi::start(vec![Reply::Stall(String::new())]);
    let mut p = chat(t.path(), &api);
    p.send("anyone there?\r");
    p.expect("waiting for Claude", T);
    p.send("\x03");
    p.expect("(cancelled: not sent)", T);
    p.expect("vigil> ", T);
    p.send("/exit\r");
    assert_eq!(p.wait(T), 0);
}

/// `vigil chat` on the small backup root (`support::backup_root`).
fn chat_at(state: &Path, root: &Path, api: &FakeApi) -> Pty {
    let mut c = vigil_cmd_at(state, Some(api), root, &["chat"]);
    c.env("TERM", "xterm");
    let mut p = Pty::spawn(c);
    p.expect("/help for commands", T);
    p.expect("vigil> ", T);
    p
}

/// The real mutating `verify_backup_restore` on a real tar.gz: typing its name runs it once
/// (the archive is restored and the result recorded), anything else declines and changes nothing.
#[test]
fn a_mutating_tool_is_confirmed_by_its_name_once_and_declined_once() {
    let t = tempfile::tempdir().unwrap();
    let root = backup_root();
    let input = serde_json::json!({"job": "site"});
    let api = FakeApi::start(vec![
        Reply::Sse(tool_use_sse("toolu_vr1", "verify_backup_restore", &input)),
        Reply::Sse(text_sse("First attempt finished.")),
        Reply::Sse(tool_use_sse("toolu_vr2", "verify_backup_restore", &input)),
        Reply::Sse(text_sse("Left as it is.")),
    ]);
    let mut p = chat_at(t.path(), root.path(), &api);
    p.send("test last night's site backup\r");
    p.expect("site-2026-11-26.tar.gz", T);
    p.expect("Type `verify_backup_restore` to run it", T);
    p.send("verify_backup_restore\r");
    p.expect("✓ verify_backup_restore", T);
    p.expect("First attempt finished.", T);
    p.expect("vigil> ", T);
    let rec = restore_records(t.path());
    assert_eq!(rec["site"]["ok"], true, "{rec}");
    assert_eq!(rec["site"]["files"], 3, "{rec}");
    p.send("test it again\r");
    p.expect("Type `verify_backup_restore` to run it", T);
    // A reflexive yes is not the word: it declines.
    p.send("y\r");
    p.expect("declined", T);
    p.expect("Left as it is.", T);
    p.expect("vigil> ", T);
    p.send("\x04");
    assert_eq!(p.wait(T), 0);
    assert_eq!(restore_records(t.path()), rec, "the declined call changed nothing");
    let decisions: Vec<String> = audit_events(t.path())
        .iter()
        .filter(|e| e["tool"] == "verify_backup_restore")
        .map(|e| e["decision"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(decisions, vec!["confirmed", "declined"]);
    let got = api.check();
    let first = &tool_results(&got[1].body)["toolu_vr1"];
    assert_ne!(first["is_error"], true, "{first}");
    let text = first["content"].as_str().unwrap();
    assert!(text.contains("\"files\":3") || text.contains("\"files\": 3"), "{text}");
    let second = &tool_results(&got[3].body)["toolu_vr2"];
    assert_eq!(second["is_error"], true);
    assert!(second["content"].as_str().unwrap().contains("declined"), "{second}");
}

/// Ctrl-C at the confirmation prompt cancels the turn: nothing runs, the half turn is dropped,
/// and the abandoned prompt does not swallow the next line.
#[test]
fn ctrl_c_at_the_confirmation_prompt_cancels_cleanly() {
    let t = tempfile::tempdir().unwrap();
    let root = backup_root();
    let api = FakeApi::start(vec![
        Reply::Sse(tool_use_sse("toolu_vr", "verify_backup_restore", &serde_json::json!({"job": "site"}))),
        Reply::Sse(text_sse("fresh answer")),
    ]);
    let mut p = chat_at(t.path(), root.path(), &api);
    p.send("test the site backup\r");
    p.expect("Type `verify_backup_restore` to run it", T);
    p.send("\x03");
    p.expect("(cancelled: not sent)", T);
    p.expect("vigil> ", T);
    // Give the abandoned prompt time to notice before typing the next line.
    std::thread::sleep(Duration::from_millis(400));
    p.send("what now?\r");
    p.expect("fresh answer", T);
    p.expect("vigil> ", T);
    p.send("/exit\r");
    assert_eq!(p.wait(T), 0);
    assert!(audit_events(t.path()).iter().all(|e| e["decision"] != "confirmed"));
    assert_eq!(restore_records(t.path()), serde_json::json!({}), "nothing ran");
    let got = api.check();
    let msgs = got[1].body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1, "the unanswered tool call was dropped: {msgs:#?}");
    assert_eq!(msgs[0]["content"][0]["text"], "what now?", "the cancelled question is not resent");
}

/// Chat starts with what must not be missed (an overdue schedule; a failed notification, once),
/// and `/review` runs the deterministic review without the model.
#[test]
fn chat_shows_overdue_and_failed_notifications_and_reviews_on_request() {
    let t = tempfile::tempdir().unwrap();
    // Installed on 2026-09-01 (monthly), never run since; a webhook failed on 2026-11-20.
    let installed = serde_json::json!({
        "backend": "cron", "period": "monthly", "cron": "0 3 1 * *", "files": ["/etc/cron.d/vigil"],
        "exec": "vigil review --scheduled", "enabled": true, "installed_at": 1_788_220_800i64,
    });
    std::fs::write(t.path().join("schedule.json"), installed.to_string()).unwrap();
    let failure = serde_json::json!([{"at": "2026-11-20T03:00:04Z", "channel": "webhook", "error": "HTTP 500 from hooks.example"}]);
    std::fs::write(t.path().join("notify-failures.json"), failure.to_string()).unwrap();
    let api = FakeApi::start(vec![]);
    let mut p = chat(t.path(), &api);
    let screen = p.screen();
    assert!(
        screen.contains("!! The scheduled monthly review has never run since it was installed 87 days ago"),
        "{screen}"
    );
    assert!(screen.contains("!! A notification failed on 2026-11-20T03:00:04Z: webhook (HTTP 500 from hooks.example)"));
    p.send("/review\r");
    p.expect("vigil review of", Duration::from_secs(120));
    p.expect("[ports.exposed-datastore]", T);
    p.expect("vigil> ", T);
    let review = p.screen();
    assert!(review.contains("CRITICAL ("), "{review}");
    p.send("/help\r");
    p.expect("/review", T);
    p.expect("vigil> ", T);
    p.send("/exit\r");
    assert_eq!(p.wait(T), 0);
    assert!(api.received().is_empty(), "/review does not call the model");
    let failures: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.path().join("notify-failures.json")).unwrap()).unwrap();
    assert_eq!(failures[0]["shown_in_chat"], true);
    assert_eq!(failures[0]["shown_in_report"], false, "the next mailed report still leads with it");

    // The next chat: the failure was shown once; the schedule is still overdue, so that stays.
    let mut p = chat(t.path(), &api);
    let screen = p.screen();
    assert!(screen.contains("has never run since it was installed"), "{screen}");
    assert!(!screen.contains("A notification failed"), "{screen}");
    p.send("\x04");
    assert_eq!(p.wait(T), 0);
}

/// A secret typed at the prompt is kept neither in the history file nor in the transcript nor in
/// the request; a history saved before redaction existed is scrubbed when chat starts; bidi and
/// zero-width characters in the model's answer reach the terminal only as visible `<U+…>`.
#[test]
fn typed_secrets_stay_out_of_history_and_transcript_and_bidi_is_shown() {
    let t = tempfile::tempdir().unwrap();
    let hist = t.path().join("chat_history");
    std::fs::write(&hist, "#V2\nexport DB_PASSWORD=OldHistorySecret-77\nwhich ports are open?\n").unwrap();
    let api =
        FakeApi::start(vec![Reply::Sse(text_sse("Noted. Run \u{202E}fdp.exe\u{202C} and rm\u{200B} -rf nothing."))]);
    let mut p = chat(t.path(), &api);
    p.send("the site uses DB_PASSWORD=Typed-Secret-2024 and redis-cli -a Other-Typed-99 is that ok?\r");
    p.expect("Noted.", T);
    p.expect("vigil> ", T);
    p.send("\x04");
    assert_eq!(p.wait(T), 0);

    let raw = p.raw_screen();
    assert!(raw.contains("<U+202E>fdp.exe<U+202C>") && raw.contains("rm<U+200B> -rf"), "{raw}");
    assert!(
        !raw.contains('\u{202E}') && !raw.contains('\u{200B}'),
        "a bidi or zero-width character reached the terminal"
    );
    assert!(raw.contains("a secret-looking value was removed"), "{raw}");

    let history = std::fs::read_to_string(&hist).unwrap();
    for secret in ["Typed-Secret-2024", "Other-Typed-99", "OldHistorySecret-77"] {
        assert!(!history.contains(secret), "{secret} in chat_history:\n{history}");
    }
    assert!(history.contains("DB_PASSWORD=[REDACTED]") && history.contains("which ports are open?"), "{history}");
    assert_eq!(std::fs::metadata(&hist).unwrap().permissions().mode() & 0o777, 0o600);

    let transcripts: Vec<_> =
        std::fs::read_dir(t.path().join("transcripts")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(transcripts.len(), 1);
    let transcript = std::fs::read_to_string(&transcripts[0]).unwrap();
    assert!(transcript.contains("DB_PASSWORD=[REDACTED]"), "{transcript}");
    let got = api.check();
    for secret in ["Typed-Secret-2024", "Other-Typed-99"] {
        assert!(!transcript.contains(secret), "{secret} in the transcript");
        assert!(!got[0].raw.contains(secret), "{secret} sent to the API");
    }
}
