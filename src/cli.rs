//! The command line: the contract users and tests rely on (see `docs/architecture.md`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// vigil — a natural-language operations assistant and monthly security review
/// for Linux web-hosting servers.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: Global,
    /// The command (none: a chat on a terminal, else this help).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Audit this root directory (a mounted image or a fixture) instead of `/`.
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Configuration file (default ROOT/etc/vigil/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State directory (default /var/lib/vigil as root, else $XDG_STATE_HOME/vigil).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Wordfence Intelligence vulnerability feed (JSON).
    #[arg(long, global = true, value_name = "FILE")]
    pub vuln_feed: Option<PathBuf>,
    /// Claude model (default: $VIGIL_MODEL, the config, else a current Sonnet).
    #[arg(long, global = true, env = "VIGIL_MODEL")]
    pub model: Option<String>,
    /// Never colour the output.
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Run read-only tools unconfined, in vigil's own process, instead of in the
    /// kernel-confined worker: for diagnosis only. Recorded in the audit log and the report.
    #[arg(long, global = true)]
    pub no_sandbox: bool,
    /// More diagnostics on stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Output formats of reviews and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Plain text grouped by severity.
    Text,
    /// Markdown.
    Md,
    /// JSON (the shape in `docs/architecture.md`).
    Json,
    /// One self-contained HTML file.
    Html,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Conversational shell (history, /help, /tools, /review, /cost, /exit).
    Chat(ChatArgs),
    /// One question; the answer on stdout, activity on stderr.
    Ask(AskArgs),
    /// Comprehensive review: every read-only tool, findings, changes since the last review.
    Review(ReviewArgs),
    /// Acknowledge a finding: shown, not counted, until it expires.
    Ack(AckArgs),
    /// The latest saved review and the month-by-month trend.
    Report(ReportArgs),
    /// The vulnerability feed.
    Vulndb {
        /// What to do.
        #[command(subcommand)]
        action: VulndbAction,
    },
    /// Staged WordPress updates, through the gate.
    Wp {
        /// What to do.
        #[command(subcommand)]
        action: WpAction,
    },
    /// Notifications.
    Notify {
        /// What to do.
        #[command(subcommand)]
        action: NotifyAction,
    },
    /// The tools: list, show a schema, run one through the gate.
    Tools {
        /// What to do.
        #[command(subcommand)]
        action: ToolsAction,
    },
    /// The API key in the OS keyring.
    Auth {
        /// What to do.
        #[command(subcommand)]
        action: AuthAction,
    },
    /// Scheduled reviews (systemd timer, else cron).
    Schedule {
        /// What to do.
        #[command(subcommand)]
        action: ScheduleAction,
    },
    /// The audit log.
    Log {
        /// What to do.
        #[command(subcommand)]
        action: LogAction,
    },
    /// Serve the tools over MCP on stdio, behind the same gate.
    Mcp,
    /// Print the shell completion script (e.g. `vigil completions bash > /etc/bash_completion.d/vigil`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Many servers over OpenSSH, from the Ansible inventory you already keep.
    Fleet {
        /// What to do.
        #[command(subcommand)]
        action: FleetAction,
    },
    /// The remote side of a fleet run: one request on stdin, one answer on stdout
    /// (started over ssh by vigil itself; not for people).
    #[command(name = "__remote", hide = true)]
    Remote,
    /// The confined worker vigil starts for read-only tools (not for people).
    #[command(name = "__worker", hide = true)]
    Worker(WorkerArgs),
    /// Write man pages, completions and systemd units under DIR (scripts/dist packages them).
    #[command(hide = true)]
    DistFiles {
        /// Output directory.
        dir: PathBuf,
    },
}

/// `vigil __worker` (started by vigil itself).
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The only directory the worker may write.
    #[arg(long)]
    pub scratch: PathBuf,
}

/// The fleet to ask about (`ask -i`, `chat -i`).
#[derive(Debug, Clone, Default, Args)]
pub struct FleetTarget {
    /// Ask about the servers of this Ansible inventory (INI, YAML, JSON or an
    /// inventory script): the tools take a `host` argument.
    #[arg(short = 'i', long, value_name = "INVENTORY")]
    pub inventory: Option<PathBuf>,
    /// Only the inventory's hosts that match this Ansible pattern (`web:&prod`, `!db*`).
    #[arg(long, value_name = "PATTERN", requires = "inventory")]
    pub limit: Option<String>,
}

/// `vigil chat`.
#[derive(Debug, Clone, Default, Args)]
pub struct ChatArgs {
    /// The fleet, when asking about many servers.
    #[command(flatten)]
    pub fleet: FleetTarget,
}

/// `vigil ask`.
#[derive(Debug, Clone, Args)]
pub struct AskArgs {
    /// The fleet, when asking about many servers.
    #[command(flatten)]
    pub fleet: FleetTarget,
    /// The question.
    pub prompt: Vec<String>,
    /// Read the prompt from a file.
    #[arg(long, value_name = "FILE", conflicts_with = "prompt_name")]
    pub prompt_file: Option<PathBuf>,
    /// Use a saved prompt by name (e.g. monthly-review).
    #[arg(long = "prompt", value_name = "NAME")]
    pub prompt_name: Option<String>,
    /// Print the answer, tool calls and usage as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `vigil review`.
#[derive(Debug, Clone, Args)]
pub struct ReviewArgs {
    /// No model: the deterministic review only.
    #[arg(long)]
    pub offline: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Write the output to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 1 when a finding is at or above this severity (2 = could not run).
    #[arg(long, value_name = "SEVERITY")]
    pub fail_on: Option<String>,
    /// Scheduled run: non-interactive, saves every format to STATE/reports/, notifies.
    #[arg(long, hide = true)]
    pub scheduled: bool,
    /// Show each check as it starts and ends even when stderr is not a terminal
    /// (on a terminal progress is always shown).
    #[arg(long)]
    pub progress: bool,
}

/// `vigil ack`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct AckArgs {
    /// List or remove acknowledgements instead of adding one.
    #[command(subcommand)]
    pub action: Option<AckAction>,
    /// Finding id, e.g. ports.undocumented.
    #[arg(required = true)]
    pub id: Option<String>,
    /// Only this subject (e.g. tcp:8080); all subjects when absent.
    #[arg(long)]
    pub subject: Option<String>,
    /// Why it is acceptable.
    #[arg(long, required = true)]
    pub reason: Option<String>,
    /// Until when (YYYY-MM-DD); forever when absent.
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
}

/// `vigil ack list|remove`.
#[derive(Debug, Clone, Subcommand)]
pub enum AckAction {
    /// The acknowledgements of this host, with their reasons and expiry.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Withdraw an acknowledgement: the finding counts again from the next review.
    Remove {
        /// Finding id.
        id: String,
        /// Only the acknowledgement for this subject; otherwise every one for the id.
        #[arg(long)]
        subject: Option<String>,
    },
}

/// `vigil report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Write the output to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Open the HTML report in a browser.
    #[arg(long)]
    pub open: bool,
}

/// `vigil vulndb`.
#[derive(Debug, Clone, Subcommand)]
pub enum VulndbAction {
    /// Download the Wordfence Intelligence feed into the state directory.
    Update {
        /// Feed URL.
        #[arg(long, default_value = "https://www.wordfence.com/api/intelligence/v3/vulnerabilities/production")]
        url: String,
    },
}

/// `vigil wp`.
#[derive(Debug, Clone, Subcommand)]
pub enum WpAction {
    /// Stage updates on a copy of a site and health-check them.
    Stage {
        /// The site (its path).
        site: String,
        /// Updates: `plugin:woocommerce[@9.1.2]`, `theme:SLUG`, `core[@6.4.2]`.
        #[arg(required = true)]
        updates: Vec<String>,
    },
    /// Apply a staged, verified update to production (now or --at TIME).
    Apply {
        /// The site.
        site: String,
        /// The staged update id.
        staged_id: String,
        /// When (systemd calendar or `at` time), e.g. "03:00".
        #[arg(long, conflicts_with = "approval")]
        at: Option<String>,
        /// The single-use approval a deferred apply's job carries (issued when a human
        /// confirmed `--at`; opens the gate only for the exact plan confirmed).
        #[arg(long, hide = true, value_name = "TOKEN")]
        approval: Option<String>,
    },
    /// Restore a site from the backup taken before an update.
    Rollback {
        /// The site.
        site: String,
        /// The staged update id.
        staged_id: String,
    },
    /// Finish or roll back an interrupted apply.
    Recover {
        /// The site.
        site: String,
    },
}

/// `vigil notify`.
#[derive(Debug, Clone, Subcommand)]
pub enum NotifyAction {
    /// Send a test notification to every configured channel.
    Test,
}

/// `vigil tools`.
#[derive(Debug, Clone, Subcommand)]
pub enum ToolsAction {
    /// List the tools.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a tool's input schema.
    Schema {
        /// Tool name.
        name: String,
    },
    /// Run one tool through the policy gate.
    Run {
        /// Tool name.
        name: String,
        /// Input JSON (default `{}`).
        json: Option<String>,
    },
}

/// `vigil auth`.
#[derive(Debug, Clone, Subcommand)]
pub enum AuthAction {
    /// Store the API key in the OS keyring (read without echo).
    Login {
        /// Store the Wordfence Intelligence API key (for `vigil vulndb update`) instead.
        #[arg(long)]
        wordfence: bool,
    },
    /// Say where the keys come from, without printing them.
    Status {
        /// As JSON (where each key comes from; never the key).
        #[arg(long)]
        json: bool,
    },
    /// Remove the key from the OS keyring.
    Logout {
        /// Remove the Wordfence Intelligence API key instead.
        #[arg(long)]
        wordfence: bool,
    },
}

/// `vigil schedule`.
#[derive(Debug, Clone, Subcommand)]
pub enum ScheduleAction {
    /// Install the scheduled review.
    Install(ScheduleInstallArgs),
    /// The schedule, the last run and its result, the next run.
    Status {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove everything `install` did.
    Remove,
}

/// `vigil schedule install`.
#[derive(Debug, Clone, Args)]
#[command(override_usage = "vigil schedule install <--monthly|--weekly|--cron EXPR> [OPTIONS]")]
// One of the three periods, and any of the other options: the group names only the periods
// (a struct-level `#[group]` would take in every field and refuse `--monthly --key-file F`).
#[command(group = clap::ArgGroup::new("when").required(true).multiple(false))]
pub struct ScheduleInstallArgs {
    /// Once a month.
    #[arg(long, group = "when")]
    pub monthly: bool,
    /// Once a week.
    #[arg(long, group = "when")]
    pub weekly: bool,
    /// A cron expression (`m h dom mon dow`).
    #[arg(long, group = "when", value_name = "EXPR")]
    pub cron: Option<String>,
    /// Notify these (email addresses or webhook URLs) after each run.
    #[arg(long, value_name = "TARGET")]
    pub notify: Vec<String>,
    /// A root-owned 0600 file holding the API key for scheduled runs.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Review every server of this Ansible inventory (`vigil fleet review -i`)
    /// instead of this host.
    #[arg(long, value_name = "INVENTORY")]
    pub fleet: Option<PathBuf>,
}

/// `vigil fleet`.
#[derive(Debug, Clone, Subcommand)]
pub enum FleetAction {
    /// Review every selected server over ssh: one row per host, fleet-wide
    /// findings, then each host's review.
    Review(FleetReviewArgs),
    /// The last review of each host, its reachability, and which are overdue.
    Status {
        /// The Ansible inventory.
        #[arg(short = 'i', long, value_name = "INVENTORY")]
        inventory: PathBuf,
        /// Only the hosts that match this Ansible pattern.
        #[arg(long, value_name = "PATTERN")]
        limit: Option<String>,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Output formats of a fleet review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FleetFormat {
    /// Plain text: one row per host, fleet-wide findings, then each host.
    Text,
    /// Markdown.
    Md,
    /// JSON (every host's review inside).
    Json,
    /// One self-contained HTML file, with a trend per host.
    Html,
    /// node_exporter textfile-collector format (written atomically with --out).
    Prometheus,
    /// One finding per line with its host (for Loki, Elastic, Wazuh).
    Jsonl,
}

/// `vigil fleet review`.
#[derive(Debug, Clone, Args)]
pub struct FleetReviewArgs {
    /// The Ansible inventory (INI, YAML, `ansible-inventory --list` JSON, or an inventory script).
    #[arg(short = 'i', long, value_name = "INVENTORY")]
    pub inventory: PathBuf,
    /// Only the hosts that match this Ansible pattern (`web:&prod`, `!db*`).
    #[arg(long, value_name = "PATTERN")]
    pub limit: Option<String>,
    /// At most this many hosts at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub forks: u16,
    /// Give up on a host after this many seconds (reported as `timeout`).
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: FleetFormat,
    /// Write the output to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 1 when a finding on any host is at or above this severity.
    #[arg(long, value_name = "SEVERITY")]
    pub fail_on: Option<String>,
    /// Scheduled run: non-interactive, saves every format to STATE/fleet/, notifies.
    #[arg(long, hide = true)]
    pub scheduled: bool,
}

/// `vigil log`.
#[derive(Debug, Clone, Subcommand)]
pub enum LogAction {
    /// Print the audit log.
    Show {
        /// Only the last N entries.
        #[arg(long, short = 'n')]
        last: Option<usize>,
        /// As JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain; exit 1 naming the first bad line.
    Verify,
}
