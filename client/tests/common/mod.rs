//! Real broker processes for the admin client's tests: one standalone broker,
//! or a cluster whose every broker votes in the metadata quorum.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The broker binary: SKEIN_BROKER_BIN (the Makefile exports it), else the release build.
fn broker_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SKEIN_BROKER_BIN") {
        return p.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("release/skein-broker");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --release -p skein-broker` or set SKEIN_BROKER_BIN",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Brokers 0..n-1 on loopback, killed (and their data removed) on drop.
pub struct Cluster {
    pub children: Vec<Option<Child>>,
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

/// Timings short enough for tests, as the client tests in Python use.
const FAST: &[&str] = &[
    "broker.heartbeat.interval.ms=100",
    "broker.session.timeout.ms=1500",
    "replica.lag.time.max.ms=2000",
    "controller.quorum.election.timeout.ms=300",
    "replica.fetch.backoff.ms=100",
    "replica.fetch.wait.max.ms=200",
];

impl Cluster {
    pub fn start(n: usize, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let controller_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let voters: Vec<String> = controller_ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{i}@127.0.0.1:{p}"))
            .collect();
        let mut children = Vec::new();
        for i in 0..n {
            let data = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&data).unwrap();
            let mut settings = vec![
                format!("log.dirs={}", data.display()),
                format!("node.id={i}"),
                // No HTTP endpoint: its port would be one more that parallel tests could collide on.
                "http.listener=".to_string(),
            ];
            if n == 1 {
                settings.push(format!("listeners=PLAINTEXT://127.0.0.1:{}", ports[i]));
            } else {
                settings.push(format!(
                    "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                    ports[i], controller_ports[i]
                ));
                settings.push(format!("controller.quorum.voters={}", voters.join(",")));
                settings.extend(FAST.iter().map(|s| s.to_string()));
            }
            settings.extend(extra.iter().map(|s| s.to_string()));
            let mut cmd = Command::new(broker_bin());
            for s in &settings {
                cmd.arg("--set").arg(s);
            }
            let log = std::fs::File::create(dir.path().join(format!("node{i}.log"))).unwrap();
            cmd.stdout(Stdio::null()).stderr(log);
            children.push(Some(cmd.spawn().expect("spawn skein-broker")));
        }
        let t0 = Instant::now();
        for p in &ports {
            // A connect from an ephemeral port equal to *p reaches itself: not the broker.
            while !TcpStream::connect(("127.0.0.1", *p)).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok()) {
                assert!(
                    t0.elapsed() < Duration::from_secs(60),
                    "broker on port {p} did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Cluster {
            children,
            ports,
            _dir: dir,
        }
    }

    pub fn bootstrap(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills broker `i` (SIGKILL, no controlled shutdown).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}
