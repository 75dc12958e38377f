//! The import rule of docs/ARCHITECTURE.md, checked: arrows point one way,
//! protocol → handlers → cluster → log/replication/group/controller → model.
//! A lower part that names a higher one fails here, with the file and line.

use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Lines of `part` (a folder or file of broker/src) that import one of `forbidden`.
fn violations(part: &str, forbidden: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(part);
    let mut files = Vec::new();
    if root.is_file() {
        files.push(root);
    } else {
        sources(&root, &mut files);
    }
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for m in forbidden {
                if code.contains(&format!("crate::{m}")) {
                    found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn lower_parts_never_import_the_ones_above_them() {
    let above_storage = ["cluster", "protocol", "server", "group", "replication", "controller"];
    let mut all = Vec::new();
    all.extend(violations("log", &above_storage));
    all.extend(violations("config", &above_storage));
    for part in ["group", "replication", "controller", "txn", "coordinator.rs"] {
        all.extend(violations(part, &["cluster", "protocol", "server"]));
    }
    all.extend(violations("cluster", &["protocol", "server", "http"]));
    // Security knows configs and certificates, not requests or the broker.
    all.extend(violations("security", &above_storage));
    // Metrics record; they know nothing of what records into them.
    all.extend(violations("metrics.rs", &above_storage));
    for part in ["protocol", "log", "group", "replication", "controller", "config"] {
        all.extend(violations(part, &["http", "server"]));
    }
    assert!(all.is_empty(), "imports against the layering:\n{}", all.join("\n"));
}

#[test]
fn handlers_import_the_handler_trait_module_not_the_dispatch_table() {
    let found: Vec<String> = violations("protocol/handlers", &["protocol::{"])
        .into_iter()
        // ApiVersions describes the dispatch table itself.
        .filter(|l| !l.contains("api_versions.rs"))
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn handlers_reach_the_broker_only_through_the_parts_of_their_request_context() {
    // A handler names `RequestContext` and the parts it hands out
    // (`cluster/parts.rs`), never the `Broker` object: what a Kafka API can
    // touch is written in one place, where the authorizer joins.
    let mut found = Vec::new();
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/protocol/handlers"),
        &mut files,
    );
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let names_broker = code
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|word| word == "Broker");
            if names_broker {
                found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "handlers naming the Broker:\n{}", found.join("\n"));
}

#[test]
fn the_model_crate_does_no_io_and_runs_nothing() {
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/Cargo.toml")).unwrap();
    let deps = manifest.split("[dependencies]").nth(1).unwrap_or("");
    let deps = deps.split("\n[").next().unwrap_or("");
    for forbidden in ["tokio", "openraft", "tonic", "kafka-protocol", "skein-"] {
        assert!(!deps.contains(forbidden), "skein-model depends on {forbidden}");
    }
    let mut files = Vec::new();
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/src"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for word in ["std::fs", "std::net", "std::thread", "std::process"] {
            assert!(!text.contains(word), "{} uses {word}", f.display());
        }
    }
}

#[test]
fn pure_cores_do_no_io_and_read_no_clock() {
    // The rules the fault tier found broken (ISR expansion, pre-vote) are pure,
    // so their tests drive them with explicit times.
    for part in [
        "controller/pre_vote.rs",
        "controller/image.rs",
        "replication/isr.rs",
        "log/batch.rs",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(part);
        let text = std::fs::read_to_string(&path).unwrap();
        for word in ["tokio", "Instant::now", "SystemTime", "now_ms(", "std::fs", "std::net"] {
            assert!(!text.contains(word), "{part} uses {word}");
        }
    }
}
