//! `skein-operator`: runs Skein clusters on Kubernetes.
//!
//! `run` reconciles KafkaCluster, Topic and KafkaUser resources; `crd` prints the
//! CustomResourceDefinitions (`crds/`); `render` prints the objects a
//! KafkaCluster file would get, without a cluster.

mod broker_init;
mod certificates;
mod cluster;
mod console;
mod context;
mod crd;
mod error;
mod leader;
mod telemetry;
mod topic;
mod user;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures::stream::{BoxStream, SelectAll};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::runtime::{watcher, Controller};
use kube::{Api, Client};

use cluster::build::Settings;
use crd::{KafkaCluster, KafkaUser, Topic};

#[derive(Parser)]
#[command(
    name = "skein-operator",
    version,
    about = "Runs Skein (Kafka-compatible) clusters on Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reconciles KafkaCluster and Topic resources until stopped.
    Run(Box<RunArgs>),
    /// Prints the CustomResourceDefinitions as YAML.
    Crd,
    /// A broker pod's init container: writes its rack and external addresses.
    BrokerInit(broker_init::Args),
    /// Prints the objects a KafkaCluster (YAML file) gets, without a cluster.
    Render {
        file: PathBuf,
        #[arg(long, default_value = "policy/v1")]
        pdb_api_version: String,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Namespaces to watch (repeat); all namespaces when none is given.
    #[arg(long = "namespace", env = "SKEIN_OPERATOR_NAMESPACES", value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// Image of brokers whose KafkaCluster names none.
    #[arg(long, env = "SKEIN_BROKER_IMAGE", default_value = crd::DEFAULT_IMAGE)]
    broker_image: String,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Seconds between checks of a Ready topic against its resource (drift).
    #[arg(long, default_value_t = 60)]
    drift_interval_seconds: u64,
    /// Seconds partition moves in flight may go without progress before the
    /// scale is reported as stalled (it is waited on, never skipped).
    #[arg(long, default_value_t = 300)]
    stall_seconds: u64,
    /// Seconds a Secret change takes to reach every pod (the kubelet's sync
    /// period and cache) and be reloaded: a CA replacement waits this long
    /// before moving certificates to the new key, and again before dropping the old one.
    #[arg(long, default_value_t = 180)]
    secret_propagation_seconds: u64,
    /// Elect a leader through a Lease, so replicas can run side by side.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    #[arg(long, default_value = "skein-operator")]
    lease_name: String,
    /// This replica's name in the Lease and in Events.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Log filter (`info`, `skein_operator=debug,kube=info`).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log_level: String,
    /// `text` or `json` logs.
    #[arg(long, default_value = "text")]
    log_format: String,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", crd::crds_yaml());
            std::process::ExitCode::SUCCESS
        }
        Command::Render { file, pdb_api_version } => match render(&file, pdb_api_version) {
            Ok(yaml) => {
                print!("{yaml}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("skein-operator render: {e}");
                std::process::ExitCode::from(2)
            }
        },
        Command::BrokerInit(args) => {
            telemetry::init_logging("info", false);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            match rt.block_on(broker_init::run(args)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("skein-operator broker-init: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::Run(args) => {
            telemetry::init_logging(&args.log_level, args.log_format == "json");
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a tokio runtime");
            match rt.block_on(run(*args)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

fn render(file: &std::path::Path, pdb_api_version: String) -> Result<String, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let kc: KafkaCluster = serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    cluster::validate::validate(&kc, None).map_err(|e| cluster::validate::messages(&e))?;
    let settings = Settings {
        pdb_api_version,
        ..Settings::default()
    };
    Ok(cluster::build::build(&kc, &settings).to_yaml())
}

async fn run(args: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::try_default().await?;
    let metrics = Arc::new(telemetry::Metrics::default());
    let identity = args.identity.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| format!("skein-operator-{}", std::process::id()))
    });
    // Serving policy/v1 (1.21+) or only policy/v1beta1 decides the PDB's apiVersion.
    let pdb_api_version = if client.list_api_group_resources("policy/v1").await.is_ok() {
        "policy/v1"
    } else {
        "policy/v1beta1"
    };
    let version = client.apiserver_version().await?;
    let minor: u32 = version.minor.trim_end_matches('+').parse().unwrap_or(0);
    tracing::info!(version = %version.git_version, "API server");
    let settings = Settings {
        broker_image: args.broker_image.clone(),
        cluster_domain: args.cluster_domain.clone(),
        pdb_api_version: pdb_api_version.into(),
        pvc_retention_policy: version.major == "1" && minor >= 27,
    };
    let mut ctx = context::Context::new(
        client.clone(),
        settings,
        metrics.clone(),
        Duration::from_secs(args.drift_interval_seconds.max(1)),
        jiff::SignedDuration::from_secs(args.stall_seconds.max(1) as i64),
        identity.clone(),
    );
    ctx.secret_propagation = jiff::SignedDuration::from_secs(args.secret_propagation_seconds.min(86_400) as i64);
    let ctx = Arc::new(ctx);
    let namespaces: Vec<Option<String>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.iter().cloned().map(Some).collect()
    };
    // Metrics, probes and the web console (every cluster watched, read-only).
    let console = skein_console::router(Arc::new(console::OperatorConsole {
        ctx: Arc::clone(&ctx),
        namespaces: namespaces.clone(),
    }));
    tokio::spawn({
        let metrics = metrics.clone();
        let addr = args.http_addr;
        async move {
            if let Err(e) = telemetry::serve(addr, metrics, console).await {
                tracing::error!("cannot serve HTTP on {addr}: {e}");
                std::process::exit(1);
            }
        }
    });

    let elector = args
        .leader_elect
        .then(|| leader::Elector::new(client.clone(), &args.lease_namespace, &args.lease_name, &identity));
    metrics.set_ready();
    if let Some(e) = &elector {
        tracing::info!(lease = %args.lease_name, %identity, "waiting for leadership");
        e.acquire().await;
        tracing::info!(%identity, "leading");
    }
    metrics.leader.set(1);

    let mut results: SelectAll<BoxStream<'static, String>> = SelectAll::new();
    let mut stores = Vec::new();
    for ns in &namespaces {
        let api = |c: &Client| -> (Api<KafkaCluster>, Api<Topic>) {
            match ns {
                Some(ns) => (Api::namespaced(c.clone(), ns), Api::namespaced(c.clone(), ns)),
                None => (Api::all(c.clone()), Api::all(c.clone())),
            }
        };
        let (clusters, topics) = api(&client);
        let owned_api = |c: &Client| match ns {
            Some(ns) => (
                Api::<StatefulSet>::namespaced(c.clone(), ns),
                Api::<Service>::namespaced(c.clone(), ns),
                Api::<ConfigMap>::namespaced(c.clone(), ns),
            ),
            None => (Api::all(c.clone()), Api::all(c.clone()), Api::all(c.clone())),
        };
        let (sts, svc, cm) = owned_api(&client);
        let managed = watcher::Config::default().labels("app.kubernetes.io/managed-by=skein-operator");
        let cc = Controller::new(clusters, watcher::Config::default())
            .owns(sts, managed.clone())
            .owns(svc, managed.clone())
            .owns(cm, managed);
        let tc = Controller::new(topics, watcher::Config::default());
        let (users, user_secrets) = match ns {
            Some(ns) => (
                Api::<KafkaUser>::namespaced(client.clone(), ns),
                Api::<Secret>::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
        // The users' Secrets only (labelled), not every Secret of the cluster.
        let uc = Controller::new(users, watcher::Config::default())
            .owns(user_secrets, watcher::Config::default().labels(user::USER_LABEL));
        stores.push((cc.store(), tc.store(), uc.store()));
        results.push(
            uc.shutdown_on_signal()
                .run(user::reconcile, user::error_policy, ctx.clone())
                .map(|r| format!("{r:?}"))
                .boxed(),
        );
        results.push(
            cc.shutdown_on_signal()
                .run(cluster::reconcile, cluster::error_policy, ctx.clone())
                .map(|r| format!("{r:?}"))
                .boxed(),
        );
        results.push(
            tc.shutdown_on_signal()
                .run(topic::reconcile, topic::error_policy, ctx.clone())
                .map(|r| format!("{r:?}"))
                .boxed(),
        );
    }
    tokio::spawn({
        let metrics = metrics.clone();
        async move {
            loop {
                let clusters: usize = stores.iter().map(|(c, _, _)| c.state().len()).sum();
                let topics: usize = stores.iter().map(|(_, t, _)| t.state().len()).sum();
                let users: usize = stores.iter().map(|(_, _, u)| u.state().len()).sum();
                metrics.clusters.set(clusters as i64);
                metrics.topics.set(topics as i64);
                metrics.users.set(users as i64);
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    });
    let reconcile_all = async {
        while let Some(r) = results.next().await {
            tracing::debug!("reconciled: {r}");
        }
    };
    match &elector {
        Some(e) => {
            tokio::select! {
                _ = reconcile_all => {}
                _ = e.keep() => return Err("lost the leader lease; exiting so a restart rejoins the election".into()),
            }
        }
        None => reconcile_all.await,
    }
    tracing::info!("stopped");
    Ok(())
}
