//! An [`AsyncScheduler`] as a service's part: on the store a URL names, until the process
//! is asked to stop.

use apscheduler_core::component::{ComponentRegistry, UrlOptions};

use super::*;
use crate::HistoryOptions;

impl AsyncScheduler {
    /// A scheduler on the job store `url` names, as replicas of a service sharing one
    /// store need it: the store as the `default` job store, its run history recording
    /// every run (where the store keeps one: every store crate of this project does),
    /// the async executor, and the cluster's defaults (leased runs on a persistent
    /// store: each fire time started at most once across the replicas). The URL opens
    /// through the store crates linked into the program (`postgres://…`, `mysql://…`,
    /// `sqlite:…`, `redis://…`, `mongodb://…`, `zookeeper://…`; with the facade, the
    /// `store-*` features); the store connects at its first use (`add_job`, `start`).
    ///
    /// ```no_run
    /// # use apscheduler_engine::{AsyncScheduler, JobSpec};
    /// # async fn run() -> Result<(), apscheduler_core::Error> {
    /// let scheduler = AsyncScheduler::connect("postgres://app@db/app")?;
    /// scheduler.register_async_task("refresh", |_ctx| async { Ok(serde_json::Value::Null) });
    /// scheduler
    ///     .add_job(JobSpec::declare("refresh", "interval", serde_json::json!({"minutes": 5})))
    ///     .await?;
    /// scheduler.run_until_signal().await
    /// # }
    /// ```
    ///
    /// For other choices (a scheduler id, history options, several stores), build the
    /// engine with [`Engine::builder`] and [`AsyncScheduler::from_builder`].
    ///
    /// # Errors
    /// `InvalidInput` for a URL without a scheme, or with one no linked crate opens (the
    /// message names the facade feature that brings it, or lists the known schemes; it
    /// never holds the URL, which may hold a password), or one its store refuses.
    pub fn connect(url: &str) -> Result<Self, Error> {
        let store = ComponentRegistry::global().open_url(url, &UrlOptions::new())?;
        let mut builder = Engine::builder().jobstore(crate::engine::DEFAULT_ALIAS, store.clone());
        if let Some(history) = store.run_history() {
            builder = builder.run_history(history, HistoryOptions::default());
        }
        Self::from_builder(builder)
    }

    /// What a service's `main` ends with: starts the scheduler (unless it runs already),
    /// waits until the process is asked to stop (SIGTERM or SIGINT, Ctrl-C), then shuts
    /// the scheduler down, waiting for the jobs that run. A replica stopped so by a
    /// rolling deploy starts nothing more: the fire times it would have had are run by
    /// the other replicas. A signal that comes again while it waits is logged, at WARN,
    /// and changes nothing: the runs in flight still end first.
    ///
    /// # Errors
    /// As [`start`](Self::start) and [`shutdown`](Self::shutdown); `Other` when the
    /// signals cannot be listened to.
    pub async fn run_until_signal(&self) -> Result<(), Error> {
        // Listening before the start: a signal that comes while it starts is not lost.
        let mut signals = StopSignals::listen()?;
        if !self.running() {
            self.start(false).await?;
        }
        let name = signals.next().await;
        tracing::info!("{name} received: stopping the scheduler, waiting for running jobs");
        let shutdown = self.shutdown(true);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                stopped = &mut shutdown => return stopped,
                name = signals.next() => tracing::warn!(
                    "{name} received again: still waiting for the running jobs to end"
                ),
            }
        }
    }
}

/// SIGTERM and SIGINT (Ctrl-C where there are no Unix signals), listened to.
struct StopSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> Result<Self, Error> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let failed = |e: std::io::Error| {
                Error::new(ErrorKind::Other, format!("cannot listen to signals: {e}"))
            };
            Ok(StopSignals {
                term: signal(SignalKind::terminate()).map_err(failed)?,
                int: signal(SignalKind::interrupt()).map_err(failed)?,
            })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    /// The next signal's name, once it comes.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            // A stream that ends (its runtime shutting down) delivers nothing more.
            tokio::select! {
                Some(()) = self.term.recv() => "SIGTERM",
                Some(()) = self.int.recv() => "SIGINT",
                else => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}
