//! The OpenAPI 3 document, generated from the handlers' annotations; the catalog's
//! request bodies are put in under `JobInput` and `JobChangesInput`, with the schemas
//! they refer to.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi as _;

use crate::api;
use crate::catalog::JobCatalog;
use crate::AppState;

/// The operations of the generated document.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "apscheduler-rs management API",
        description = "Jobs, run history, nodes and health of an apscheduler-rs scheduler (`aps run` or a library's)."
    ),
    paths(
        api::status,
        api::list_jobs,
        api::show_job,
        api::next_fire_times,
        api::add_job,
        api::modify_job,
        api::remove_job,
        api::pause_job,
        api::resume_job,
        api::run_job,
        crate::backfill::backfill_job,
        api::history,
        api::nodes,
        api::calendars,
        api::live,
        api::ready,
        api::metrics
    ),
    components(schemas(api::JobInput, api::JobChangesInput)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags((name = "jobs"), (name = "history"), (name = "scheduler"), (name = "health"))
)]
struct ApiDoc;

/// Adds the `bearer` security scheme the operations name.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `aps token new`; none needed when the server has no tokens (loopback only)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document with `catalog`'s request bodies.
pub(crate) fn document(catalog: &dyn JobCatalog) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let (new_job, change) = catalog.schemas();
    let components = doc.components.get_or_insert_with(Default::default);
    // First, so that no referenced type can take the place of the bodies' schemas.
    components.schemas.extend(catalog.referenced_schemas());
    components.schemas.insert("JobInput".to_owned(), new_job);
    components
        .schemas
        .insert("JobChangesInput".to_owned(), change);
    doc
}

/// `GET /api/openapi.json`.
pub(crate) async fn serve_document(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.openapi.clone(),
    )
}
