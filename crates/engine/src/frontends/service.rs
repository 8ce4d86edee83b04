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
    /// the other replicas.
    ///
    /// # Errors
    /// As [`start`](Self::start) and [`shutdown`](Self::shutdown); `Other` when the
    /// signals cannot be listened to.
    pub async fn run_until_signal(&self) -> Result<(), Error> {
        // Listening before the start: a signal that comes while it starts is not lost.
        let stop = stop_signal()?;
        if !self.running() {
            self.start(false).await?;
        }
        let name = stop.await;
        tracing::info!("{name} received: stopping the scheduler, waiting for running jobs");
        self.shutdown(true).await
    }
}

/// The first of SIGTERM and SIGINT, by name, once it comes.
fn stop_signal() -> Result<impl Future<Output = &'static str>, Error> {
    let failed =
        |e: std::io::Error| Error::new(ErrorKind::Other, format!("cannot listen to signals: {e}"));
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).map_err(failed)?;
        let mut int = signal(SignalKind::interrupt()).map_err(failed)?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            }
        })
    }
    #[cfg(not(unix))]
    {
        let _ = failed;
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        })
    }
}
