//! Files for installing vigil, generated from the program itself so they never
//! drift from it: `vigil completions SHELL` (shell completion from the clap
//! definitions) and the hidden `vigil dist-files DIR` that `scripts/dist` uses to
//! fill the Debian package — man pages, completions for bash/zsh/fish, and the
//! systemd units under the very names `vigil schedule install` writes (the
//! package's copies live in /lib/systemd/system, installed disabled; the ones
//! `schedule install` writes in /etc/systemd/system take precedence, so the two
//! never fight).

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::schedule::{SERVICE, TIMER, cron::Cron, service_unit, timer_unit};

/// Where the packaged binary lives and where its scheduled runs keep state.
const PACKAGED_EXE: &str = "/usr/bin/vigil";
const PACKAGED_STATE: &str = "/var/lib/vigil";
/// The packaged timer's schedule: 03:00 on the first of the month (plus the
/// timer's randomised delay), what `schedule install --monthly` would pick.
const PACKAGED_CRON: &str = "0 3 1 * *";

/// `vigil completions SHELL`: the completion script on stdout.
pub fn completions(shell: Shell) -> Result<u8> {
    // Into memory first: clap_complete panics on a write error (e.g. `| head`);
    // written here, a closed pipe is an ordinary error main() handles.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "vigil", &mut script);
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(&mut out, &script)?;
    std::io::Write::flush(&mut out)?;
    Ok(0)
}

/// `vigil dist-files DIR`: write `man/*.1`, `completions/{vigil.bash,_vigil,vigil.fish}`
/// and `systemd/vigil-review.{service,timer}` under DIR.
pub fn dist_files(dir: &Path) -> Result<u8> {
    let man = dir.join("man");
    let comp = dir.join("completions");
    let units = dir.join("systemd");
    for d in [&man, &comp, &units] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    clap_mangen::generate_to(Cli::command(), &man)
        .with_context(|| format!("cannot write the man pages into {}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut Cli::command(), "vigil", &comp)
            .with_context(|| format!("cannot write the {shell} completion into {}", comp.display()))?;
    }
    let on_calendar = Cron::parse(PACKAGED_CRON)?.on_calendar();
    let exec = format!("{PACKAGED_EXE} review --scheduled");
    let service = service_unit(&exec, Path::new(PACKAGED_STATE), None);
    write(&units.join(SERVICE), &service)?;
    write(&units.join(TIMER), &timer_unit(&on_calendar, "monthly"))?;
    Ok(0)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use super::*;

    #[test]
    fn dist_files_are_the_schedule_units_and_every_visible_command_has_a_man_page() {
        let t = tempfile::tempdir().unwrap();
        dist_files(t.path()).unwrap();
        let service = std::fs::read_to_string(t.path().join("systemd/vigil-review.service")).unwrap();
        assert!(service.contains("ExecStart=/usr/bin/vigil review --scheduled\n"), "{service}");
        assert!(service.contains("ReadWritePaths=/var/lib/vigil\n"), "{service}");
        let timer = std::fs::read_to_string(t.path().join("systemd/vigil-review.timer")).unwrap();
        assert!(timer.contains("OnCalendar=*-*-01 03:00:00\n") && timer.contains("Persistent=true"), "{timer}");
        for page in ["vigil.1", "vigil-review.1", "vigil-schedule-install.1", "vigil-completions.1"] {
            let text = std::fs::read_to_string(t.path().join("man").join(page)).unwrap();
            assert!(text.starts_with(".ie \\n(.g .ds Aq"), "{page}: {text}");
        }
        assert!(!t.path().join("man/vigil-dist-files.1").exists(), "hidden commands get no man page");
        let bash = std::fs::read_to_string(t.path().join("completions/vigil.bash")).unwrap();
        assert!(bash.contains("complete -F _vigil") && bash.contains("schedule"), "bash completion");
        assert!(t.path().join("completions/_vigil").exists() && t.path().join("completions/vigil.fish").exists());
    }
}
