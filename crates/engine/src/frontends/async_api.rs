//! [`AsyncScheduler`]: the main loop as a tokio task.

use super::*;

/// The async front-end (APScheduler's `AsyncIOScheduler`): runs the main loop as a tokio
/// task; every method is async. Async tasks run on the same runtime.
#[derive(Debug, Clone)]
pub struct AsyncScheduler {
    pub(super) engine: Engine,
}

impl AsyncScheduler {
    /// A scheduler with the default configuration: the `default` memory store and the
    /// `default` async executor (APScheduler's `AsyncIOExecutor`).
    pub fn new() -> Self {
        Self::from_builder(Engine::builder())
    }

    /// A scheduler over an engine built with [`Engine::builder`]; without a `default`
    /// executor, the async executor is used.
    pub fn from_builder(builder: EngineBuilder) -> Self {
        let builder = if builder.has_executor(crate::engine::DEFAULT_ALIAS) {
            builder
        } else {
            builder.executor(
                crate::engine::DEFAULT_ALIAS,
                Arc::new(apscheduler_executor_async::AsyncExecutor::new(None)),
            )
        };
        AsyncScheduler {
            engine: builder.build(),
        }
    }

    /// The engine: every job method (`add_job`, `modify_job`, ...) is there, async.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Starts the scheduler and spawns its main loop on the current tokio runtime.
    ///
    /// # Errors
    /// As [`Engine::start`]; `InvalidState` outside a tokio runtime.
    pub async fn start(&self, paused: bool) -> Result<(), Error> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::InvalidState,
                "AsyncScheduler::start needs a tokio runtime",
            )
        })?;
        self.engine.start(paused).await?;
        handle.spawn(main_loop::run_as_task(self.engine.clone()));
        Ok(())
    }

    /// Stops the scheduler.
    ///
    /// # Errors
    /// `InvalidState` when not running.
    pub async fn shutdown(&self, wait: bool) -> Result<(), Error> {
        // Executors block while they wait for running jobs; do that off the async
        // threads so jobs on this runtime can finish meanwhile.
        let engine = self.engine.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || handle.block_on(engine.shutdown(wait)))
            .await
            .map_err(|e| Error::new(ErrorKind::Other, format!("shutdown failed: {e}")))?
    }

    /// Adds a job.
    ///
    /// # Errors
    /// As [`Engine::add_job`].
    pub async fn add_job(&self, spec: JobSpec) -> Result<Job, Error> {
        self.engine.add_job(spec).await
    }
}

impl Default for AsyncScheduler {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for AsyncScheduler {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}
