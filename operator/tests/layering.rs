//! The operator's import rules (docs/ARCHITECTURE.md), checked: the pure parts
//! (validate, decide, build, status, scale, roll, plan) never reach the API server or Kafka, and
//! of the broker crate the operator uses only its config parser.

use std::path::Path;

fn source(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(rel)).unwrap()
}

fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.split("//").next().unwrap_or("")))
}

#[test]
fn the_pure_parts_do_no_io() {
    // Clocks and randomness are I/O too: a pure part takes `now` and ids as inputs.
    let io = [
        "Api<",
        "Api::",
        "kube::Client",
        "Client::",
        ": Client",
        "Admin",
        ".await",
        "tokio::",
        "std::fs",
        "std::net",
        "::now(",
        "SystemTime",
        "Instant",
        "rand::",
        "thread_rng",
        "getrandom",
    ];
    let mut found = Vec::new();
    for part in [
        "cluster/validate.rs",
        "cluster/decide.rs",
        "cluster/events.rs",
        "cluster/build.rs",
        "cluster/status.rs",
        "cluster/scale.rs",
        "cluster/roll.rs",
        "cluster/listeners.rs",
        "cluster/init.rs",
        "certificates/plan.rs",
        "topic/plan.rs",
        "user/plan.rs",
    ] {
        for (n, line) in code_lines(&source(part)) {
            for m in io {
                if line.contains(m) {
                    found.push(format!("{part}:{n}: {}", line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "I/O in a pure part:\n{}", found.join("\n"));
}

#[test]
fn of_the_broker_only_its_config_parser_is_used() {
    let mut found = Vec::new();
    let mut files = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in code_lines(&text) {
            if line.contains("skein_broker::") && !line.contains("skein_broker::config::") {
                found.push(format!("{}:{n}: {}", f.display(), line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the operator reaches into the broker:\n{}",
        found.join("\n")
    );
}
