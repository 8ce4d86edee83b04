//! Event delivery: listeners run on one dispatcher thread, in the order events happened,
//! so a slow or panicking listener never stalls or breaks the main loop, and a listener
//! may call back into the scheduler without deadlocking.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, RwLock};

use apscheduler_core::{panic_message, Event, EventMask};

/// A listener callback.
pub type ListenerFn = dyn Fn(&Event) + Send + Sync;

/// Identifies a registered listener, for `remove_listener`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(u64);

struct Listener {
    id: ListenerId,
    mask: EventMask,
    callback: Arc<ListenerFn>,
}

// Nearly every message is an event; boxing it would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Message {
    Event(Event),
    Flush(Sender<()>),
}

/// Listener registry plus the dispatcher thread.
pub(crate) struct Dispatcher {
    listeners: Arc<RwLock<Vec<Listener>>>,
    /// Union of all listener masks: events nobody listens to are never built.
    mask: AtomicU32,
    next_id: AtomicU64,
    sender: Mutex<Option<Sender<Message>>>,
}

impl Dispatcher {
    pub(crate) fn new() -> Self {
        Dispatcher {
            listeners: Arc::new(RwLock::new(Vec::new())),
            mask: AtomicU32::new(0),
            next_id: AtomicU64::new(1),
            sender: Mutex::new(None),
        }
    }

    pub(crate) fn add(&self, callback: Arc<ListenerFn>, mask: EventMask) -> ListenerId {
        let id = ListenerId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut listeners = self.listeners.write().unwrap_or_else(|e| e.into_inner());
        listeners.push(Listener { id, mask, callback });
        self.mask.store(
            listeners.iter().fold(0, |m, l| m | l.mask.0),
            Ordering::Release,
        );
        id
    }

    pub(crate) fn remove(&self, id: ListenerId) -> bool {
        let mut listeners = self.listeners.write().unwrap_or_else(|e| e.into_inner());
        let before = listeners.len();
        listeners.retain(|l| l.id != id);
        self.mask.store(
            listeners.iter().fold(0, |m, l| m | l.mask.0),
            Ordering::Release,
        );
        listeners.len() != before
    }

    /// Whether any listener wants events with this code.
    #[inline]
    pub(crate) fn wants(&self, code: EventMask) -> bool {
        self.mask.load(Ordering::Acquire) & code.0 != 0
    }

    /// Queues an event for the listeners (built only when someone listens).
    pub(crate) fn emit(&self, code: EventMask, build: impl FnOnce() -> Event) {
        if !self.wants(code) {
            return;
        }
        self.send(Message::Event(build()));
    }

    fn send(&self, message: Message) {
        let mut sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        let tx = sender.get_or_insert_with(|| self.spawn());
        if let Err(err) = tx.send(message) {
            // The dispatcher thread is gone (it never exits on its own); start a new one.
            let tx = sender.insert(self.spawn());
            let _ = tx.send(err.0);
        }
    }

    fn spawn(&self) -> Sender<Message> {
        let (tx, rx) = channel::<Message>();
        let listeners = Arc::clone(&self.listeners);
        let spawned = std::thread::Builder::new()
            .name("aps-events".into())
            .spawn(move || {
                for message in rx {
                    match message {
                        Message::Flush(ack) => {
                            let _ = ack.send(());
                        }
                        Message::Event(event) => deliver(&listeners, &event),
                    }
                }
            });
        if let Err(e) = spawned {
            apscheduler_core::log_error!(target: "apscheduler", "cannot start the event dispatcher thread: {e}");
        }
        tx
    }

    /// Waits until every event queued so far has been delivered.
    pub(crate) fn flush(&self) {
        let (ack_tx, ack_rx) = channel();
        {
            let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
            match sender.as_ref() {
                Some(tx) => {
                    if tx.send(Message::Flush(ack_tx)).is_err() {
                        return;
                    }
                }
                None => return,
            }
        }
        let _ = ack_rx.recv();
    }
}

fn deliver(listeners: &RwLock<Vec<Listener>>, event: &Event) {
    let code = event.code();
    let targets: Vec<Arc<ListenerFn>> = listeners
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|l| l.mask.intersects(code))
        .map(|l| Arc::clone(&l.callback))
        .collect();
    for callback in targets {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| callback(event))) {
            apscheduler_core::log_error!(
                target: "apscheduler",
                "error notifying listener of {}: {}",
                event.name(),
                panic_message(panic.as_ref())
            );
        }
    }
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("mask", &self.mask.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
