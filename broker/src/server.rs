//! The listener and the per-connection loop.
//!
//! Each connection has a reader that takes request frames one at a time, in
//! order, and a writer task that sends responses in the same order. A client may
//! pipeline many requests: they wait in the socket buffer and the next is read as
//! soon as the previous one is handled, while its response is still being written.
//! Handling requests of one connection in order is what Kafka does too, and is
//! what keeps an idempotent producer's pipelined batches in sequence. One
//! exception, where the order of effects is kept: a Produce with acks=all lets
//! the reader go on once its batches are appended (`Detach`), so pipelined
//! produce requests wait for the in-sync replicas side by side instead of one
//! replication round trip after another.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::os::fd::AsRawFd;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::cluster::Broker;
use crate::config::BrokerConfig;
use crate::log::FileSlice;
use crate::protocol::{self, Frame, FramePart, ProtocolError};
use crate::security::sasl::SaslSettings;
use crate::security::tls::{TlsListener, HANDSHAKE_TIMEOUT};

/// Responses queued per connection before the reader waits for the writer.
const RESPONSE_QUEUE: usize = 32;

/// What every listener of the broker shares: the connection counts and the
/// budget of request bytes read but not yet answered. A client that floods the
/// broker with connections or giant frames waits or is refused; it never makes
/// the process allocate what it has not sent.
pub struct Admission {
    /// `queued.max.request.bytes`; None for no limit.
    request_bytes: Option<Arc<RequestBudget>>,
    max_connections: usize,
    max_connections_per_ip: usize,
    idle: Duration,
    open: Mutex<OpenConnections>,
}

#[derive(Default)]
struct OpenConnections {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was refused at accept.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    MaxConnections(usize),
    MaxConnectionsPerIp(usize),
}

impl Admission {
    pub fn new(config: &BrokerConfig) -> Arc<Admission> {
        Arc::new(Admission {
            request_bytes: config.queued_max_request_bytes().map(|max| {
                Arc::new(RequestBudget {
                    free: Mutex::new(max),
                    freed: Notify::new(),
                })
            }),
            max_connections: config.max_connections(),
            max_connections_per_ip: config.max_connections_per_ip(),
            idle: Duration::from_millis(config.connections_max_idle_ms()),
            open: Mutex::new(OpenConnections::default()),
        })
    }

    /// Counts a new connection from `ip`, or refuses it.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.max_connections {
            return Err(Refused::MaxConnections(self.max_connections));
        }
        let from_ip = open.per_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_connections_per_ip {
            return Err(Refused::MaxConnectionsPerIp(self.max_connections_per_ip));
        }
        open.total += 1;
        open.per_ip.insert(ip, from_ip + 1);
        Ok(ConnectionSlot {
            admission: Arc::clone(self),
            ip,
        })
    }

    /// Waits until `len` more request bytes may be held in memory.
    async fn reserve(&self, len: usize) -> Option<BudgetHold> {
        // Config validation keeps the budget at least socket.request.max.bytes,
        // so every frame fits once the others are answered.
        Some(self.request_bytes.as_ref()?.take(len).await)
    }
}

/// The bytes of `queued.max.request.bytes` still free, taken as Kafka's
/// MemoryPool gives them out: a frame gets its bytes as soon as that many are
/// free, whatever larger frames wait. (tokio's Semaphore is first come, first
/// served, so a 100-byte produce would queue behind every waiting 100 MiB frame
/// and the abusers would set everyone's pace.)
struct RequestBudget {
    free: Mutex<usize>,
    freed: Notify,
}

impl RequestBudget {
    async fn take(self: &Arc<Self>, len: usize) -> BudgetHold {
        loop {
            // Registered before the check, so a release in between still wakes us.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
                if *free >= len {
                    *free -= len;
                    return BudgetHold {
                        budget: Arc::clone(self),
                        len,
                    };
                }
            }
            freed.await;
        }
    }
}

/// Request bytes held from the budget until the frame is answered.
struct BudgetHold {
    budget: Arc<RequestBudget>,
    len: usize,
}

impl Drop for BudgetHold {
    fn drop(&mut self) {
        *self.budget.free.lock().unwrap_or_else(|e| e.into_inner()) += self.len;
        self.budget.freed.notify_waiters();
    }
}

/// One admitted connection; dropping it gives its place back.
pub struct ConnectionSlot {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total -= 1;
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections on the listener named `name` until the task is dropped;
/// `tls` for an SSL or SASL_SSL listener.
pub async fn serve(
    broker: Arc<Broker>,
    name: Arc<str>,
    listener: TcpListener,
    admission: Arc<Admission>,
    tls: Option<Arc<TlsListener>>,
    sasl: Option<Arc<SaslSettings>>,
) {
    // Start-up validation refuses a listener without a protocol.
    let security_protocol = broker
        .config
        .security_protocol_map()
        .get(name.as_ref())
        .and_then(|p| protocol::SecurityProtocol::from_name(p))
        .unwrap_or(protocol::SecurityProtocol::Plaintext);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let slot = match admission.admit(peer.ip()) {
                    Ok(slot) => slot,
                    Err(refused) => {
                        tracing::debug!(%peer, "closing a new connection: {refused:?} reached");
                        drop(stream);
                        continue;
                    }
                };
                let broker = Arc::clone(&broker);
                let admission = Arc::clone(&admission);
                let session = protocol::Session::new(peer, Arc::clone(&name), security_protocol, sasl.clone());
                let tls = tls.clone();
                tokio::spawn(async move {
                    let ended = match tls {
                        None => plaintext(broker, stream, session, &admission).await,
                        Some(tls) => over_tls(broker, stream, session, &admission, &tls).await,
                    };
                    if let Err(e) = ended {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                    drop(slot);
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

/// A PLAINTEXT connection: responses' file ranges go out with `sendfile`.
async fn plaintext(
    broker: Arc<Broker>,
    stream: TcpStream,
    session: Arc<protocol::Session>,
    admission: &Admission,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (rd, wr) = stream.into_split();
    connection(broker, rd, SendFile(wr), session, admission).await
}

/// A TLS connection: the handshake (bounded in time), the client
/// certificate's principal if it presented one, then requests as on any
/// connection, with file ranges copied through the TLS session.
async fn over_tls(
    broker: Arc<Broker>,
    stream: TcpStream,
    session: Arc<protocol::Session>,
    admission: &Admission,
    tls: &TlsListener,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let peer = session.peer;
    let timeout = admission.idle.min(HANDSHAKE_TIMEOUT);
    let Some(stream) = tls.accept(stream, peer, &session.listener, timeout).await else {
        return Ok(());
    };
    let chain = stream.get_ref().1.peer_certificates().unwrap_or_default();
    match tls.principal_name(chain) {
        Ok(Some(name)) => session.authenticated(protocol::KafkaPrincipal::user(&name)),
        Ok(None) => {}
        Err(e) => {
            tracing::info!(%peer, listener = %session.listener, "failed authentication: {e}");
            return Ok(());
        }
    }
    let (rd, wr) = tokio::io::split(stream);
    connection(broker, rd, Copying(wr), session, admission).await
}

/// Runs a read, giving up once it has made no progress for `idle`.
async fn within<T>(idle: Duration, read: impl std::future::Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    tokio::time::timeout(idle, read)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle for connections.max.idle.ms"))?
}

/// A response in the making: the handler's result, in request order.
type PendingResponse = oneshot::Receiver<Result<Option<Frame>, ProtocolError>>;

async fn connection(
    broker: Arc<Broker>,
    rd: impl AsyncRead + Unpin + Send + 'static,
    mut wr: impl ResponseWriter,
    session: Arc<protocol::Session>,
    admission: &Admission,
) -> std::io::Result<()> {
    let peer = session.peer;
    let (tx, mut rx) = mpsc::channel::<PendingResponse>(RESPONSE_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(pending) = rx.recv().await {
            let frame = match pending.await {
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None)) => continue,
                Ok(Err(
                    e @ (ProtocolError::UnknownApiKey(_)
                    | ProtocolError::UnsupportedVersion { .. }
                    | ProtocolError::Decode { .. }
                    | ProtocolError::ShortFrame(_)),
                )) => {
                    tracing::warn!(%peer, "closing connection: {e}");
                    break;
                }
                Ok(Err(
                    e @ (ProtocolError::Unauthenticated(_)
                    | ProtocolError::SessionExpired
                    | ProtocolError::Authentication(_)),
                )) => {
                    tracing::info!(%peer, "closing connection: {e}");
                    break;
                }
                Ok(Err(e)) => {
                    tracing::error!(%peer, "closing connection: {e}");
                    break;
                }
                Err(_) => break, // the handler's task ended without an answer (a panic)
            };
            if let Err(e) = wr.write_frame(frame).await {
                tracing::debug!(%peer, "write failed: {e}");
                break;
            }
        }
    });
    let max_request = broker.config.socket_request_max_bytes();
    // Before a SASL client authenticates, its frames are held to a small size.
    let max_unauthenticated = broker.config.sasl_server_max_receive_size().min(max_request);
    let idle = admission.idle;
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    loop {
        let len = match within(idle, rd.read_i32()).await {
            Ok(len) => len,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        let max = if session.requires_authentication() {
            max_unauthenticated
        } else {
            max_request
        };
        if len < 0 || len as usize > max {
            tracing::warn!(%peer, size = len, max, "closing connection: request frame size exceeds socket.request.max.bytes (sasl.server.max.receive.size before authentication) or is negative");
            break;
        }
        // Nothing is allocated for a frame until the budget of unanswered request
        // bytes has room for all of it; until then its bytes wait in the socket.
        let permit = admission.reserve(len as usize).await;
        let frame = read_frame(&mut rd, len as usize, idle).await?;
        // The handler runs as its own task so that it can let the connection
        // read on before it answers (see `Detach`); otherwise the next request
        // is read only once this one is handled, as before.
        let (detach, released) = protocol::Detach::new();
        let (done, pending) = oneshot::channel();
        let (broker, shared) = (Arc::clone(&broker), Arc::clone(&session));
        tokio::spawn(async move {
            let handled = protocol::handle_frame_detachable(broker, shared, frame, detach.clone()).await;
            drop(permit);
            detach.finish(handled.is_ok());
            let _ = done.send(handled);
        });
        if tx.send(pending).await.is_err() {
            break;
        }
        if !released.await.unwrap_or(false) || session.is_closing() {
            break;
        }
        // A throttled client is not read from until its throttle time passes
        // (KIP-219); its response has already gone out.
        if let Some(until) = session.take_mute() {
            tokio::time::sleep_until(until.into()).await;
        }
    }
    drop(tx);
    let _ = writer.await;
    Ok(())
}

/// Reads a request body of `len` bytes, without zero-filling first (produce
/// frames are large and frequent). Each read must make progress within `idle`.
async fn read_frame(rd: &mut (impl AsyncRead + Unpin), len: usize, idle: Duration) -> std::io::Result<bytes::Bytes> {
    let mut frame = BytesMut::with_capacity(len);
    while frame.len() < len {
        let want = (len - frame.len()) as u64;
        if within(idle, (&mut *rd).take(want).read_buf(&mut frame)).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(frame.freeze())
}

/// Where a connection's responses go.
trait ResponseWriter: Send + 'static {
    fn write_frame(&mut self, frame: Frame) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
}

/// A plain TCP socket: buffers with `write_all`, file ranges with `sendfile`.
struct SendFile(OwnedWriteHalf);

impl ResponseWriter for SendFile {
    async fn write_frame(&mut self, frame: Frame) -> std::io::Result<()> {
        for part in frame.parts {
            match part {
                FramePart::Bytes(b) => self.0.write_all(&b).await?,
                FramePart::File(f) => send_file(self.0.as_ref(), &f).await?,
            }
        }
        Ok(())
    }
}

/// A stream that must see the bytes (TLS): file ranges are read from the page
/// cache and written through it, a chunk at a time.
struct Copying<W>(W);

/// The most of a file range held in memory at once on its way through TLS.
const COPY_CHUNK: usize = 256 * 1024;

impl<W: tokio::io::AsyncWrite + Unpin + Send + 'static> ResponseWriter for Copying<W> {
    async fn write_frame(&mut self, frame: Frame) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for part in frame.parts {
            match part {
                FramePart::Bytes(b) => self.0.write_all(&b).await?,
                FramePart::File(f) => {
                    let mut done = 0usize;
                    while done < f.len {
                        let n = (f.len - done).min(COPY_CHUNK);
                        buf.resize(n, 0);
                        read_exact_at(&f.file, &mut buf, f.position + done as u64)?;
                        self.0.write_all(&buf).await?;
                        done += n;
                    }
                }
            }
        }
        self.0.flush().await
    }
}

/// Fills `buf` from `file` at `offset`; a file shorter than the range (truncated
/// underneath) cannot complete the frame, so the connection must close.
fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "segment shrank during a fetch")
        } else {
            e
        }
    })
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
