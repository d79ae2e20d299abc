//! The command line as clap types. Nothing outside `cli/` sees these.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::ui::Output;

#[derive(Debug, Parser)]
#[command(
    name = "tagstack",
    version,
    about = "Stateless, tag-driven AWS clusters: VPC, IAM and EC2 nodes from config/<env>.toml, and back to nothing",
    after_help = "Exit codes: 0 ok, 1 failure, 2 usage or config error, 3 `plan --detailed-exitcode` with changes pending."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Environment file to use.
    #[arg(short = 'c', long, global = true, value_name = "FILE", conflicts_with = "env")]
    pub config: Option<PathBuf>,
    /// Environment name: reads config/NAME.toml.
    #[arg(short = 'e', long = "env", global = true, value_name = "NAME")]
    pub env: Option<String>,
    /// Result format on stdout.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub output: Output,
    /// Do not ask for confirmation (required for `down`, `reap` and `restore` when stdin is not a terminal).
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
    /// More logs on stderr (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Plain log lines instead of progress spinners, even on a terminal.
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Progress as NDJSON events on stderr (one object per line, with timings), for CI logs.
    #[arg(long, global = true, conflicts_with = "quiet")]
    pub events: bool,
    /// AWS shared-config profile (default: the standard chain, e.g. AWS_PROFILE).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// AWS region, overriding the config file's `region` (for `reap`: the region to sweep).
    #[arg(long, global = true)]
    pub region: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what `up` would create, update or delete. Writes nothing.
    Plan {
        /// Exit 3 when changes are pending, 0 when none (like terraform plan -detailed-exitcode).
        #[arg(long)]
        detailed_exitcode: bool,
        /// Preview `up --ttl`.
        #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
        ttl: Option<std::time::Duration>,
    },
    /// Create or converge the environment; idempotent and resumable.
    Up {
        /// Run one stage only: `infra` (AWS resources), `cluster` (kubeadm over SSH) or `stack`
        /// (Kafka, Cassandra, Spark on the running cluster).
        #[arg(long, value_enum)]
        only: Option<Stage>,
        /// Expire the environment this long from now (e.g. 2h): tags every resource with
        /// tagstack:expires-at; on an existing environment this extends (or shortens) it.
        #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
        ttl: Option<std::time::Duration>,
    },
    /// Replace one worker: launch and join a new one, then drain, delete and terminate the old
    /// (AWS). A replacement stopped half-way is finished by the next `up`.
    Replace {
        /// The worker: its name (`tagstack status`), Kubernetes node name or instance id.
        node: String,
    },
    /// Delete everything the environment owns (its backup bucket only with --delete-backups).
    Down {
        /// Also empty and delete the backup bucket with every etcd snapshot in it.
        #[arg(long)]
        delete_backups: bool,
        /// Also deregister the node images this environment baked (`tagstack bake`) and
        /// delete their snapshots; other environments of the project may be using them.
        #[arg(long)]
        delete_images: bool,
    },
    /// What exists, node states, expiry, and drift against the config.
    Status,
    /// `down` every environment in the region whose tagstack:expires-at has passed. No config needed.
    Reap {
        /// List what would be reaped; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only environments of this project.
        #[arg(long, value_name = "PROJECT")]
        project: Option<String>,
    },
    /// Write a commented starter config to config/NAME.toml (-e) or FILE (-c).
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Man,
    /// Write every manifest of the environment (cluster add-ons and stack) to a directory.
    /// Needs no cloud access.
    Render {
        /// Output directory (created; existing files of the same names are overwritten).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Check the live stack end to end: one Kafka message, one CQL round trip, SparkPi.
    Smoke,
    /// Take an etcd snapshot on the control plane and upload it to the environment's backup
    /// bucket ([backup] in the config).
    Backup,
    /// Restore the control plane's etcd from a snapshot taken by `backup`: the API server is down
    /// meanwhile, and every object created since the snapshot is gone from the API.
    Restore {
        /// `latest` (the newest in the backup bucket), a key as `backup` printed it, or the
        /// path of a snapshot file on this machine.
        snapshot: String,
    },
    /// Build a node image for this config (packages installed, images pulled) that `up` then
    /// launches nodes from; reuses the image when one of the same content exists (AWS).
    Bake {
        /// Instead: deregister this environment's baked images that the config no longer
        /// matches, and delete their snapshots.
        #[arg(long)]
        prune: bool,
    },
    /// Write the cluster's admin kubeconfig (0600) and print its path.
    Kubeconfig {
        /// Print the kubeconfig itself instead of its path.
        #[arg(long)]
        stdout: bool,
    },
    /// The monitoring add-on ([monitoring] in the config): Grafana's password, a tunnel to it.
    Monitoring {
        #[command(subcommand)]
        action: MonitoringAction,
    },
    /// Kafka's users ([stack.kafka]): SCRAM users with ACLs, and their client configuration.
    Kafka {
        #[command(subcommand)]
        action: KafkaAction,
    },
    /// Open a shell on a node (or run a command) with the environment's key and known_hosts.
    Ssh {
        /// Node name (`tagstack status` lists them).
        node: String,
        /// Command to run instead of a shell, after `--` (as with ssh, the remote shell reads
        /// the words joined by spaces; none of them is ever an option of the local ssh).
        #[arg(last = true)]
        command: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MonitoringAction {
    /// Print Grafana's admin password (user `admin`) to stdout. Only this command ever shows it.
    Password,
    /// Forward Grafana (or Prometheus, Alertmanager) to 127.0.0.1 through an SSH tunnel to the
    /// control plane and print its URL; runs until interrupted (Ctrl-C). Nothing is exposed
    /// beyond this machine's loopback.
    Open {
        #[arg(value_enum, default_value = "grafana")]
        target: OpenTarget,
        /// Local port (default: the service's own: 3000, 9090 or 9093).
        #[arg(long)]
        port: Option<u16>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KafkaAction {
    /// A SCRAM user and its ACLs; the password is made on the control plane, into the Secret
    /// <kafka namespace>/kafka-user-NAME. Running it again changes nothing (it adds ACLs for
    /// new topics, never removes any).
    User {
        #[command(subcommand)]
        action: KafkaUserAction,
    },
    /// Print a ready client.properties for user NAME (`admin` or one `kafka user add` made) to
    /// stdout: bootstrap servers, SASL_SSL, SCRAM-SHA-512 with the password, the CA inline.
    /// Only this command ever shows the password.
    ClientConfig {
        /// The user.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KafkaUserAction {
    /// Make user NAME: read, write and describe on its topics, read on its consumer groups
    /// (ids starting with NAME).
    Add {
        /// The user: lowercase letters, digits, '.' and '-'.
        name: String,
        /// Topic names, or prefixes ending in '*' (e.g. `orders,events.*`); default: `NAME.*`.
        #[arg(long, value_delimiter = ',')]
        topics: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OpenTarget {
    Grafana,
    Prometheus,
    Alertmanager,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    Infra,
    Cluster,
    Stack,
}

fn parse_ttl(s: &str) -> Result<std::time::Duration, String> {
    use crate::config::{MIN_TTL, Refused, at_least};
    at_least(s, MIN_TTL).map_err(|refused| match refused {
        Refused::TooShort => "a TTL must be at least a minute, e.g. 2h".into(),
        Refused::Malformed => format!("{s:?} is not a duration; write e.g. 90m, 2h or 1d"),
    })
}
