//! `skeinctl cluster quorum|add-voter|remove-voter`: the metadata quorum and
//! its voters, in the manner of Kafka's `kafka-metadata-quorum.sh` (describe,
//! add-controller, remove-controller). A broker that follows the metadata log
//! becomes a voter once it has caught up; a removed voter goes on following.

use serde_json::json;
use skein_client::Admin;

use crate::output::{Output, Table};
use crate::CliError;

/// A directory id from the command line; none means the node's current one.
pub fn directory(arg: Option<&str>) -> Result<uuid::Uuid, CliError> {
    match arg {
        None => Ok(uuid::Uuid::nil()),
        Some(s) => uuid::Uuid::parse_str(s).map_err(|e| CliError::Usage(format!("--directory-id {s}: {e}"))),
    }
}

pub async fn describe(admin: &Admin, out: &Output) -> Result<(), CliError> {
    let q = admin.describe_quorum().await?;
    let mut table = Table::new(&["NODE", "ROLE", "DIRECTORY", "LOG END", "LAG", "ENDPOINT"]);
    let rows = q
        .voters
        .iter()
        .map(|m| (m, if m.id == q.leader_id { "leader" } else { "voter" }))
        .chain(q.observers.iter().map(|m| (m, "observer")));
    for (m, role) in rows {
        table.row(vec![
            m.id.to_string(),
            role.to_string(),
            m.directory_id.to_string(),
            m.log_end_offset.to_string(),
            q.lag(m.id).map_or("-".into(), |l| l.to_string()),
            q.endpoints.get(&m.id).cloned().unwrap_or_else(|| "-".into()),
        ]);
    }
    table.note(format!(
        "leader {} in epoch {}, high watermark {}",
        q.leader_id, q.leader_epoch, q.high_watermark
    ));
    let member = |m: &skein_client::QuorumMember| {
        json!({"id": m.id, "directory_id": m.directory_id.to_string(), "log_end_offset": m.log_end_offset,
               "endpoint": q.endpoints.get(&m.id)})
    };
    out.print(
        table,
        json!({
            "leader_id": q.leader_id,
            "leader_epoch": q.leader_epoch,
            "high_watermark": q.high_watermark,
            "voters": q.voters.iter().map(member).collect::<Vec<_>>(),
            "observers": q.observers.iter().map(member).collect::<Vec<_>>(),
        }),
    );
    Ok(())
}

pub async fn add_voter(admin: &Admin, out: &Output, id: i32, directory_id: Option<&str>) -> Result<(), CliError> {
    admin.add_raft_voter(id, directory(directory_id)?).await?;
    out.done(&format!("node {id} is a voter"), json!({"voter": id, "added": true}));
    Ok(())
}

pub async fn remove_voter(admin: &Admin, out: &Output, id: i32, directory_id: Option<&str>) -> Result<(), CliError> {
    admin.remove_raft_voter(id, directory(directory_id)?).await?;
    out.done(
        &format!("node {id} is no longer a voter"),
        json!({"voter": id, "removed": true}),
    );
    Ok(())
}
