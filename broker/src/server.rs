//! The listener and the per-connection loop.
//!
//! Each connection has a reader that takes request frames one at a time, in
//! order, and a writer task that sends responses in the same order. A client may
//! pipeline many requests: they wait in the socket buffer and the next is read as
//! soon as the previous one is handled, while its response is still being written.
//! Handling requests of one connection in order is what Kafka does too, and is
//! what keeps an idempotent producer's pipelined batches in sequence.

use std::net::SocketAddr;
use std::sync::Arc;

use std::os::fd::AsRawFd;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::cluster::Broker;
use crate::log::FileSlice;
use crate::protocol::{self, Frame, FramePart, ProtocolError};

/// Responses queued per connection before the reader waits for the writer.
const RESPONSE_QUEUE: usize = 32;

/// Accepts connections until the task is dropped.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let broker = Arc::clone(&broker);
                tokio::spawn(async move {
                    if let Err(e) = connection(broker, stream, peer).await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Frame>(RESPONSE_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if let Err(e) = write_frame(&mut wr, frame).await {
                tracing::debug!(%peer, "write failed: {e}");
                break;
            }
        }
    });
    let max = broker.config.socket_request_max_bytes();
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    loop {
        let len = match rd.read_i32().await {
            Ok(len) => len,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        if len < 0 || len as usize > max {
            tracing::warn!(%peer, size = len, max, "closing connection: request frame size exceeds socket.request.max.bytes or is negative");
            break;
        }
        // Read without zero-filling first: produce frames are large and frequent.
        let mut frame = BytesMut::with_capacity(len as usize);
        while frame.len() < len as usize {
            if (&mut rd)
                .take((len as usize - frame.len()) as u64)
                .read_buf(&mut frame)
                .await?
                == 0
            {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        match protocol::handle_frame(Arc::clone(&broker), peer, frame.freeze()).await {
            Ok(Some(response)) => {
                if tx.send(response).await.is_err() {
                    break;
                }
            }
            Ok(None) => {}
            Err(
                e @ (ProtocolError::UnknownApiKey(_)
                | ProtocolError::UnsupportedVersion { .. }
                | ProtocolError::Decode { .. }
                | ProtocolError::ShortFrame(_)),
            ) => {
                tracing::warn!(%peer, "closing connection: {e}");
                break;
            }
            Err(e) => {
                tracing::error!(%peer, "closing connection: {e}");
                break;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
    Ok(())
}

/// Writes a response: buffers with `write_all`, file ranges with `sendfile`.
async fn write_frame(wr: &mut OwnedWriteHalf, frame: Frame) -> std::io::Result<()> {
    for part in frame.parts {
        match part {
            FramePart::Bytes(b) => wr.write_all(&b).await?,
            FramePart::File(f) => send_file(wr.as_ref(), &f).await?,
        }
    }
    Ok(())
}

/// Sends a file range straight from the page cache to the socket.
async fn send_file(stream: &TcpStream, f: &FileSlice) -> std::io::Result<()> {
    let mut offset = f.position as libc::off_t;
    let end = f.position + f.len as u64;
    while (offset as u64) < end {
        let remaining = (end - offset as u64) as usize;
        stream.writable().await?;
        let sent = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration of the call
            // (the Arc<File> and the stream are borrowed), and `offset` is a
            // valid pointer to a local. std and tokio have no sendfile, hence libc.
            let n = unsafe { libc::sendfile(stream.as_raw_fd(), f.file.as_raw_fd(), &mut offset, remaining) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match sent {
            Ok(0) => {
                // The file is shorter than the range (truncated underneath): the
                // frame cannot be completed, so the connection must close.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment shrank during a fetch",
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
