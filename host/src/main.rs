use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use smt_host::offline;

/// smt — Kafka change events through WebAssembly transforms into MongoDB.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline: Kafka -> transforms -> MongoDB, until SIGTERM/SIGINT.
    Run {
        /// The configuration file (TOML; see docs/configuration.md).
        #[arg(long)]
        config: PathBuf,
    },
    /// Compile a transform and check it against the smt:transform contract.
    Check {
        /// The transform component (.wasm).
        #[arg(long)]
        transform: PathBuf,
        #[command(flatten)]
        config: TransformConfigArg,
    },
    /// Run record lines through a transform and print the operations, one JSON line per record.
    Test {
        /// The transform component (.wasm).
        #[arg(long)]
        transform: PathBuf,
        #[command(flatten)]
        config: TransformConfigArg,
        /// Record lines (tests/fixtures/README.md); `-` or absent: standard input.
        #[arg(long)]
        input: Option<PathBuf>,
        /// A directory of schema-registry schemas (`<id>.json`, as the registry's
        /// `GET /schemas/ids/<id>` returns them): keys and values in the Confluent
        /// wire format (Avro, JSON Schema) are decoded as `smt run` does.
        #[arg(long)]
        schemas: Option<PathBuf>,
    },
    /// Check a configuration against the real services without consuming:
    /// brokers (TLS/SASL), topics, consumer group, DLQ, MongoDB, transforms.
    /// One ✓/✗ line per check. Exit code 0: every check passed; 1: a check
    /// failed; 2: the configuration cannot be read.
    Doctor {
        /// The configuration file of `smt run`.
        #[arg(long)]
        config: PathBuf,
        /// How long each service may take to answer, in seconds.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Show the status of a running `smt run` (its admin endpoint): routes,
    /// transform versions, rates, lag and ETA per partition, last errors.
    /// Exit code 0: running, nothing stalled; 1: a partition is stalled or
    /// the pipeline failed; 2: the endpoint cannot be read.
    Status {
        /// The admin endpoint, e.g. http://127.0.0.1:9464.
        #[arg(long, default_value = "http://127.0.0.1:9464")]
        admin: String,
        /// The admin token (`admin.token`), when one is configured.
        #[arg(long, env = "SMT_ADMIN__TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Print the report as JSON (`GET /status`) instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Move a route's committed offsets while `smt run` is stopped (to
    /// reprocess records, or skip them). Refused while the consumer group
    /// has active members: rewind a running smt with
    /// `POST /routes/{name}/rewind` instead. Exit code 0: moved (or shown
    /// with --dry-run); 2: refused, nothing moved.
    Reset {
        /// The configuration file of `smt run` (brokers, group, routes).
        #[arg(long)]
        config: PathBuf,
        /// The route's name (`[[routes]] name`, default its transform's name).
        #[arg(long)]
        route: String,
        /// earliest, latest or an offset (the same for every partition).
        #[arg(
            long,
            value_name = "earliest|latest|N",
            conflicts_with = "to_time",
            required_unless_present = "to_time"
        )]
        to_offset: Option<String>,
        /// The first record at or after this time: RFC 3339 or ms since the epoch.
        #[arg(long, value_name = "TIME")]
        to_time: Option<String>,
        /// Only this partition of the route's topics.
        #[arg(long)]
        partition: Option<i32>,
        /// Show what would move; commit nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The dead-letter topic.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Start a transform project: source, build script, contract, sample records and a test.
    New {
        /// The project directory to create; its name names the transform.
        path: PathBuf,
        /// The language: rust, python, js, c or go.
        #[arg(long, default_value = "rust")]
        lang: smt_host::scaffold::Lang,
        /// Rust: the smt-guest SDK directory; Go: the Go SDK directory, guest-transforms/go (default: the repository smt was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Run dead-lettered records through their route's current transform and
    /// write them, per source partition in order. A record whose key has a
    /// newer record already written is skipped (never older over newer);
    /// one that fails again goes back to the DLQ with `smt.replay.attempt`.
    /// One JSON line per record, then a summary. Exit code 0: every record
    /// replayed or skipped; 1: some failed again or had no origin headers.
    Replay {
        /// The configuration file of `smt run` ([dlq], routes, transforms, MongoDB).
        #[arg(long)]
        config: PathBuf,
        /// Only the records of this route.
        #[arg(long)]
        route: Option<String>,
        /// First DLQ offset (every partition of the DLQ topic): earliest, latest or N.
        #[arg(long, conflicts_with = "from_time")]
        from_offset: Option<String>,
        /// First DLQ record at or after this time (RFC 3339 or ms since the epoch).
        #[arg(long)]
        from_time: Option<String>,
        /// End DLQ offset, exclusive: earliest, latest or N.
        #[arg(long, conflicts_with = "to_time")]
        to_offset: Option<String>,
        /// End at the first DLQ record at or after this time.
        #[arg(long)]
        to_time: Option<String>,
        /// Print what each record would become (the `smt test` format); write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `--x-offset` or `--x-time`, parsed.
fn target(
    offset: Option<String>,
    time: Option<String>,
) -> anyhow::Result<Option<smt_host::offsets::Target>> {
    use smt_host::offsets::Target;
    Ok(match (offset, time) {
        (Some(o), _) => Some(Target::parse_offset(&o).map_err(|e| anyhow::anyhow!(e))?),
        (None, Some(t)) => Some(Target::parse_time(&t).map_err(|e| anyhow::anyhow!(e))?),
        (None, None) => None,
    })
}

/// The transform's JSON `init` config of `smt check` and `smt test`.
#[derive(clap::Args)]
struct TransformConfigArg {
    /// The transform's JSON config file, handed to `init` (default: `{}`).
    #[arg(long = "transform-config", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Deprecated spelling of `--transform-config` (`--config` is the TOML
    /// pipeline file of `smt run`).
    #[arg(long = "config", hide = true, conflicts_with = "file")]
    legacy: Option<PathBuf>,
}

impl TransformConfigArg {
    /// The config file's JSON text, if one was named.
    fn read(self) -> anyhow::Result<Option<String>> {
        if self.legacy.is_some() {
            eprintln!(
                "warning: `--config` of `smt check`/`smt test` is deprecated: use `--transform-config` \
                 (`--config` names the pipeline's TOML file of `smt run`)"
            );
        }
        self.file.or(self.legacy).map(read_config).transpose()
    }
}

/// Exit codes (README, "Using smt"): 0 success; 1 failed while running (the
/// pipeline stopped on an error, `smt test` had a record fail, an
/// `smt doctor` check failed); 2 could not start (configuration, services,
/// transform); 64 usage error (EX_USAGE).
const EXIT_CANNOT_START: u8 = 2;
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    init_logging();
    let version = version_text();
    let parsed = Cli::command()
        .version(leak(version.short))
        .long_version(leak(version.long))
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            return if usage {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS // --help, --version
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_CANNOT_START)
        }
    }
}

/// `smt -V`: the version and librdkafka's; `smt --version`: also
/// librdkafka's built-in features (TLS, SASL mechanisms, codecs).
struct VersionText {
    short: String,
    long: String,
}

/// clap keeps `&'static str` versions (without its `string` feature); built once.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn version_text() -> VersionText {
    let lib = smt_host::kafka::librdkafka();
    let short = format!("{} (librdkafka {})", env!("CARGO_PKG_VERSION"), lib.version);
    let mut long = format!(
        "{short}\nlibrdkafka builtin.features: {}",
        lib.features.join(",")
    );
    let missing = lib.missing();
    if !missing.is_empty() {
        long.push_str(&format!("\nmissing: {}", missing.join(", ")));
    }
    VersionText { short, long }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => run_pipeline(&config),
        Command::Doctor { config, timeout } => {
            let config = smt_host::config::Config::load(&config)?;
            let checks = smt_host::doctor::run(
                &config,
                std::time::Duration::from_secs(timeout.max(1)),
                |c| println!("{}", c.line()),
            );
            let failed = checks.iter().filter(|c| !c.ok).count();
            if failed == 0 {
                println!("all {} checks passed", checks.len());
                Ok(ExitCode::SUCCESS)
            } else {
                println!("{failed} of {} checks failed", checks.len());
                Ok(ExitCode::from(1))
            }
        }
        Command::Status { admin, token, json } => {
            use smt_host::status::cli;
            let (report, text) = cli::fetch(&admin, token.as_deref())?;
            if json {
                println!("{text}");
            } else {
                print!("{}", cli::render(&report));
            }
            Ok(match cli::verdict(&report) {
                cli::Verdict::Healthy => ExitCode::SUCCESS,
                cli::Verdict::Unhealthy => ExitCode::from(1),
            })
        }
        Command::Reset {
            config,
            route,
            to_offset,
            to_time,
            partition,
            dry_run,
        } => {
            use smt_host::offsets::{self, Target};
            let config = smt_host::config::Config::load(&config)?;
            let target = match (to_offset, to_time) {
                (Some(o), _) => Target::parse_offset(&o),
                (None, Some(t)) => Target::parse_time(&t),
                (None, None) => Err("give --to-offset or --to-time".to_owned()),
            }
            .map_err(|e| anyhow::anyhow!(e))?;
            let moves = offsets::reset(
                &config,
                &offsets::Reset {
                    route: &route,
                    target,
                    partition,
                    dry_run,
                    timeout: std::time::Duration::from_secs(10),
                },
            )?;
            for m in &moves {
                println!(
                    "{}/{}: {} -> {} (holds {}..{})",
                    m.topic,
                    m.partition,
                    m.from.map_or_else(|| "none".to_owned(), |o| o.to_string()),
                    m.to,
                    m.low,
                    m.high
                );
            }
            println!(
                "{} {} partition(s) of route `{route}` for group `{}`",
                if dry_run { "would move" } else { "moved" },
                moves.len(),
                config.kafka.group_id
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Dlq {
            command:
                DlqCommand::Replay {
                    config,
                    route,
                    from_offset,
                    from_time,
                    to_offset,
                    to_time,
                    dry_run,
                },
        } => {
            let config = smt_host::config::Config::load(&config)?;
            let opts = smt_host::replay::Options {
                route: route.as_deref(),
                from: target(from_offset, from_time)?,
                to: target(to_offset, to_time)?,
                dry_run,
                timeout: std::time::Duration::from_secs(15),
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let report = runtime.block_on(async {
                let mut stdout = std::io::stdout();
                smt_host::replay::replay(&config, &opts, &mut stdout).await
            });
            let report = match report {
                Ok(r) => r,
                Err(e) => {
                    // As `smt run`: exit before dropping the runtime under the driver.
                    eprintln!("error: {e:#}");
                    std::process::exit(EXIT_CANNOT_START.into());
                }
            };
            println!("{}", report.summary(dry_run));
            let clean = report.failed_again.is_empty() && report.no_origin.is_empty();
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Check { transform, config } => {
            let config = config.read()?;
            let module = offline::check(&offline::engine()?, &transform, config.as_deref())?;
            println!(
                "ok: {} implements smt:transform@{} (version {}, {:?} in {:.1} ms)",
                transform.display(),
                module.contract_version(),
                module.version(),
                module.origin(),
                module.load_time().as_secs_f64() * 1e3
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Test {
            transform,
            config,
            input,
            schemas,
        } => {
            let config = config.read()?.unwrap_or_else(|| "{}".to_owned());
            let schemas = schemas
                .map(|d| smt_host::decode::SchemaDir::open(&d))
                .transpose()?;
            let engine = offline::engine()?;
            let stdout = std::io::stdout().lock();
            let failures = match input.filter(|p| p.as_os_str() != "-") {
                Some(path) => {
                    let file = std::fs::File::open(&path)
                        .with_context(|| format!("cannot open the input {}", path.display()))?;
                    offline::test(
                        &engine,
                        &transform,
                        &config,
                        schemas.as_ref(),
                        BufReader::new(file),
                        stdout,
                    )?
                }
                None => offline::test(
                    &engine,
                    &transform,
                    &config,
                    schemas.as_ref(),
                    std::io::stdin().lock(),
                    stdout,
                )?,
            };
            // Failures are results, printed per record; the exit code tells CI.
            Ok(if failures == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::New { path, lang, sdk } => {
            smt_host::scaffold::create(&path, lang, sdk.as_deref())?;
            println!(
                "created {} ({}): cd {} && ./build.sh && ./test.sh",
                path.display(),
                lang.name(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `smt run`. Exit codes: 0 after a requested shutdown, 1 when the pipeline
/// stopped on an error, 2 when it could not start (config, services, modules).
fn run_pipeline(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    use smt_host::app::{self, Outcome};
    use smt_host::config::Config;

    let config = Config::load(path)?;
    let prepared = app::prepare(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("smt-worker")
        .build()
        .context("starting the async runtime")?;
    let outcome = match runtime.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        tokio::spawn(wait_for_signals(shutdown.clone()));
        app::run(prepared, shutdown).await
    }) {
        Ok(outcome) => outcome,
        Err(err) => {
            // Could not start: nothing was consumed or committed. Exit now
            // instead of dropping the runtime under the MongoDB driver's
            // background tasks, which panic (`connection_requester.rs`,
            // `SendError`) when their pool worker is dropped first.
            eprintln!("error: {err:#}");
            std::process::exit(EXIT_CANNOT_START.into());
        }
    };
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match outcome {
        Outcome::Stopped => {
            tracing::info!("Stopped.");
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Failed(message) => {
            eprintln!("error: {message}");
            Ok(ExitCode::from(1))
        }
    }
}

/// The first SIGTERM/SIGINT starts a graceful shutdown; a second one exits at once.
async fn wait_for_signals(shutdown: tokio_util::sync::CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("Cannot install signal handlers.");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = shutdown.cancelled() => return,
    }
    tracing::info!("Signal received: finishing the batches in flight, committing, exiting.");
    shutdown.cancel();
    // A signal sent to the process group can arrive twice at once (`timeout`
    // does that): only a signal a second later means "do not wait".
    let first = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        if first.elapsed() > std::time::Duration::from_secs(1) {
            break;
        }
    }
    eprintln!("error: second signal: exiting without waiting");
    std::process::exit(130);
}

fn read_config(path: PathBuf) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the config {}", path.display()))?;
    serde_json::from_str::<serde_json::Value>(&text)
        .with_context(|| format!("the config {} is not JSON", path.display()))?;
    Ok(text)
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SMT_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
