//! The scheduler front-ends: thin drivers of the one [`Engine`] main loop.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use apscheduler_core::{
    DeferredRun, Error, ErrorKind, Event, EventMask, Executor, Job, JobStore, TaskContext,
    TaskResult, Trigger,
};
use serde_json::Value;

use crate::config::JobDefaults;
use crate::dispatch::ListenerId;
use crate::engine::{Engine, EngineBuilder, SchedulerState};
use crate::spec::{JobChanges, JobSpec};

mod async_api;
mod driven;
mod handle;
mod main_loop;
mod relay;
mod runner;
mod service;
mod sync_api;
mod threaded;

pub use async_api::{AsyncJobHandle, AsyncScheduledJob, AsyncScheduler};
pub use driven::DrivenScheduler;
pub use handle::{JobHandle, JobStatus, ScheduledJob};
use runner::Runner;
pub use sync_api::SyncScheduler;
pub use threaded::{BackgroundScheduler, BlockingScheduler};
