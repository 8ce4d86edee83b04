//! # apscheduler-http
//!
//! The management plane of apscheduler-rs, as an [axum] [`Router`] to serve on its own
//! ([`serve`]) or to mount inside your own service:
//!
//! - an HTTP API under `/api` (jobs, history, nodes, run now) with an OpenAPI 3
//!   document at `/api/openapi.json`, generated from the handlers;
//! - bearer tokens with the roles `read`, `operate` and `admin` ([`auth`]); with no
//!   token configured it answers loopback clients only;
//! - a web dashboard at `/`, built into the crate (no Node.js to build it);
//! - `/health` (liveness) and `/health/ready` (readiness);
//! - Prometheus metrics at `/metrics` ([`metrics`]) and failure webhooks ([`notify`]),
//!   both fed by the scheduler's run records ([`apscheduler_core::RunObserver`]).
//!
//! `aps run` serves all of it when its config has an `[http]` table. The API, the
//! auth rules, the metrics and the notifications: `docs/http.md`.
//!
//! ## Usage
//! ```no_run
//! use apscheduler_engine::AsyncScheduler;
//! use apscheduler_http::{serve, ManagementPlane};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let scheduler = AsyncScheduler::new()?;
//! scheduler.start(false).await?;
//! // No tokens: loopback clients only. `Auth::new(tokens)` turns authentication on.
//! let router = ManagementPlane::new(scheduler.clone()).router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, router, false, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Mounted in your own axum app, the router needs the peer address for its loopback
//! rule: serve the app with `into_make_service_with_connect_info::<SocketAddr>()`.
//!
//! ## Feature flags
//! None.
//!
//! ## Supported Rust versions
//! The workspace's `rust-version` (1.89) and newer.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use apscheduler_core::RunHistory;
use apscheduler_engine::AsyncScheduler;
use axum::routing::{get, post};
use axum::Router;

mod api;
pub mod auth;
mod backfill;
pub mod catalog;
mod dashboard;
pub mod error;
pub mod metrics;
pub mod notify;
mod openapi;
pub mod views;

pub use auth::{new_token, Auth, Caller, Role, TokenEntry};
pub use catalog::{JobCatalog, JobDescription, JobUpdate, TaskCatalog};
pub use error::{ApiError, ErrorBody};

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

pub(crate) struct Shared {
    pub(crate) scheduler: AsyncScheduler,
    pub(crate) history: Option<Arc<dyn RunHistory>>,
    pub(crate) catalog: Arc<dyn JobCatalog>,
    pub(crate) auth: Auth,
    pub(crate) node_timeout: Duration,
    /// The OpenAPI document, rendered once.
    pub(crate) openapi: String,
    /// What `/metrics` renders, when served.
    pub(crate) metrics: Option<metrics::RunMetrics>,
    /// The node name shown in `/api/status`.
    pub(crate) node: Option<String>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Builds the management plane's [`Router`] for a scheduler.
#[derive(Debug)]
pub struct ManagementPlane {
    scheduler: AsyncScheduler,
    history: Option<Arc<dyn RunHistory>>,
    catalog: Arc<dyn JobCatalog>,
    auth: Auth,
    node_timeout: Duration,
    metrics: Option<metrics::RunMetrics>,
    node: Option<String>,
}

impl ManagementPlane {
    /// The plane of `scheduler`: its run history (when it records one), jobs of
    /// registered tasks ([`TaskCatalog`]), no tokens (loopback only).
    pub fn new(scheduler: AsyncScheduler) -> Self {
        let history = scheduler.engine().run_history();
        ManagementPlane {
            scheduler,
            history,
            catalog: Arc::new(TaskCatalog),
            auth: Auth::default(),
            node_timeout: apscheduler_engine::HistoryOptions::default().node_timeout,
            metrics: None,
            node: None,
        }
    }

    /// The node name this scheduler's run records carry (`HistoryOptions::node`), shown
    /// by `/api/status` and the dashboard (default: none, the scheduler id is shown).
    pub fn node(mut self, name: impl Into<String>) -> Self {
        self.node = Some(name.into());
        self
    }

    /// Serves `metrics` at `/metrics` (Prometheus text; role `read` when tokens are
    /// configured). Register the same value with the scheduler
    /// (`HistoryOptions::observe`) so that it sees the runs; metrics made with
    /// [`RunMetrics::global`](metrics::RunMetrics::global) render nothing here (their
    /// application's exporter serves them), so `/metrics` answers 404 for them.
    pub fn metrics(mut self, metrics: metrics::RunMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Reads history and nodes from `history` (default: the one the scheduler records
    /// into, if any).
    pub fn history(mut self, history: Option<Arc<dyn RunHistory>>) -> Self {
        self.history = history;
        self
    }

    /// How jobs read and are made (default: [`TaskCatalog`]).
    pub fn catalog(mut self, catalog: Arc<dyn JobCatalog>) -> Self {
        self.catalog = catalog;
        self
    }

    /// Who may call (default: no tokens, loopback only).
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// After how long without a heartbeat a node is shown `silent` (default 10 s, the
    /// scheduler's default node time-out).
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.node_timeout = timeout;
        self
    }

    /// The OpenAPI document of this plane (its catalog's bodies included).
    pub fn openapi(&self) -> utoipa::openapi::OpenApi {
        openapi::document(&*self.catalog)
    }

    /// The router: `/api/...`, `/health`, `/health/ready`, `/api/openapi.json`,
    /// `/metrics` (when given) and the dashboard at `/`.
    pub fn router(self) -> Router {
        let openapi = serde_json::to_string(&self.openapi()).unwrap_or_default();
        let state = AppState(Arc::new(Shared {
            scheduler: self.scheduler,
            history: self.history,
            catalog: self.catalog,
            auth: self.auth.clone(),
            node_timeout: self.node_timeout,
            openapi,
            metrics: self.metrics,
            node: self.node,
        }));
        let protected = Router::new()
            .route("/api/status", get(api::status))
            .route("/api/jobs", get(api::list_jobs).post(api::add_job))
            .route(
                "/api/jobs/{id}",
                get(api::show_job)
                    .patch(api::modify_job)
                    .delete(api::remove_job),
            )
            .route("/api/jobs/{id}/next", get(api::next_fire_times))
            .route("/api/jobs/{id}/pause", post(api::pause_job))
            .route("/api/jobs/{id}/resume", post(api::resume_job))
            .route("/api/jobs/{id}/run", post(api::run_job))
            .route("/api/jobs/{id}/backfill", post(backfill::backfill_job))
            .route("/api/history", get(api::history))
            .route("/api/nodes", get(api::nodes))
            .route("/api/calendars", get(api::calendars))
            .route("/metrics", get(api::metrics))
            .route_layer(axum::middleware::from_fn_with_state(
                self.auth,
                auth::authenticate,
            ));
        Router::new()
            .route("/health", get(api::live))
            .route("/health/ready", get(api::ready))
            .route("/api/openapi.json", get(openapi::serve_document))
            .merge(dashboard::routes())
            .merge(protected)
            .fallback(|| async { error::ApiError::not_found("no such route") })
            .with_state(state)
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// Serves `router` on `listener` until `shutdown` completes, with each request's peer
/// address (the loopback rule needs it).
///
/// # Errors
/// `InvalidInput` when `authenticated` is false (no token configured) and the listener
/// is not on a loopback address: without tokens the API must not be reachable from
/// other machines. I/O errors of the server.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    authenticated: bool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    check_listen(addr, authenticated)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Refuses a non-loopback address without authentication.
///
/// # Errors
/// A message naming the address.
pub fn check_listen(addr: SocketAddr, authenticated: bool) -> Result<(), String> {
    if authenticated || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "refusing to listen on {addr} without tokens: configure at least one token \
             (`aps token new`), or listen on a loopback address such as 127.0.0.1"
        ))
    }
}
