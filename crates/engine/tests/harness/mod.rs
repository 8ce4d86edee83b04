//! An engine under an injected clock, for the tests that step it by hand (no sleeping,
//! every step explicit): jobs run inline and every event is recorded.
#![allow(dead_code)] // Each test file uses part of it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apscheduler_core::event::{self, Event};
use apscheduler_core::ManualClock;
use apscheduler_engine::{Engine, InlineExecutor};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::common::at;

/// An engine on a [`ManualClock`] at 10:00 of the tests' day (UTC) with an inline
/// executor, the tasks `noop` (returns "done") and `fail` (fails with "boom"), and a
/// listener keeping every event.
pub(crate) struct Harness {
    pub(crate) engine: Engine,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) events: Arc<Mutex<Vec<Event>>>,
    pub(crate) rt: tokio::runtime::Runtime,
}

impl Harness {
    /// A new harness, the scheduler not started.
    pub(crate) fn new() -> Self {
        let clock = Arc::new(ManualClock::new(at(10, 0, 0)));
        let engine = Engine::builder()
            .clock(clock.clone())
            .timezone(chrono_tz::UTC)
            .executor("default", Arc::new(InlineExecutor::new()))
            .build();
        engine.register_task("noop", |_| Ok(json!("done")));
        engine.register_task("fail", |_| Err("boom".into()));
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let sink = events.clone();
        engine.add_listener(
            move |e| sink.lock().unwrap().push(e.clone()),
            event::EVENT_ALL,
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Harness {
            engine,
            clock,
            events,
            rt,
        }
    }

    /// Runs `f` to its end on the harness's runtime.
    pub(crate) fn run<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// Event names since the last call (per job id where given).
    pub(crate) fn take(&self) -> Vec<String> {
        self.engine.flush_events();
        std::mem::take(&mut *self.events.lock().unwrap())
            .iter()
            .map(|e| match e.job_id() {
                Some(id) => format!("{} {id}", e.name().trim_start_matches("EVENT_")),
                None => e.name().trim_start_matches("EVENT_").to_owned(),
            })
            .collect()
    }

    /// Sets the clock to `t` and runs one pass of the main loop: its wait, if any.
    pub(crate) fn process(&self, t: DateTime<Utc>) -> Option<Duration> {
        self.clock.set(t);
        self.run(self.engine.process_jobs())
    }
}
