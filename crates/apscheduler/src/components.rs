//! Registration of the feature-enabled job store and executor types for configuration
//! files (`type = "sqlalchemy"`, `type = "redis"`, `type = "processpool"`, ...).

#[allow(unused_imports)]
use std::sync::Arc;

#[allow(unused_imports)]
use apscheduler_core::{Error, Executor, JobStore};
#[allow(unused_imports)]
use apscheduler_engine::{ComponentRegistry, ConfigTable};

#[cfg(feature = "store-sql")]
fn sql_store(table: &ConfigTable) -> Result<Arc<dyn JobStore>, Error> {
    let url = table.require_str("url")?.to_owned();
    let mut builder = apscheduler_store_sql::SqlJobStore::builder(url);
    if let Some(name) = table.get_str("tablename")?.or(table.get_str("table_name")?) {
        builder = builder.table_name(name);
    }
    Ok(Arc::new(builder.build()?))
}

#[cfg(feature = "store-redis")]
fn redis_store(table: &ConfigTable) -> Result<Arc<dyn JobStore>, Error> {
    let url = table
        .get_str("url")?
        .unwrap_or("redis://127.0.0.1:6379/")
        .to_owned();
    let mut builder = apscheduler_store_redis::RedisJobStore::builder(url);
    if let Some(prefix) = table.get_str("prefix")? {
        builder = builder.prefix(prefix);
    }
    Ok(Arc::new(builder.build()?))
}

#[cfg(feature = "store-mongodb")]
fn mongodb_store(table: &ConfigTable) -> Result<Arc<dyn JobStore>, Error> {
    let url = table
        .get_str("url")?
        .or(table.get_str("host")?)
        .unwrap_or("mongodb://127.0.0.1:27017/")
        .to_owned();
    let mut builder = apscheduler_store_mongodb::MongoDbJobStore::builder(url);
    if let Some(db) = table.get_str("database")? {
        builder = builder.database(db);
    }
    if let Some(collection) = table.get_str("collection")? {
        builder = builder.collection(collection);
    }
    Ok(Arc::new(builder.build()?))
}

#[cfg(feature = "executor-process")]
fn process_pool(table: &ConfigTable) -> Result<Arc<dyn Executor>, Error> {
    let workers = table.get_positive("max_workers")?.unwrap_or(10);
    let mut pool = apscheduler_executor_process::ProcessPoolExecutor::new(workers);
    if let Some(timeout) = table.get_seconds("timeout")? {
        pool = pool.with_timeout(timeout);
    }
    Ok(Arc::new(pool))
}

#[cfg(feature = "executor-rayon")]
fn rayon_pool(table: &ConfigTable) -> Result<Arc<dyn Executor>, Error> {
    Ok(Arc::new(match table.get_positive("num_threads")? {
        Some(n) => apscheduler_executor_rayon::RayonExecutor::with_threads(n),
        None => apscheduler_executor_rayon::RayonExecutor::new(),
    }))
}

/// Registers, in the process-wide [`ComponentRegistry`], the job store and executor
/// types this build's features enable, so configuration maps can name them:
/// `sql`/`sqlalchemy` (option `url`, optional `tablename`), `redis` (`url`, `prefix`),
/// `mongodb` (`url`, `database`, `collection`), `processpool` (`max_workers`,
/// `timeout` in seconds). Call it once before building a scheduler from configuration;
/// calling it again is harmless.
pub fn register_components() {
    #[cfg(feature = "store-sql")]
    ComponentRegistry::register_global_store(
        &[
            "sql",
            "sqlalchemy",
            "apscheduler.jobstores.sqlalchemy:SQLAlchemyJobStore",
        ],
        sql_store,
    );
    #[cfg(feature = "store-redis")]
    ComponentRegistry::register_global_store(
        &["redis", "apscheduler.jobstores.redis:RedisJobStore"],
        redis_store,
    );
    #[cfg(feature = "store-mongodb")]
    ComponentRegistry::register_global_store(
        &["mongodb", "apscheduler.jobstores.mongodb:MongoDBJobStore"],
        mongodb_store,
    );
    #[cfg(feature = "executor-process")]
    ComponentRegistry::register_global_executor(
        &[
            "processpool",
            "process",
            "apscheduler.executors.pool:ProcessPoolExecutor",
        ],
        process_pool,
    );
    #[cfg(feature = "executor-rayon")]
    ComponentRegistry::register_global_executor(&["rayon"], rayon_pool);
}
