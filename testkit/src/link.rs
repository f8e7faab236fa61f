//! A model of the network link between a client and the backend, for tests and benchmarks that
//! must see what a wide-area link does to a client: a fixed delay in each direction and a
//! bandwidth cap shared by every connection.
//!
//! With a [`LinkModel`] set, each accepted connection is served through an in-memory pipe, and
//! two pumps per connection carry the bytes between the socket and the pipe. A pump reads what
//! arrives, books its transmission on the direction's shared [`Wire`] (one for uploads, one for
//! downloads, across all connections: `bytes / rate` after the wire is free), and hands the
//! chunk to a writer that delivers it `one_way_delay` after its transmission ends. Reading and
//! delivering are decoupled, so the delay does not limit throughput (a bandwidth-delay product of
//! data is in flight, as on a real link), and a bounded queue gives back-pressure.
//!
//! So a request/response exchange costs one round trip (`2 × one_way_delay`) plus the time its
//! bytes need on the wire. A new connection costs one more round trip, TCP's handshake: the TCP
//! connect itself completes at loopback speed, so the first bytes the client sends on a
//! connection are held for one extra round trip, which is when they would arrive on a real link.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The link between clients and the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkModel {
    /// Delay added to every byte in each direction (a round trip is twice this).
    pub one_way_delay: Duration,
    /// Bytes per second each direction carries, shared by all connections; `None` is unlimited.
    pub bytes_per_second: Option<u64>,
}

impl LinkModel {
    /// A link with round-trip time `rtt` and no bandwidth cap.
    pub fn with_rtt(rtt: Duration) -> Self {
        LinkModel {
            one_way_delay: rtt / 2,
            bytes_per_second: None,
        }
    }

    /// The same link with a cap of `megabits` Mbit/s in each direction.
    #[must_use]
    pub fn megabits_per_second(self, megabits: u64) -> Self {
        LinkModel {
            bytes_per_second: Some(megabits.saturating_mul(1_000_000) / 8),
            ..self
        }
    }
}

/// One direction of the link: when it is next free to transmit.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    free_at: Mutex<Option<Instant>>,
}

impl Wire {
    /// Books `bytes` on the wire from now (or from when it is free) and returns when their
    /// transmission ends.
    fn book(&self, bytes: usize, rate: Option<u64>) -> Instant {
        let now = Instant::now();
        let Some(rate) = rate.filter(|&rate| rate > 0) else {
            return now;
        };
        let mut free_at = self.free_at.lock().unwrap_or_else(PoisonError::into_inner);
        let start = free_at.map_or(now, |free| free.max(now));
        let done = start + Duration::from_secs_f64(bytes as f64 / rate as f64);
        *free_at = Some(done);
        done
    }
}

/// The link's two shared wires and its settings.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) model: LinkModel,
    upload: Wire,
    download: Wire,
}

impl Link {
    pub(crate) fn new(model: LinkModel) -> Self {
        Link {
            model,
            upload: Wire::default(),
            download: Wire::default(),
        }
    }
}

/// Chunks in flight per direction and connection before the pump stops reading.
const QUEUE: usize = 256;
/// Largest chunk a pump reads at once.
const CHUNK: usize = 64 << 10;

/// Carries bytes from the client `socket` to `server` and back through the link, until either
/// side closes. Returns when both directions are done.
pub(crate) async fn carry<S, P>(socket: S, server: P, link: Arc<Link>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    P: AsyncRead + AsyncWrite + Send + 'static,
{
    let (socket_read, socket_write) = tokio::io::split(socket);
    let (server_read, server_write) = tokio::io::split(server);
    let up_link = Arc::clone(&link);
    let up = tokio::spawn(async move {
        pump(socket_read, server_write, &up_link, Direction::Upload).await;
    });
    let down = tokio::spawn(async move {
        pump(server_read, socket_write, &link, Direction::Download).await;
    });
    let _ = tokio::join!(up, down);
}

#[derive(Clone, Copy)]
enum Direction {
    Upload,
    Download,
}

async fn pump<R, W>(mut from: R, mut to: W, link: &Link, direction: Direction)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (sender, mut receiver) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE);
    let delay = link.model.one_way_delay;
    let deliver = tokio::spawn(async move {
        while let Some((at, chunk)) = receiver.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let wire = match direction {
        Direction::Upload => &link.upload,
        Direction::Download => &link.download,
    };
    // TCP's handshake, paid by the client's first bytes (see the module docs).
    let mut handshake = match direction {
        Direction::Upload => 2 * delay,
        Direction::Download => Duration::ZERO,
    };
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let sent = wire.book(n, link.model.bytes_per_second);
        let chunk = buffer.get(..n).unwrap_or_default().to_vec();
        let at = sent + delay + std::mem::take(&mut handshake);
        if sender.send((at, chunk)).await.is_err() {
            break;
        }
    }
    drop(sender);
    let _ = deliver.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_is_shared_and_serial() {
        let wire = Wire::default();
        let start = Instant::now();
        // 1 MB/s: 100 kB take 0.1 s, and a second booking queues behind the first.
        let first = wire.book(100_000, Some(1_000_000));
        let second = wire.book(100_000, Some(1_000_000));
        assert!(first >= start + Duration::from_millis(99));
        assert!(second >= first + Duration::from_millis(99));
        assert!(wire.book(1, None) <= Instant::now());
    }

    #[test]
    fn megabits() {
        let link = LinkModel::with_rtt(Duration::from_millis(150)).megabits_per_second(100);
        assert_eq!(link.one_way_delay, Duration::from_millis(75));
        assert_eq!(link.bytes_per_second, Some(12_500_000));
    }
}
