//! The front-ends that run the main loop on a thread: [`BlockingScheduler`] (the
//! caller's) and [`BackgroundScheduler`] (one of its own).

use super::*;

macro_rules! sync_frontend {
    ($name:ident, $doc:literal $(, $field:ident : $ty:ty = $init:expr)*) => {
        #[doc = $doc]
        #[derive(Debug)]
        pub struct $name {
            inner: SyncScheduler,
            $($field: $ty,)*
        }

        impl Deref for $name {
            type Target = SyncScheduler;
            fn deref(&self) -> &SyncScheduler {
                &self.inner
            }
        }

        impl $name {
            /// A scheduler with the default configuration: the `default` memory store,
            /// the `default` thread pool of 10 workers, the machine's timezone.
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
                Ok($name {
                    inner: SyncScheduler::with_engine(engine)?,
                    $($field: $init,)*
                })
            }
        }
    };
}

sync_frontend!(
    BlockingScheduler,
    "Runs the main loop in the thread that calls `start`, which blocks until `shutdown` \
     (APScheduler's `BlockingScheduler`): for programs whose only job is scheduling."
);
sync_frontend!(
    BackgroundScheduler,
    "Runs the main loop in its own thread; `start` returns at once \
     (APScheduler's `BackgroundScheduler`).",
    thread: Mutex<Option<JoinHandle<()>>> = Mutex::new(None)
);

impl BlockingScheduler {
    /// Starts and runs the main loop on this thread until [`shutdown`](Self::shutdown)
    /// is called (from a job, a listener, a signal handler or another thread).
    ///
    /// # Errors
    /// As [`Engine::start`].
    pub fn start(&self, paused: bool) -> Result<(), Error> {
        self.inner.start_engine(paused)?;
        self.inner.run_loop();
        Ok(())
    }

    /// Stops the scheduler; `start` then returns.
    ///
    /// # Errors
    /// `InvalidState` when not running.
    pub fn shutdown(&self, wait: bool) -> Result<(), Error> {
        self.inner.shutdown_engine(wait)
    }
}

impl BackgroundScheduler {
    /// Starts the scheduler in its own thread and returns.
    ///
    /// # Errors
    /// As [`Engine::start`]; the thread cannot be spawned.
    pub fn start(&self, paused: bool) -> Result<(), Error> {
        self.inner.start_engine(paused)?;
        let me = self.inner.clone();
        let handle = std::thread::Builder::new()
            .name("aps-scheduler".into())
            .spawn(move || me.run_loop())
            .map_err(|e| {
                Error::new(
                    ErrorKind::Other,
                    format!("cannot spawn the scheduler thread: {e}"),
                )
            })?;
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(())
    }

    /// Stops the scheduler and its thread; with `wait`, waits for running jobs.
    ///
    /// # Errors
    /// `InvalidState` when not running.
    pub fn shutdown(&self, wait: bool) -> Result<(), Error> {
        self.inner.shutdown_engine(wait)?;
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            let id = handle.thread().id();
            // Without `wait`, a job running on the loop's thread is not waited for: the
            // thread leaves once it ends.
            if id != std::thread::current().id() && (wait || !self.inner.runs_job_on(id)) {
                let _ = handle.join();
            }
        }
        Ok(())
    }
}
