//! `skein-broker`: runs one Kafka-compatible broker (and its metadata quorum node).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use skein_broker::cluster::{self, Broker};
use skein_broker::config::BrokerConfig;
use skein_broker::controller::Controller;
use skein_broker::log::meta_properties;
use skein_broker::server;

/// A Kafka-compatible broker. Configuration uses Kafka's property names.
#[derive(Parser)]
#[command(name = "skein-broker", version)]
struct Args {
    /// A server.properties file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Sets one property, overriding the file (repeatable): --set log.dirs=/var/lib/skein
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// A SCRAM user to create at start-up if it does not exist yet, as Kafka's
    /// `kafka-storage format --add-scram`: 'SCRAM-SHA-256=[name=alice,password=alice-secret]'
    /// (repeatable). Prefer --add-scram-file: a command line is visible to other processes.
    #[arg(long = "add-scram", value_name = "CREDENTIAL")]
    add_scram: Vec<String>,
    /// A file with one --add-scram credential per line (a mounted Secret, say).
    #[arg(long = "add-scram-file", value_name = "FILE")]
    add_scram_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    match raise_open_file_limit() {
        Ok(limit) => tracing::info!(
            segment_files_open_at_most = skein_broker::log::open_files::budget(),
            "open files limit {limit}"
        ),
        Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
    }
    let config = match BrokerConfig::load(args.config.as_deref(), &args.sets) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skein-broker: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skein-broker: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut scram = Vec::new();
    let file_lines = match &args.add_scram_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from)
                .collect(),
            Err(e) => {
                eprintln!("skein-broker: cannot read --add-scram-file {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => Vec::new(),
    };
    for arg in args.add_scram.iter().chain(&file_lines) {
        match skein_broker::security::scram::parse_add_scram(arg) {
            Ok(c) => scram.push(c),
            Err(e) => {
                eprintln!("skein-broker: --add-scram: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let result = runtime.block_on(run(config, scram));
    // Everything is durable by now: tasks still parked (fetchers' sockets, the
    // quorum's timers) are not waited for, so a stop takes no longer than it must.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skein-broker: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft limit on open files to the hard limit. Segment files are
/// kept open up to half of it (`log::open_files`; Kafka's operators are told
/// to raise `nofile` for the same reason), and a process commonly starts with
/// a soft limit of 1,024 under a hard one a thousand times higher.
fn raise_open_file_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write only the struct passed,
    // which lives for both calls. std has no rlimit API, hence libc.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// A SCRAM credential to create at start-up.
type AddScram = (
    String,
    skein_broker::security::scram::Mechanism,
    skein_broker::security::scram::ScramCredential,
);

async fn run(config: BrokerConfig, add_scram: Vec<AddScram>) -> std::io::Result<()> {
    let started = std::time::Instant::now();
    // Before anything is written to the log dir: is it ours?
    meta_properties::ensure(&config.log_dir(), &config.cluster_id(), config.node_id())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    // TLS stores read and checked before anything starts: a bad one stops start-up.
    let tls = skein_broker::security::tls::listeners(&config).map_err(|e| std::io::Error::other(e.to_string()))?;
    let sasl = skein_broker::security::sasl::listeners(&config).map_err(std::io::Error::other)?;
    let controller = Controller::start(&config).await?;
    let c = config.clone();
    let broker = cluster::blocking(move || Broker::open(c, controller)).await?;
    // Up before the logs are opened, so probes and /v1/status see start-up progress.
    let http = match config.http_listener() {
        Some((host, port)) => {
            let listener = tokio::net::TcpListener::bind((host.as_str(), port))
                .await
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("cannot listen on {host}:{port} (http.listener): {e}"))
                })?;
            tracing::info!(node_id = broker.node_id, "http endpoint on {}", listener.local_addr()?);
            Some(tokio::spawn(skein_broker::http::serve(broker.clone(), listener)))
        }
        None => None,
    };
    broker.start().await?;
    // Before any listener opens: the first SCRAM users (kept if they exist).
    for (user, mechanism, credential) in add_scram {
        let cmd = skein_broker::controller::image::Command::UpsertScramCredential {
            user: user.clone(),
            mechanism,
            credential,
            only_if_absent: true,
        };
        broker
            .metadata()
            .propose(cmd)
            .await
            .map_err(|e| std::io::Error::other(format!("--add-scram for {user}: {e}")))?;
        tracing::info!("SCRAM credential {} for {user} present", mechanism.name());
    }
    let mut servers = Vec::new();
    let admission = server::Admission::new(&config);
    let advertised = config.advertised_listeners();
    for l in config.listeners() {
        let host = if l.host.is_empty() {
            "0.0.0.0".to_string()
        } else {
            l.host.clone()
        };
        let listener = tokio::net::TcpListener::bind((host.as_str(), l.port))
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {host}:{}: {e}", l.port)))?;
        let told = advertised
            .iter()
            .find(|a| a.name == l.name)
            .map_or(String::new(), |a| format!("{}:{}", a.host, a.port));
        tracing::info!(
            node_id = broker.node_id,
            "listener {} on {} (advertised as {told}), started in {} ms",
            l.name,
            listener.local_addr()?,
            started.elapsed().as_millis()
        );
        let name: std::sync::Arc<str> = l.name.clone().into();
        let tls = tls.iter().find(|(n, _)| *n == l.name).map(|(_, t)| t.clone());
        if let Some(t) = &tls {
            let source = Some(broker.tls_settings_source(&l.name));
            if l.name == config.inter_broker_listener_name() {
                // Its stores are also what this broker presents to its peers.
                let b = broker.clone();
                servers.push(tokio::spawn(
                    t.clone().watch_with(source, move || b.reload_inter_broker_security()),
                ));
            } else {
                servers.push(tokio::spawn(t.clone().watch_with(source, || {})));
            }
        }
        servers.push(tokio::spawn(server::serve(
            broker.clone(),
            name,
            listener,
            admission.clone(),
            tls,
            sasl.iter().find(|(n, _)| *n == l.name).map(|(_, s)| s.clone()),
        )));
    }
    broker.spawn_background();
    skein_broker::group::GroupCoordinator::spawn_timer(&broker);
    skein_broker::txn::TransactionCoordinator::spawn_timer(&broker);
    wait_for_signal().await;
    tracing::info!("shutting down");
    broker.controlled_shutdown().await;
    for s in &servers {
        s.abort();
    }
    if let Some(h) = &http {
        h.abort();
    }
    let b = broker.clone();
    cluster::blocking(move || b.shutdown()).await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
