//! The `hookgate` command line: parse arguments, load config, set up logging,
//! run a command, and map the outcome to an exit code. Everything else lives
//! in the library.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use hookgate::config::{self, LoadOptions, Loaded};

/// mimalloc instead of the system allocator: the request path allocates many
/// small, short-lived objects, where glibc's malloc showed up at about a fifth
/// of the CPU profile under load (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hookgate",
    version,
    propagate_version = true,
    about = "A rule-based webhook gateway",
    long_about = "A rule-based webhook gateway: verify a provider's signed events, route them by \
                  the rules of a YAML file, store them durably, and deliver them, re-signed, to \
                  HTTP endpoints, Slack and email, with retries and a dead-letter queue."
)]
struct Cli {
    /// Log format (stderr). The filter comes from HOOKGATE_LOG (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate a config file; print a summary and any warnings.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Leave unset ${VAR}s as their literal text (validate without secrets).
        #[arg(long)]
        allow_missing_env: bool,
    },
    /// Dry-run one event: matching routes, targets, and what each would be sent.
    Route {
        #[command(flatten)]
        config: ConfigArg,
        /// Leave unset ${VAR}s as their literal text.
        #[arg(long)]
        allow_missing_env: bool,
        /// Route as if this source received the event (default: the first).
        #[arg(long)]
        source: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// The event body (JSON), or `-` for standard input.
        event: String,
    },
    /// Run rule tests: each case's event through the routes, checked
    /// against what it expects. Exit 1 if any case fails.
    Test {
        #[command(flatten)]
        config: ConfigArg,
        /// Leave unset ${VAR}s as their literal text.
        #[arg(long)]
        allow_missing_env: bool,
        /// The tests file (YAML).
        tests: PathBuf,
    },
    /// Print the x-signature (hex HMAC-SHA256) of a body.
    Sign {
        #[command(flatten)]
        secret: SecretArgs,
        /// The body file, or `-` for standard input.
        #[arg(default_value = "-")]
        file: String,
    },
    /// Sign a body and POST it to URL; print the status and the response.
    Send {
        /// Where to POST (e.g. http://127.0.0.1:8080/webhooks/outrival).
        url: String,
        #[command(flatten)]
        secret: SecretArgs,
        /// The body file, or `-` for standard input.
        file: String,
    },
    /// Print a shell completion script (e.g. `hookgate completions bash >
    /// /etc/bash_completion.d/hookgate`).
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `hookgate man | man -l -`.
    Man {
        /// A command's own page (`hookgate man serve` is hookgate-serve(1));
        /// without one, hookgate(1).
        command: Option<String>,
        /// Write hookgate.1 and every command's page into this directory
        /// (e.g. /usr/local/share/man/man1) instead of printing one.
        #[arg(long, value_name = "DIR", conflicts_with = "command")]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Args)]
struct ConfigArg {
    /// The config file.
    #[arg(
        short = 'c',
        long = "config",
        env = "HOOKGATE_CONFIG",
        default_value = "rules.yaml"
    )]
    path: PathBuf,
}

/// Where the signing secret comes from (argv is visible to other users:
/// prefer --secret-env or --secret-file).
#[derive(Args)]
#[group(required = true, multiple = false)]
struct SecretArgs {
    /// The secret itself.
    #[arg(long)]
    secret: Option<String>,
    /// The name of an environment variable holding the secret.
    #[arg(long)]
    secret_env: Option<String>,
    /// A file holding the secret (one trailing newline is ignored).
    #[arg(long)]
    secret_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let result = match cli.command {
        Command::Serve { config } => serve(&config.path),
        Command::Check {
            config,
            allow_missing_env,
        } => check(&config.path, allow_missing_env),
        Command::Route {
            config,
            allow_missing_env,
            source,
            format,
            event,
        } => route(
            &config.path,
            allow_missing_env,
            source.as_deref(),
            format,
            &event,
        ),
        Command::Test {
            config,
            allow_missing_env,
            tests,
        } => rule_tests(&config.path, allow_missing_env, &tests),
        Command::Sign { secret, file } => sign(&secret, &file),
        Command::Send { url, secret, file } => send(&url, &secret, &file),
        Command::Completions { shell } => completions(shell),
        Command::Man { command, out_dir } => man(command.as_deref(), out_dir.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Load a config, printing every diagnostic on failure.
fn load(path: &Path, allow_missing_env: bool) -> Option<Loaded> {
    match config::load_file(path, &LoadOptions::from_process_env(allow_missing_env)) {
        Ok(loaded) => Some(loaded),
        Err(e) => {
            eprintln!("{e}");
            let n = e.errors().count();
            eprintln!(
                "{}: {n} error{} found",
                path.display(),
                if n == 1 { "" } else { "s" }
            );
            None
        }
    }
}

fn serve(path: &Path) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load(path, false) else {
        return Ok(ExitCode::FAILURE);
    };
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listeners = hookgate::Listeners::bind(&loaded.config).await?;
        hookgate::run(loaded.config, listeners, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn check(path: &Path, allow_missing_env: bool) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load(path, allow_missing_env) else {
        return Ok(ExitCode::FAILURE);
    };
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    println!("{}", hookgate::config::summary(&loaded.config));
    Ok(ExitCode::SUCCESS)
}

fn route(
    path: &Path,
    allow_missing_env: bool,
    source: Option<&str>,
    format: OutputFormat,
    event: &str,
) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load(path, allow_missing_env) else {
        return Ok(ExitCode::FAILURE);
    };
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    let body = read_body(event)?;
    let preview = hookgate::preview::preview(&loaded.config, &body, source)
        .with_context(|| format!("cannot route {event}"))?;
    match format {
        OutputFormat::Text => print!("{}", preview.to_text()),
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&preview).context("cannot print the preview")?
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn rule_tests(path: &Path, allow_missing_env: bool, tests: &Path) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load(path, allow_missing_env) else {
        return Ok(ExitCode::FAILURE);
    };
    let cases = hookgate::rule_tests::load(tests)?;
    let outcomes = hookgate::rule_tests::run(&loaded.config, &cases);
    print!("{}", hookgate::rule_tests::report(&outcomes));
    Ok(if outcomes.iter().all(|o| o.passed()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn read_secret(args: &SecretArgs) -> anyhow::Result<String> {
    if let Some(s) = &args.secret {
        return Ok(s.clone());
    }
    if let Some(var) = &args.secret_env {
        return std::env::var(var)
            .with_context(|| format!("environment variable {var} is not set"));
    }
    if let Some(path) = &args.secret_file {
        let mut s = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the secret file {}", path.display()))?;
        if s.ends_with('\n') {
            s.pop();
            if s.ends_with('\r') {
                s.pop();
            }
        }
        return Ok(s);
    }
    bail!("give the secret with --secret, --secret-env or --secret-file")
}

fn read_body(file: &str) -> anyhow::Result<Vec<u8>> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read the body from standard input")?;
        Ok(buf)
    } else {
        std::fs::read(file).with_context(|| format!("cannot read the body file {file}"))
    }
}

fn sign(secret: &SecretArgs, file: &str) -> anyhow::Result<ExitCode> {
    let secret = read_secret(secret)?;
    let body = read_body(file)?;
    println!("{}", hookgate::signing::sign_hex(secret.as_bytes(), &body));
    Ok(ExitCode::SUCCESS)
}

fn send(url: &str, secret: &SecretArgs, file: &str) -> anyhow::Result<ExitCode> {
    let secret = read_secret(secret)?;
    let body = read_body(file)?;
    let signature = hookgate::signing::sign_hex(secret.as_bytes(), &body);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .user_agent(hookgate::targets::request::USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot build the HTTP client")?;
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach {url}: {}", e.without_url()))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        println!("{status}");
        if !text.is_empty() {
            println!("{text}");
        }
        Ok(if status.is_success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

/// `hookgate completions SHELL`: the script on stdout. Rendered into memory
/// first: clap_complete panics on a failed write (a closed pipe).
fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "hookgate", &mut script);
    std::io::Write::write_all(&mut std::io::stdout(), &script)
        .context("cannot write the completion script")?;
    Ok(ExitCode::SUCCESS)
}

/// Sections clap does not know about, appended to hookgate(1).
const MAN_EXTRA: &str = r#".SH ENVIRONMENT
.TP
\fBHOOKGATE_CONFIG\fR
The config file when \fB\-c\fR is not given (default \fIrules.yaml\fR).
.TP
\fBHOOKGATE_LOG\fR
The log filter, in tracing's EnvFilter syntax (default \fIinfo\fR). Logs go to standard error.
.TP
\fB${VAR}\fR
Every variable the config file names in a \fB${VAR}\fR or \fB${VAR:\-default}\fR.
.SH SIGNALS
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop accepting, let requests and attempts in flight finish within \fBserver.shutdown_timeout\fR, exit 0.
.TP
\fBSIGHUP\fR
Reload the config file (an invalid file changes nothing).
.SH EXIT STATUS
0 on success (\fBserve\fR: a clean shutdown; \fBcheck\fR: a valid file; \fBtest\fR: every case
passed; \fBsend\fR: a 2xx answer), 2 on a usage error (an unknown command or flag), 1 otherwise,
with the reason on standard error.
.SH SEE ALSO
docs/rules.md (every config key), docs/operations.md (running, reloading, metrics, alerts),
docs/security.md, docs/targets.md, and deploy/ for Docker, Kubernetes and systemd,
in the hookgate repository.
"#;

/// `hookgate man [COMMAND]`: one page on stdout, or every page into `out_dir`.
fn man(command: Option<&str>, out_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    // Built, so each command's page is titled hookgate-NAME; no `help`
    // command, whose page would only repeat --help.
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    if let Some(dir) = out_dir {
        let cannot = || format!("cannot write the manual pages into {}", dir.display());
        clap_mangen::generate_to(cli, dir).with_context(cannot)?;
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("hookgate.1"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, MAN_EXTRA.as_bytes()))
            .with_context(cannot)?;
        println!("wrote the manual pages into {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let mut page = Vec::new();
    match command {
        None => {
            clap_mangen::Man::new(cli)
                .render(&mut page)
                .context("cannot render the manual page")?;
            page.extend_from_slice(MAN_EXTRA.as_bytes());
        }
        Some(name) => {
            let Some(sub) = cli.find_subcommand(name).cloned() else {
                let names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
                bail!("no command `{name}`; the commands are {}", names.join(", "));
            };
            clap_mangen::Man::new(sub)
                .render(&mut page)
                .context("cannot render the manual page")?;
        }
    }
    std::io::Write::write_all(&mut std::io::stdout(), &page)
        .context("cannot write the manual page")?;
    Ok(ExitCode::SUCCESS)
}
