//! [`Gate`]: holds [`BLOCK`](super::BLOCK) tasks until a check releases them.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::TIMEOUT;

/// Holds [`BLOCK`](super::BLOCK) tasks until released, across threads or processes.
///
/// A loopback TCP listener: each [`BLOCK`](super::BLOCK) task connects (which counts as "started")
/// and waits for one byte, sent to every waiting task by [`Gate::release`] and at once
/// to tasks connecting afterwards. Dropping the gate releases it.
#[derive(Debug)]
pub struct Gate {
    addr: SocketAddr,
    shared: Arc<GateShared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct GateShared {
    state: Mutex<GateState>,
    changed: Condvar,
    closing: AtomicBool,
}

#[derive(Debug, Default)]
struct GateState {
    started: usize,
    released: bool,
    waiting: Vec<TcpStream>,
}

impl GateShared {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    /// A closed gate listening on `127.0.0.1`.
    ///
    /// # Panics
    /// No loopback socket can be bound.
    pub fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback gate");
        let addr = listener.local_addr().expect("gate address");
        let shared = Arc::new(GateShared::default());
        let accept_shared = shared.clone();
        let acceptor = thread::Builder::new()
            .name("testkit-gate".to_owned())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept_shared.closing.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let mut state = accept_shared.lock();
                    state.started += 1;
                    if state.released {
                        let _ = stream.write_all(&[1]);
                    } else {
                        state.waiting.push(stream);
                    }
                    drop(state);
                    accept_shared.changed.notify_all();
                }
            })
            .expect("spawn the gate acceptor");
        Gate {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The argument to pass to [`BLOCK`](super::BLOCK) as `args[0]`.
    pub fn arg(&self) -> Value {
        Value::String(self.addr.to_string())
    }

    /// How many [`BLOCK`](super::BLOCK) tasks have reached the gate so far.
    pub fn started(&self) -> usize {
        self.shared.lock().started
    }

    /// Waits until `n` [`BLOCK`](super::BLOCK) tasks have reached the gate.
    ///
    /// # Panics
    /// They did not within [`TIMEOUT`].
    pub fn wait_started(&self, n: usize) {
        let deadline = Instant::now() + TIMEOUT;
        let mut state = self.shared.lock();
        while state.started < n {
            let now = Instant::now();
            assert!(
                now < deadline,
                "only {} of {n} blocking tasks started within {TIMEOUT:?}",
                state.started
            );
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Lets every waiting [`BLOCK`](super::BLOCK) task finish, and any later one pass at once.
    pub fn release(&self) {
        let mut state = self.shared.lock();
        state.released = true;
        for mut stream in state.waiting.drain(..) {
            let _ = stream.write_all(&[1]);
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.release();
        self.shared.closing.store(true, Ordering::SeqCst);
        // Wake the acceptor so it sees `closing`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}
