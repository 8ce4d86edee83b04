//! [`DrivenScheduler`]: the main loop driven by a host event loop.

use super::*;

/// Driven by a host event loop (the role of APScheduler's Tornado/Twisted/Qt/gevent
/// schedulers): the host asks for the next wake-up with
/// [`next_wakeup`](Self::next_wakeup) and calls [`run_due`](Self::run_due) when its timer
/// fires; [`set_wakeup_hook`](Self::set_wakeup_hook) tells it to re-arm the timer when
/// jobs change.
#[derive(Debug)]
pub struct DrivenScheduler {
    pub(super) inner: SyncScheduler,
    pub(super) next: Mutex<Option<Instant>>,
}

impl Deref for DrivenScheduler {
    type Target = SyncScheduler;
    fn deref(&self) -> &SyncScheduler {
        &self.inner
    }
}

impl DrivenScheduler {
    /// A scheduler with the default configuration.
    ///
    /// # Errors
    /// The internal runtime cannot be started.
    pub fn new() -> Result<Self, Error> {
        Self::from_engine(Engine::builder().build())
    }

    /// A scheduler over an engine built with [`Engine::builder`].
    ///
    /// # Errors
    /// The internal runtime cannot be started.
    pub fn from_builder(builder: EngineBuilder) -> Result<Self, Error> {
        Self::from_engine(builder.build())
    }

    /// A scheduler over an existing engine.
    ///
    /// # Errors
    /// The internal runtime cannot be started.
    pub fn from_engine(engine: Engine) -> Result<Self, Error> {
        Ok(DrivenScheduler {
            inner: SyncScheduler::with_engine(engine)?,
            next: Mutex::new(None),
        })
    }

    /// Starts the scheduler; the host loop then calls [`run_due`](Self::run_due).
    ///
    /// # Errors
    /// As [`Engine::start`].
    pub fn start(&self, paused: bool) -> Result<(), Error> {
        self.inner.start_engine(paused)
    }

    /// Runs every due job now and returns how long until the next call is needed
    /// (`None`: not before the wake-up hook fires). One turn of the main loop every
    /// front-end shares: a change that cannot make the next call earlier (a job added
    /// for later than that) does not call the hook.
    pub fn run_due(&self) -> Option<Duration> {
        let turn = main_loop::turn(&self.inner.engine, false);
        let wait = match self.inner.runner.block_on(turn) {
            main_loop::Turn::Stop => None,
            main_loop::Turn::Sleep { next, .. } => next,
        };
        *self.next.lock().unwrap_or_else(|e| e.into_inner()) = wait.map(|w| Instant::now() + w);
        wait
    }

    /// When `run_due` should be called next, as computed by the last `run_due`.
    pub fn next_wakeup(&self) -> Option<Instant> {
        *self.next.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called whenever the schedule changes (job added, modified, resumed ...): the host
    /// should call `run_due` soon (it recomputes the next wake-up). Called from the
    /// thread that changed the schedule.
    pub fn set_wakeup_hook<F>(&self, hook: F)
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.inner
            .engine
            .wake_signal()
            .set_hook(Some(Arc::new(hook)));
    }

    /// Stops the scheduler.
    ///
    /// # Errors
    /// `InvalidState` when not running.
    pub fn shutdown(&self, wait: bool) -> Result<(), Error> {
        self.inner.engine.wake_signal().set_hook(None);
        self.inner.shutdown_engine(wait)
    }
}
