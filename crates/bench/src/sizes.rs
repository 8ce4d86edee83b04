//! How big each scenario is: the full sizes of docs/PERFORMANCE.md, or a shortened smoke run.

use std::time::Duration;

/// Scenario sizes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    /// Jobs added in the add scenarios.
    pub(crate) add_jobs: usize,
    /// Jobs due at the same instant in the burst.
    pub(crate) burst_jobs: usize,
    /// How far ahead of the first add the burst is due.
    pub(crate) burst_lead: Duration,
    /// Jobs per second in the steady scenario (each fires once a second).
    pub(crate) steady_jobs: usize,
    /// Length of the steady scenario's measured window, in seconds.
    pub(crate) steady_secs: u32,
    /// Length of the 100 ms scenario, in seconds.
    pub(crate) every_secs: u32,
    /// Samples of the `std::thread::sleep` floor.
    pub(crate) floor_samples: usize,
    /// Jobs of the idle scenario.
    pub(crate) idle_jobs: usize,
    /// Length of the idle scenario's measured window, in seconds.
    pub(crate) idle_secs: u32,
}

impl Sizes {
    /// The full sizes (`quick`: a short smoke run of every scenario).
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Sizes {
                add_jobs: 10_000,
                burst_jobs: 1_000,
                burst_lead: Duration::from_millis(700),
                steady_jobs: 200,
                steady_secs: 1,
                every_secs: 1,
                floor_samples: 20,
                idle_jobs: 10_000,
                idle_secs: 1,
            }
        } else {
            Sizes {
                add_jobs: 100_000,
                burst_jobs: 10_000,
                burst_lead: Duration::from_millis(1500),
                steady_jobs: 1_000,
                steady_secs: 20,
                every_secs: 10,
                floor_samples: 250,
                idle_jobs: 100_000,
                idle_secs: 10,
            }
        }
    }
}
