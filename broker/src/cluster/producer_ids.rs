//! Producer ids for InitProducerId: handed out one at a time from blocks the
//! metadata quorum allocates to this broker (`AllocateProducerIds`, a block of
//! `PRODUCER_ID_BLOCK`), so no two brokers ever hand out the same id and a
//! restarted broker never reuses one (the quorum's counter only grows). The
//! transaction coordinator takes its ids from here too.

use std::future::Future;

use crate::error::AdminError;

/// The block being handed out: ids `next..limit`.
#[derive(Debug, Default)]
struct Block {
    next: i64,
    limit: i64,
}

/// This broker's producer-id allocator.
#[derive(Debug, Default)]
pub struct ProducerIdManager {
    // One allocation at a time: a block is fetched once however many wait.
    block: tokio::sync::Mutex<Block>,
}

impl ProducerIdManager {
    pub fn new() -> ProducerIdManager {
        ProducerIdManager::default()
    }

    /// The next id; when the block is spent, `new_block` fetches the start
    /// of the next one (a block of `size`). A failed fetch changes nothing.
    pub async fn allocate<F, Fut>(&self, size: i64, new_block: F) -> Result<i64, AdminError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<i64, AdminError>>,
    {
        let mut block = self.block.lock().await;
        if block.next >= block.limit {
            let start = new_block().await?;
            *block = Block {
                next: start,
                limit: start + size,
            };
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    use kafka_protocol::ResponseError;

    use super::*;

    #[tokio::test]
    async fn ids_come_from_successive_blocks_and_concurrent_callers_never_share_one() {
        let ids = Arc::new(ProducerIdManager::new());
        let quorum = Arc::new(AtomicI64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (ids, quorum) = (ids.clone(), quorum.clone());
            tasks.push(tokio::spawn(async move {
                ids.allocate(4, || async move { Ok(quorum.fetch_add(4, Ordering::SeqCst)) })
                    .await
                    .unwrap()
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap());
        }
        got.sort();
        assert_eq!(got, (0..50).collect::<Vec<i64>>());
        // 50 ids from blocks of 4: 13 blocks, none fetched twice.
        assert_eq!(quorum.load(Ordering::SeqCst), 52);
    }

    #[tokio::test]
    async fn a_failed_block_fetch_hands_out_nothing_and_the_next_call_retries() {
        let ids = ProducerIdManager::new();
        let err = ids
            .allocate(10, || async {
                Err(AdminError::new(ResponseError::NotController, "no quorum"))
            })
            .await
            .unwrap_err();
        assert_eq!(err.code, ResponseError::NotController);
        assert_eq!(ids.allocate(10, || async { Ok(1000) }).await.unwrap(), 1000);
        assert_eq!(ids.allocate(10, || async { Ok(2000) }).await.unwrap(), 1001);
    }
}
