//! `quotas`: produce on a broker with client quotas set (a default quota
//! every client falls under, far above what it sends, and thousands of
//! other client ids' quotas) as a ratio to a broker with none, in one run:
//! what the quota lookup and rate recording cost each request. Both brokers
//! are fresh; each is measured twice, alternately, and the better run kept.

use std::path::Path;

use skein_client::{Admin, AdminOptions, QuotaEntity};

use crate::{free_port, print_produced, produce_side_by_side, Args, Broker};

/// Quotas of other client ids, which the lookup must not be slowed by.
const OTHER_CLIENTS: usize = 2000;
/// The default client's produce quota: 10 GB/s, never reached here.
const GENEROUS: f64 = 10e9;

pub fn run(args: &Args, dir: &Path, lat_file: &Path) -> Vec<String> {
    let mut sets = vec![format!("num.partitions={}", args.partitions)];
    sets.extend(args.common_sets());
    let (open, _) = Broker::start(&args.broker, dir.join("quota-none"), free_port(), &sets);
    let (quoted, _) = Broker::start(&args.broker, dir.join("quota-set"), free_port(), &sets);
    set_quotas(&quoted.bootstrap());

    let Some([open_r, quota_r]) = produce_side_by_side(args, [&open, &quoted], "bench-quota", lat_file) else {
        return Vec::new();
    };
    let ratio = quota_r.mbps / open_r.mbps;
    let cpu_ratio = quota_r.cpu_per_gb() / open_r.cpu_per_gb();
    print_produced("produce 1024 B acks=1, no quotas", &open_r, "");
    print_produced(
        &format!("produce 1024 B acks=1, {} client quotas", OTHER_CLIENTS + 1),
        &quota_r,
        &format!("  ({ratio:.2}x the rate without quotas, {cpu_ratio:.2}x its CPU per GB)"),
    );
    vec![format!(
        r#"{{"scenario":"produce with client quotas","quotas":{},"none_mb_per_s":{:.1},"quota_mb_per_s":{:.1},"ratio":{ratio:.3},"none_cpu_s_per_gb":{:.2},"quota_cpu_s_per_gb":{:.2},"cpu_ratio":{cpu_ratio:.3}}}"#,
        OTHER_CLIENTS + 1,
        open_r.mbps,
        quota_r.mbps,
        open_r.cpu_per_gb(),
        quota_r.cpu_per_gb()
    )]
}

/// The default client-id quota and one per other client id, through AlterClientQuotas.
fn set_quotas(bootstrap: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let admin = Admin::new(bootstrap, AdminOptions::default());
        let rate = |r: f64| [("producer_byte_rate".to_string(), Some(r))];
        let default = QuotaEntity {
            user: None,
            client_id: Some(None),
        };
        admin
            .alter_client_quotas(&default, &rate(GENEROUS), false)
            .await
            .expect("default client quota");
        for i in 0..OTHER_CLIENTS {
            let other = QuotaEntity {
                user: None,
                client_id: Some(Some(format!("other-{i}"))),
            };
            admin
                .alter_client_quotas(&other, &rate(1e6), false)
                .await
                .expect("client quota");
        }
    });
}
