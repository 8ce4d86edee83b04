//! A TCP proxy between a client and a server on loopback: it adds a delay each way
//! (network latency a test can set), counts the round trips the client makes, and
//! can cut every connection (a network fault).
//!
//! A round trip is a burst of client-to-server bytes that follows a server reply (or
//! opens its connection): a client that pipelines three statements and then waits
//! makes one; one that sends a statement, waits for the answer and sends the next
//! makes two. Counted per connection and summed, so that two statements sent at
//! once on two connections count as two. Bytes are timestamped as they arrive and
//! forwarded once the delay has passed, in order, so a delay of `d` each way adds
//! `2 * d` to every round trip, and pipelined bytes are not serialized behind each
//! other.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What the proxy shares with its connections.
#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    /// The delay each way, in microseconds.
    delay_micros: AtomicU64,
    round_trips: AtomicU64,
    connections: AtomicU64,
    /// Bumped by [`LatencyProxy::cut`]: every open connection ends.
    cut: watch::Sender<u64>,
    /// The round trips of each connection, in the order they opened.
    per_connection: Mutex<Vec<Arc<AtomicU64>>>,
}

/// A latency proxy listening on `127.0.0.1` (see the [module docs](self)). Dropping it
/// stops accepting; open connections end with it.
#[derive(Debug)]
pub struct LatencyProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

/// Which side spoke last on a connection.
const NOBODY: u8 = 0;
const CLIENT: u8 = 1;
const SERVER: u8 = 2;

impl LatencyProxy {
    /// Starts a proxy to `upstream` that delays each direction by `delay_each_way`
    /// (the round trip grows by twice that). Must be called inside a tokio runtime.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(upstream: SocketAddr, delay_each_way: Duration) -> LatencyProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the latency proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let (cut, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            upstream,
            delay_micros: AtomicU64::new(micros(delay_each_way)),
            round_trips: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            cut,
            per_connection: Mutex::new(Vec::new()),
        });
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let _ = client.set_nodelay(true);
                tokio::spawn(relay(client, accepting.clone()));
            }
        });
        LatencyProxy {
            addr,
            shared,
            accept,
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to (on `127.0.0.1`).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Sets the delay each way for bytes that arrive from now on.
    pub fn set_delay(&self, delay_each_way: Duration) {
        self.shared
            .delay_micros
            .store(micros(delay_each_way), Ordering::Relaxed);
    }

    /// Round trips made through the proxy so far, over all connections.
    pub fn round_trips(&self) -> u64 {
        self.shared.round_trips.load(Ordering::SeqCst)
    }

    /// The round trips of each connection opened so far, in the order they opened.
    pub fn round_trips_by_connection(&self) -> Vec<u64> {
        self.shared
            .per_connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|n| n.load(Ordering::SeqCst))
            .collect()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Ends every open connection at once (both sockets closed; bytes still delayed
    /// are dropped). New connections are accepted as before.
    pub fn cut(&self) {
        self.shared.cut.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Relays one client connection until either side closes it or the proxy cuts it.
async fn relay(client: TcpStream, shared: Arc<Shared>) {
    let mut cut = shared.cut.subscribe();
    cut.mark_unchanged();
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    shared.connections.fetch_add(1, Ordering::SeqCst);
    let mine = Arc::new(AtomicU64::new(0));
    shared
        .per_connection
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(mine.clone());
    let last = AtomicU8::new(NOBODY);
    let (from_client, to_client) = client.into_split();
    let (from_server, to_server) = server.into_split();
    let up = pipe(from_client, to_server, &shared, |_| {
        // A client burst after a reply (or the first one) is a new round trip.
        if last.swap(CLIENT, Ordering::SeqCst) != CLIENT {
            shared.round_trips.fetch_add(1, Ordering::SeqCst);
            mine.fetch_add(1, Ordering::SeqCst);
        }
    });
    let down = pipe(from_server, to_client, &shared, |_| {
        last.store(SERVER, Ordering::SeqCst);
    });
    tokio::select! {
        () = up => {}
        () = down => {}
        _ = cut.changed() => {}
    }
}

/// Copies `from` to `to`, each chunk held until its delay has passed; `seen` is told
/// of each chunk as it arrives.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: &Shared,
    seen: impl Fn(usize),
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            seen(n);
            let delay = Duration::from_micros(shared.delay_micros.load(Ordering::Relaxed));
            if tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
            {
                return;
            }
        }
    };
    let write = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        // The reader ended (its side closed): pass the close on once all is written.
        let _ = to.shutdown().await;
    };
    // The write side finishes what was read before the close; a write error ends both.
    let (_, ()) = tokio::join!(read, write);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    async fn ask(s: &mut TcpStream, msg: &[u8]) {
        s.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, msg);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delays_each_way_and_counts_round_trips() {
        let proxy = LatencyProxy::start(echo().await, Duration::from_millis(25)).await;
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        s.set_nodelay(true).unwrap();
        let started = std::time::Instant::now();
        ask(&mut s, b"one").await;
        ask(&mut s, b"two").await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(100),
            "two round trips at 25 ms each way took {took:?}"
        );
        assert_eq!(proxy.round_trips(), 2);
        // Two messages sent before either answer is read: one round trip.
        s.write_all(b"a").await.unwrap();
        s.write_all(b"b").await.unwrap();
        let mut got = [0u8; 2];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(proxy.round_trips(), 3);
        assert_eq!(proxy.round_trips_by_connection(), vec![3]);
        assert_eq!(proxy.connections(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cut_ends_open_connections_and_accepts_new_ones() {
        let proxy = LatencyProxy::start(echo().await, Duration::ZERO).await;
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        ask(&mut s, b"x").await;
        proxy.cut();
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "a cut connection must end, got {read:?}"
        );
        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        ask(&mut again, b"y").await;
        assert_eq!(proxy.connections(), 2);
    }
}
