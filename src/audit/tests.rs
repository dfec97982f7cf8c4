//! The audit log's tests: the chain, oversized entries, a damaged tail, and the
//! anchors (a fake journal socket, real UDP and TCP syslog listeners).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::io::{BufRead, Read};
use std::os::unix::net::UnixDatagram;

use serde_json::json;

use super::anchor::{JournalCheck, JournalSource, SyslogTarget};
use super::*;

/// A log in a temporary directory, its anchors pointed at nothing (no journal).
fn bare(t: &tempfile::TempDir) -> AuditLog {
    let mut l = AuditLog::in_dir(t.path());
    let a = l.anchors_mut();
    a.journal_socket = t.path().join("no-journal.socket");
    a.journal_dirs = vec![t.path().join("no-journal")];
    // An empty journal export: journalctl runs but there are no journal files.
    std::fs::write(t.path().join("no-journal.json"), "").unwrap();
    a.journal_source = JournalSource::Export(t.path().join("no-journal.json"));
    l
}

fn log() -> (tempfile::TempDir, AuditLog) {
    let t = tempfile::tempdir().unwrap();
    let l = bare(&t);
    for i in 0..4 {
        l.append(json!({"tool": "list_open_ports", "i": i})).unwrap();
    }
    (t, l)
}

fn lines(l: &AuditLog) -> Vec<String> {
    std::fs::read_to_string(l.path()).unwrap().lines().map(String::from).collect()
}

fn rewrite(l: &AuditLog, ls: &[String]) {
    std::fs::write(l.path(), ls.iter().map(|s| format!("{s}\n")).collect::<String>()).unwrap();
}

fn chain(l: &AuditLog) -> Verdict {
    l.verify_chain().unwrap().0
}

/// What an append would warn about right now (None: it would write silently).
fn append_warning(l: &AuditLog) -> Option<String> {
    let mut f = open_append(l.path()).unwrap();
    l.tail(&mut f).unwrap().damage
}

/// Recompute every hash and the head after `edit`: what a root attacker does.
fn rechain(l: &AuditLog, edit: impl Fn(&mut Vec<Entry>)) {
    let mut es = l.entries().unwrap();
    edit(&mut es);
    let mut prev = GENESIS.to_string();
    for (i, e) in es.iter_mut().enumerate() {
        e.seq = i as u64 + 1;
        e.prev = prev.clone();
        e.hash = entry_hash(&e.prev, e.seq, &e.ts, &e.event);
        prev = e.hash.clone();
    }
    let ls: Vec<String> = es.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
    rewrite(l, &ls);
    let head = Head { seq: es.len() as u64, hash: prev };
    std::fs::write(&l.head, serde_json::to_vec(&head).unwrap()).unwrap();
}

#[test]
fn an_intact_log_verifies() {
    let (_t, l) = log();
    assert!(matches!(chain(&l), Verdict::Intact { entries: 4, .. }));
    assert_eq!(append_warning(&l), None);
}

#[test]
fn edits_removals_reorders_and_truncation_are_caught() {
    let (_t, l) = log();
    let orig = lines(&l);

    let mut edited = orig.clone();
    edited[1] = edited[1].replace("\"i\":1", "\"i\":9");
    rewrite(&l, &edited);
    assert!(matches!(chain(&l), Verdict::Broken { line: 2, .. }));

    let mut removed = orig.clone();
    removed.remove(2);
    rewrite(&l, &removed);
    assert!(matches!(chain(&l), Verdict::Broken { line: 3, .. }));

    let mut swapped = orig.clone();
    swapped.swap(0, 1);
    rewrite(&l, &swapped);
    assert!(matches!(chain(&l), Verdict::Broken { line: 1, .. }));

    rewrite(&l, &orig[..3]);
    match chain(&l) {
        Verdict::Broken { line, why } => {
            assert_eq!(line, 4);
            assert!(why.contains("cut off"), "{why}");
        }
        v => panic!("truncation not caught: {v:?}"),
    }
}

#[test]
fn events_are_redacted() {
    let t = tempfile::tempdir().unwrap();
    let l = bare(&t);
    l.append(json!({"cmd": "mysql -pHunter2 db"})).unwrap();
    assert!(!std::fs::read_to_string(l.path()).unwrap().contains("Hunter2"));
}

/// The reproduction of issue 14 item 6: a 70 kB and a 1 MB argument, then further appends.
#[test]
fn oversized_arguments_are_capped_and_the_log_keeps_working() {
    let t = tempfile::tempdir().unwrap();
    let l = bare(&t);
    let big70 = "A".repeat(70_000);
    let big1m = "B".repeat(1_000_000);
    l.append(json!({"kind": "tool_call", "tool": "read_file", "input": {"path": big70}})).unwrap();
    assert_eq!(append_warning(&l), None, "no warning after a 70 kB argument");
    l.append(json!({"kind": "tool_call", "tool": "read_file", "input": {"path": big1m}})).unwrap();
    assert_eq!(append_warning(&l), None, "no warning after a 1 MB argument");
    for i in 0..3 {
        l.append(json!({"kind": "tool_call", "tool": "check_ssh", "i": i})).unwrap();
    }
    assert!(matches!(chain(&l), Verdict::Intact { entries: 5, .. }), "{:?}", chain(&l));

    // Neither value is in the log; each is its size and digest, which a holder of the input can check.
    let text = std::fs::read_to_string(l.path()).unwrap();
    assert!(text.len() < 8 * 1024, "the log stays small: {} bytes", text.len());
    assert!(!text.contains(&"A".repeat(STRING_CAP + 1)) && !text.contains(&"B".repeat(STRING_CAP + 1)));
    let es = l.entries().unwrap();
    let p = &es[1].event["input"]["path"];
    assert_eq!(p["bytes"], 1_000_000);
    assert_eq!(p["sha256"], hex::encode(Sha256::digest(big1m.as_bytes())));
    assert_eq!(es[0].event["input"]["path"]["bytes"], 70_000);
    assert_eq!(es[4].event["i"], 2, "small events are kept whole");
}

#[test]
fn an_event_of_countless_small_fields_is_capped_too() {
    let started = std::time::Instant::now();
    let many: serde_json::Map<String, Value> = (0..20_000).map(|i| (format!("k{i}"), json!(i))).collect();
    let list: Vec<Value> = (0..20_000).map(|i| json!(format!("v{i}"))).collect();
    for ev in [
        json!({"kind": "tool_call", "tool": "x", "input": Value::Object(many.clone())}),
        Value::Object(many),
        json!({"kind": "tool_call", "tool": "x", "input": {"list": list}}),
        json!(vec!["a".repeat(100); 1000]),
        // Many mid-sized fields: each is replaced in one pass, not by re-measuring the event each time.
        Value::Object((0..5_000).map(|i| (format!("k{i}"), json!("x".repeat(1000)))).collect()),
    ] {
        let capped = cap_event(ev);
        assert!(size_of(&capped) <= EVENT_CAP, "{}", size_of(&capped));
    }
    let capped = cap_event(json!({"kind": "tool_call", "tool": "x", "input": {"list": vec![1; 50_000]}}));
    assert_eq!(capped["tool"], "x", "what was called stays readable");
    assert_eq!(capped["input"]["omitted"], "too large to log");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
}

/// A log written before the cap existed (one 1 MB line) still takes appends and verifies.
#[test]
fn a_huge_old_last_entry_is_read_whole() {
    let t = tempfile::tempdir().unwrap();
    let l = bare(&t);
    l.append(json!({"i": 0})).unwrap();
    let prev = l.head().unwrap();
    let event = json!({"kind": "tool_call", "input": {"path": "C".repeat(1_000_000)}});
    let ts = now_rfc3339();
    let hash = entry_hash(&prev.hash, 2, &ts, &event);
    let e = Entry { seq: 2, ts, prev: prev.hash, event, hash: hash.clone() };
    let mut f = open_append(l.path()).unwrap();
    f.write_all(format!("{}\n", serde_json::to_string(&e).unwrap()).as_bytes()).unwrap();
    std::fs::write(&l.head, serde_json::to_vec(&Head { seq: 2, hash }).unwrap()).unwrap();

    assert_eq!(append_warning(&l), None);
    assert!(matches!(chain(&l), Verdict::Intact { entries: 2, .. }));
    assert_eq!(l.append(json!({"i": 3})).unwrap().seq, 3);
    assert!(matches!(chain(&l), Verdict::Intact { entries: 3, .. }));
}

/// Whatever happened to the tail, the warning an append gives and `verify` agree,
/// and the log never stops taking entries.
#[test]
fn the_append_warning_and_verify_agree_on_a_damaged_tail() {
    type Damage = fn(&AuditLog, &[String]);
    let damages: [(&str, Damage); 6] = [
        ("nothing", |_, _| {}),
        ("a torn last line", |l, o| {
            let mut s = o.join("\n") + "\n";
            s.push_str("{\"seq\":5,\"ts\":\"20");
            std::fs::write(l.path(), s).unwrap();
        }),
        ("an edited last entry", |l, o| {
            let mut e = o.to_vec();
            e[3] = e[3].replace("\"i\":3", "\"i\":7");
            rewrite(l, &e);
        }),
        ("the head file removed", |l, _| std::fs::remove_file(&l.head).unwrap()),
        ("the last entry removed", |l, o| rewrite(l, &o[..3])),
        ("everything in the log removed", |l, _| rewrite(l, &[])),
    ];
    for (what, damage) in damages {
        let (_t, l) = log();
        let orig = lines(&l);
        damage(&l, &orig);
        let warned = append_warning(&l);
        let verdict = chain(&l);
        assert_eq!(
            warned.is_some(),
            matches!(verdict, Verdict::Broken { .. }),
            "{what}: append warns {warned:?} but verify says {verdict:?}"
        );
        // The log keeps going, and verify keeps naming the damage (not the new entry).
        let e = l.append(json!({"after": what})).unwrap();
        assert!(e.seq >= 4, "{what}: {e:?}");
        let after = chain(&l);
        assert_eq!(matches!(after, Verdict::Broken { .. }), warned.is_some(), "{what}: {after:?}");
        assert!(lines(&l).last().unwrap().contains(what), "{what}: the new entry is a line of its own");
    }
}

/// A fake journald: a unix datagram socket, and what it received turned into
/// `journalctl -o json` lines (the native protocol parsed strictly).
struct FakeJournal {
    sock: UnixDatagram,
    export: PathBuf,
    got: Vec<Value>,
}

impl FakeJournal {
    fn bind(t: &tempfile::TempDir, l: &mut AuditLog) -> FakeJournal {
        let path = t.path().join("journal.socket");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_nonblocking(true).unwrap();
        let export = t.path().join("journal.json");
        std::fs::write(&export, "").unwrap();
        let a = l.anchors_mut();
        a.journal_socket = path;
        a.journal_via_logger = false;
        a.journal_source = JournalSource::Export(export.clone());
        FakeJournal { sock, export, got: Vec::new() }
    }

    fn parse(d: &[u8]) -> Value {
        let mut o = serde_json::Map::new();
        let mut r = d;
        while !r.is_empty() {
            let nl = r.iter().position(|b| *b == b'\n').expect("a field ends in a newline");
            let line = &r[..nl];
            if let Some(eq) = line.iter().position(|b| *b == b'=') {
                let k = std::str::from_utf8(&line[..eq]).unwrap();
                assert!(k.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'), "{k}");
                o.insert(k.into(), json!(std::str::from_utf8(&line[eq + 1..]).unwrap()));
                r = &r[nl + 1..];
            } else {
                let k = std::str::from_utf8(line).unwrap().to_string();
                let len = u64::from_le_bytes(r[nl + 1..nl + 9].try_into().unwrap()) as usize;
                let v = &r[nl + 9..nl + 9 + len];
                assert_eq!(r[nl + 9 + len], b'\n');
                o.insert(k, json!(std::str::from_utf8(v).unwrap()));
                r = &r[nl + 10 + len..];
            }
        }
        Value::Object(o)
    }

    /// Take what arrived into the export file.
    fn drain(&mut self) {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = self.sock.recv(&mut buf) {
            self.got.push(Self::parse(&buf[..n]));
        }
        let text: String = self.got.iter().map(|v| format!("{v}\n")).collect();
        std::fs::write(&self.export, text).unwrap();
    }
}

#[test]
fn each_entry_is_anchored_in_the_journal_and_verify_checks_it() {
    let t = tempfile::tempdir().unwrap();
    let mut l = bare(&t);
    let mut j = FakeJournal::bind(&t, &mut l);
    for i in 0..5 {
        l.append(json!({"kind": "tool_call", "tool": "check_ssh", "input": {"password": "Hunter2", "i": i}})).unwrap();
    }
    j.drain();
    assert_eq!(j.got.len(), 5);
    let es = l.entries().unwrap();
    for (rec, e) in j.got.iter().zip(&es) {
        assert_eq!(rec["SYSLOG_IDENTIFIER"], "vigil-audit");
        assert_eq!(rec["VIGIL_AUDIT_SEQ"], e.seq.to_string());
        assert_eq!(rec["VIGIL_AUDIT_HASH"], e.hash);
        assert_eq!(rec["VIGIL_AUDIT_LOG"], l.path().display().to_string());
        assert!(!rec.to_string().contains("check_ssh") && !rec.to_string().contains("Hunter2"), "no content: {rec}");
    }
    let v = l.verify().unwrap();
    assert_eq!(v.journal, JournalCheck::Matches { up_to: 5, entries: 5 });
    assert_eq!(v.sealed, Some(false), "a journal, not sealed");
    assert!(v.ok());
    let out = crate::cmd::log::verify_lines(&v, l.path()).join("\n");
    assert!(out.contains("anchored in the journal up to seq 5 (matches)"), "{out}");
    assert!(out.contains("not sealed"), "{out}");

    // A root attacker edits entry 2 and recomputes the chain and the head: the files alone verify...
    let saved = (std::fs::read(l.path()).unwrap(), std::fs::read(&l.head).unwrap());
    rechain(&l, |es| es[1].event["tool"] = json!("something_harmless"));
    assert!(matches!(chain(&l), Verdict::Intact { entries: 5, .. }));
    // ...the journal does not.
    let v = l.verify().unwrap();
    assert!(!v.ok());
    let out = crate::cmd::log::verify_lines(&v, l.path()).join("\n");
    assert!(
        out.contains("BROKEN against the journal") && out.contains("entry 2") && out.contains("rewritten"),
        "{out}"
    );

    // Cutting the last two entries and rewriting the head.
    std::fs::write(l.path(), &saved.0).unwrap();
    std::fs::write(&l.head, &saved.1).unwrap();
    assert!(l.verify().unwrap().ok());
    rechain(&l, |es| es.truncate(3));
    let v = l.verify().unwrap();
    assert!(
        matches!(&v.journal, JournalCheck::Mismatch(w) if w.contains("ends at entry 3") && w.contains("up to seq 5")),
        "{v:?}"
    );

    // Deleting both files.
    std::fs::remove_file(l.path()).unwrap();
    std::fs::remove_file(&l.head).unwrap();
    let v = l.verify().unwrap();
    assert!(matches!(v.chain, Verdict::Intact { entries: 0, .. }));
    let out = crate::cmd::log::verify_lines(&v, l.path()).join("\n");
    assert!(!v.ok() && out.contains("log missing but the journal has entries up to seq 5"), "{out}");

    // ...and starting a fresh log in their place: seq 1 now has two hashes in the journal.
    for i in 0..5 {
        l.append(json!({"i": i})).unwrap();
    }
    j.drain();
    let v = l.verify().unwrap();
    assert!(matches!(&v.journal, JournalCheck::Mismatch(w) if w.contains("different hashes for entry 1")), "{v:?}");
}

#[test]
fn verify_says_plainly_when_nothing_anchors_the_log() {
    let (t, l) = log();
    let v = l.verify().unwrap();
    assert!(v.ok(), "an unanchored intact log is not broken: {v:?}");
    let out = crate::cmd::log::verify_lines(&v, l.path()).join("\n");
    assert!(out.contains("audit log intact: 4 entries"), "{out}");
    assert!(out.contains("not anchored: no journal on this host") && out.contains("undetected"), "{out}");

    // A journal that runs but has nothing of this log (entries written before it ran).
    let mut l = l;
    let _j = FakeJournal::bind(&t, &mut l);
    let v = l.verify().unwrap();
    assert_eq!(v.journal, JournalCheck::NoAnchors);
    let out = crate::cmd::log::verify_lines(&v, l.path()).join("\n");
    assert!(out.contains("not anchored: the journal holds no hashes of this log"), "{out}");
}

#[test]
fn sealing_is_noticed_from_the_fss_file() {
    let t = tempfile::tempdir().unwrap();
    let mut l = bare(&t);
    let dir = t.path().join("var-log-journal");
    std::fs::create_dir_all(dir.join("0123abcd")).unwrap();
    std::fs::write(dir.join("0123abcd/system.journal"), "").unwrap();
    l.anchors_mut().journal_dirs = vec![dir.clone()];
    assert_eq!(l.verify().unwrap().sealed, Some(false));
    std::fs::write(dir.join("0123abcd/fss"), "").unwrap();
    assert_eq!(l.verify().unwrap().sealed, Some(true));
}

/// The syslog line for `seq`, checked as an RFC 5424 line carrying the entry's hash and nothing of its content.
fn assert_syslog_line(line: &str, e: &Entry) {
    assert!(line.starts_with("<86>1 "), "{line}");
    let parts: Vec<&str> = line.splitn(7, ' ').collect();
    assert_eq!(parts.len(), 7, "{line}");
    assert!(time::OffsetDateTime::parse(parts[1], &time::format_description::well_known::Rfc3339).is_ok(), "{line}");
    assert_eq!(parts[3], "vigil-audit");
    assert_eq!(parts[5], "-", "no MSGID");
    assert!(parts[6].contains(&format!("seq=\"{}\" hash=\"{}\"]", e.seq, e.hash)), "{line}");
    assert!(!line.contains("Hunter2") && !line.contains("check_ssh"), "{line}");
}

#[test]
fn each_entry_goes_to_a_udp_syslog() {
    let t = tempfile::tempdir().unwrap();
    let srv = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    srv.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let target = SyslogTarget::parse(&format!("udp://{}", srv.local_addr().unwrap())).unwrap();
    let l = bare(&t).with_syslog(Some(target.clone()));
    let mut buf = vec![0u8; 4096];
    for i in 0..3 {
        let e = l.append(json!({"tool": "check_ssh", "input": {"password": "Hunter2", "i": i}})).unwrap();
        let n = srv.recv(&mut buf).unwrap();
        assert_syslog_line(std::str::from_utf8(&buf[..n]).unwrap(), &e);
    }
    let v = l.verify().unwrap();
    let out = crate::cmd::log::verify_lines(&v, l.path()).join("\n");
    assert!(out.contains(&format!("syslog {target}")), "{out}");
}

#[test]
fn each_entry_goes_to_a_tcp_syslog() {
    let t = tempfile::tempdir().unwrap();
    let srv = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = SyslogTarget::parse(&format!("tcp://{}", srv.local_addr().unwrap())).unwrap();
    let l = bare(&t).with_syslog(Some(target));
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        for _ in 0..3 {
            let (mut c, _) = srv.accept().unwrap();
            let mut s = String::new();
            c.read_to_string(&mut s).unwrap();
            got.push(s);
        }
        got
    });
    let es: Vec<Entry> = (0..3)
        .map(|i| l.append(json!({"tool": "check_ssh", "input": {"password": "Hunter2", "i": i}})).unwrap())
        .collect();
    let got = reader.join().unwrap();
    for (s, e) in got.iter().zip(&es) {
        let mut lines = std::io::BufReader::new(s.as_bytes()).lines();
        assert_syslog_line(&lines.next().unwrap().unwrap(), e);
        assert!(lines.next().is_none(), "one newline-framed line per connection");
    }
}

#[test]
fn syslog_targets_parse_or_say_what_is_expected() {
    for (s, shown) in [
        ("udp://192.0.2.10:514", "udp://192.0.2.10:514"),
        ("tcp://logs.example.org:6514", "tcp://logs.example.org:6514"),
        ("udp://logs.example.org", "udp://logs.example.org:514"),
        ("tcp://[2001:db8::1]:514", "tcp://[2001:db8::1]:514"),
    ] {
        assert_eq!(SyslogTarget::parse(s).unwrap().to_string(), shown);
    }
    for bad in
        ["logs.example.org:514", "http://x:514", "udp://", "udp://x:notaport", "udp://x:0", "tcp://[::1", "udp://a b:1"]
    {
        let e = SyslogTarget::parse(bad).unwrap_err().to_string();
        assert!(e.contains("expected udp://HOST:PORT or tcp://HOST:PORT"), "{bad}: {e}");
    }
}

#[test]
fn hostile_journal_records_do_not_panic_verify() {
    let t = tempfile::tempdir().unwrap();
    let mut l = bare(&t);
    let j = FakeJournal::bind(&t, &mut l);
    l.append(json!({"i": 1})).unwrap();
    let log = l.path().display().to_string();
    let recs = [
        json!({"SYSLOG_IDENTIFIER": "vigil-audit", "VIGIL_AUDIT_LOG": log, "VIGIL_AUDIT_SEQ": "1", "VIGIL_AUDIT_HASH": "ééééééééééééééééééé"}),
        json!({"SYSLOG_IDENTIFIER": "vigil-audit", "VIGIL_AUDIT_LOG": log, "VIGIL_AUDIT_SEQ": "18446744073709551615", "VIGIL_AUDIT_HASH": [1, 2]}),
        json!({"SYSLOG_IDENTIFIER": "vigil-audit", "VIGIL_AUDIT_LOG": log, "VIGIL_AUDIT_SEQ": "0", "VIGIL_AUDIT_HASH": "x"}),
    ];
    std::fs::write(&j.export, recs.iter().map(|r| format!("{r}\nnot json\n")).collect::<String>()).unwrap();
    let v = l.verify().unwrap();
    assert!(matches!(&v.journal, JournalCheck::Mismatch(w) if w.contains("entry 1")), "{v:?}");
}
