//! One connection to a Kafka listener: request framing, correlation ids and a
//! cap on response sizes. Both the follower's replica fetches (broker to
//! broker) and the admin client use it. kafka-protocol provides the codecs; no
//! Rust Kafka client crate exposes raw replica fetches (replica id set) or
//! partition reassignment, so the framing, a few lines, is written here.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::scram::{ScramClient, ScramHash};
use crate::security::{ClientSecurity, SaslLogin};

/// The transport: plain TCP, or TLS over it.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One connection to a broker's client listener.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    correlation: i32,
    client_id: StrBytes,
    /// The largest response frame accepted: a peer's length is not trusted.
    max_response_bytes: usize,
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl Connection {
    /// Connects to `address` (host:port) within `timeout`.
    pub async fn connect(
        address: &str,
        client_id: String,
        timeout: Duration,
        max_response_bytes: usize,
    ) -> io::Result<Connection> {
        Self::connect_with(
            address,
            client_id,
            timeout,
            max_response_bytes,
            &ClientSecurity::plaintext(),
        )
        .await
    }

    /// Connects to `address` within `timeout`, then speaks TLS and
    /// authenticates with SASL as `security` says. An authentication failure
    /// is an error of kind PermissionDenied with the broker's message.
    pub async fn connect_with(
        address: &str,
        client_id: String,
        timeout: Duration,
        max_response_bytes: usize,
        security: &ClientSecurity,
    ) -> io::Result<Connection> {
        let timed_out = || io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {address} timed out"));
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| timed_out())??;
        tcp.set_nodelay(true)?;
        let stream = match &security.tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone());
                let s = tokio::time::timeout(timeout, tls.connect(name, tcp))
                    .await
                    .map_err(|_| timed_out())??;
                Stream::Tls(Box::new(s))
            }
        };
        let mut c = Connection {
            stream,
            correlation: 0,
            client_id: StrBytes::from_string(client_id),
            max_response_bytes,
        };
        if let Some(login) = &security.sasl {
            c.authenticate(login, timeout).await?;
        }
        Ok(c)
    }

    /// SaslHandshake v1, then SaslAuthenticate v2 with the mechanism's tokens.
    async fn authenticate(&mut self, login: &SaslLogin, timeout: Duration) -> io::Result<()> {
        let denied = |m: String| io::Error::new(io::ErrorKind::PermissionDenied, m);
        let h = self
            .call(
                1,
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(login.mechanism.clone())),
                timeout,
            )
            .await?;
        if h.error_code != 0 {
            let offered: Vec<String> = h.mechanisms.iter().map(|m| m.to_string()).collect();
            return Err(denied(format!(
                "the broker does not offer SASL {} (it offers {})",
                login.mechanism,
                offered.join(", ")
            )));
        }
        let hash = match login.mechanism.as_str() {
            "SCRAM-SHA-256" => Some(ScramHash::Sha256),
            "SCRAM-SHA-512" => Some(ScramHash::Sha512),
            _ => None,
        };
        let Some(hash) = hash else {
            let token = format!("\0{}\0{}", login.username, login.password);
            self.sasl_token(Bytes::from(token), timeout).await?;
            return Ok(());
        };
        let mut nonce = [0u8; 24];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| io::Error::other("no random source"))?;
        let mut scram = ScramClient::new(hash, &login.username, &login.password, &nonce);
        let server_first = self.sasl_token(Bytes::from(scram.first()), timeout).await?;
        let last = scram.last(&server_first).map_err(denied)?;
        let server_final = self.sasl_token(Bytes::from(last), timeout).await?;
        scram.verify(&server_final).map_err(denied)
    }

    /// One SaslAuthenticate round: the server's token, or its error.
    async fn sasl_token(&mut self, token: Bytes, timeout: Duration) -> io::Result<Bytes> {
        let r = self
            .call(2, &SaslAuthenticateRequest::default().with_auth_bytes(token), timeout)
            .await?;
        if r.error_code != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "SASL authentication failed: {}",
                    r.error_message.as_deref().unwrap_or("no message")
                ),
            ));
        }
        Ok(r.auth_bytes)
    }

    /// Sends one request and waits up to `timeout` for its response.
    pub async fn call<R: Request>(&mut self, version: i16, req: &R, timeout: Duration) -> io::Result<R::Response> {
        self.correlation = self.correlation.wrapping_add(1);
        let api = ApiKey::try_from(R::KEY).map_err(|_| invalid("unknown api key"))?;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, api.request_header_version(version))
            .map_err(invalid)?;
        req.encode(&mut body, version).map_err(invalid)?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.put(body);
        let exchange = async {
            self.stream.write_all(&frame).await?;
            // Over TLS, write_all can return with the request still in rustls'
            // buffer (tokio-rustls takes the bytes, then the socket write is
            // Pending, e.g. when the task's cooperative budget is spent); only
            // flush sends it. Without this, a call now and then waited for a
            // response to a request the broker never received.
            self.stream.flush().await?;
            let len = self.stream.read_i32().await?;
            if len < 0 || len as usize > self.max_response_bytes {
                return Err(invalid(format!(
                    "response frame length {len} is negative or over {}",
                    self.max_response_bytes
                )));
            }
            // Read into spare capacity: a zero-filled buffer would cost a
            // memset of every replicated byte.
            let len = len as usize;
            let mut buf = BytesMut::with_capacity(len);
            let mut body = (&mut self.stream).take(len as u64);
            while buf.len() < len {
                if body.read_buf(&mut buf).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            Ok::<_, io::Error>(buf.freeze())
        };
        let mut buf = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request timed out"))??;
        let header = ResponseHeader::decode(&mut buf, <R::Response as HeaderVersion>::header_version(version))
            .map_err(invalid)?;
        if header.correlation_id != self.correlation {
            return Err(invalid("response correlation id does not match"));
        }
        R::Response::decode(&mut buf, version).map_err(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiVersionsRequest;
    use std::sync::Arc;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn a_peer_claiming_a_two_gigabyte_response_is_refused_before_reading_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 64];
            let _ = s.read(&mut req).await.unwrap();
            s.write_all(&i32::MAX.to_be_bytes()).await.unwrap();
            // Keep the socket open: the client must not wait for the bytes.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let mut c = Connection::connect(&address, "t".into(), Duration::from_secs(2), 1 << 20)
            .await
            .unwrap();
        let err = c
            .call(3, &ApiVersionsRequest::default(), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        peer.abort();
    }

    /// A TLS listener that answers every request with an empty ApiVersions v0
    /// response, and counts the requests it received.
    async fn tls_peer() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../broker/tests/fixtures/tls");
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fixtures.join("server.crt"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(fixtures.join("server.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&received);
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut s = acceptor.accept(tcp).await.unwrap();
            loop {
                let Ok(len) = s.read_i32().await else { return };
                let mut req = vec![0u8; len as usize];
                s.read_exact(&mut req).await.unwrap();
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut body = BytesMut::new();
                body.put_slice(&req[4..8]); // the correlation id (response header v0)
                kafka_protocol::messages::ApiVersionsResponse::default()
                    .encode(&mut body, 0)
                    .unwrap();
                s.write_i32(body.len() as i32).await.unwrap();
                s.write_all(&body).await.unwrap();
                s.flush().await.unwrap();
            }
        });
        (address, received)
    }

    #[tokio::test]
    async fn a_request_over_tls_is_sent_even_when_the_task_has_spent_its_io_budget() {
        let (address, received) = tls_peer().await;
        let trust =
            std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../broker/tests/fixtures/tls/ca.pem"))
                .unwrap();
        let security = ClientSecurity {
            protocol: crate::security::Protocol::Ssl,
            tls: Some(crate::security::tls_config(&trust, None).unwrap()),
            sasl: None,
        };
        let mut c = Connection::connect_with(&address, "t".into(), Duration::from_secs(5), 1 << 20, &security)
            .await
            .unwrap();
        // As after reading a large response in the same task poll: tokio's
        // cooperative budget is spent, so the socket write inside rustls is
        // Pending and the request stays in rustls' buffer until flushed.
        tokio::task::yield_now().await;
        while tokio::task::coop::has_budget_remaining() {
            tokio::task::consume_budget().await;
        }
        let r = c.call(0, &ApiVersionsRequest::default(), Duration::from_secs(5)).await;
        assert_eq!(
            received.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the peer never got the request"
        );
        r.unwrap();
    }
}
