//! One connection to a Kafka listener: request framing, correlation ids and a
//! cap on response sizes. Both the follower's replica fetches (broker to
//! broker) and the admin client use it. kafka-protocol provides the codecs; no
//! Rust Kafka client crate exposes raw replica fetches (replica id set) or
//! partition reassignment, so the framing, a few lines, is written here.

use std::io;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One connection to a broker's client listener.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
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
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {address} timed out")))??;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            correlation: 0,
            client_id: StrBytes::from_string(client_id),
            max_response_bytes,
        })
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
}
