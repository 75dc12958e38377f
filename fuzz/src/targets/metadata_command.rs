//! Bytes as the metadata quorum reads them: a log entry, a snapshot image, or a
//! command applied to an image with brokers and topics. The log and snapshot are
//! serde JSON (controller/store.rs); a follower applies what its leader sent.
//! A log entry's bytes are also read as what a peer sends about the voter set
//! (KIP-853: Announce, Probe and their answers, controller/voters.rs).

use std::sync::OnceLock;

use skein_broker::controller::image::{Command, MetadataImage};
use skein_broker::controller::{voters, TypeConfig};

/// Three registered, unfenced brokers and two topics.
fn base_image() -> &'static MetadataImage {
    static IMAGE: OnceLock<MetadataImage> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let mut image = MetadataImage::default();
        for id in 0..3 {
            image.apply(Command::RegisterBroker {
                id,
                host: "127.0.0.1".into(),
                port: 9092 + id as u16,
                rack: None,
                endpoints: Vec::new(),
            });
            let epoch = image.brokers[&id].epoch;
            image.apply(Command::UnfenceBroker { id, epoch });
        }
        for (name, partitions) in [("a", 3), ("b", 1)] {
            let assignments = image.place(0, partitions, 3).expect("placement");
            image.apply(Command::CreateTopic {
                name: name.into(),
                id: Default::default(),
                configs: Default::default(),
                assignments,
            });
        }
        image
    })
}

/// One input.
pub fn run(data: &[u8]) {
    let Some((&mode, json)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            // A sequence of commands, as consecutive log entries apply them.
            let mut image = base_image().clone();
            for cmd in serde_json::Deserializer::from_slice(json).into_iter::<Command>() {
                let Ok(cmd) = cmd else { break };
                image.apply(cmd);
                let _ = image.live_brokers();
                let _ = image.unclean_election_candidates();
                let _ = image.has_preferred_leader_imbalance();
            }
        }
        1 => {
            let _ = serde_json::from_slice::<openraft::Entry<TypeConfig>>(json);
            let _ = serde_json::from_slice::<voters::Announce>(json);
            let _ = serde_json::from_slice::<Result<voters::Announced, String>>(json);
            let _ = serde_json::from_slice::<voters::Probe>(json);
            let _ = serde_json::from_slice::<voters::ProbeReply>(json);
        }
        _ => {
            if let Ok(mut image) = serde_json::from_slice::<MetadataImage>(json) {
                let _ = image.live_brokers();
                let _ = image.place(0, 3, 3);
                image.apply(Command::ElectPreferredLeaders { partitions: None });
            }
        }
    }
}
