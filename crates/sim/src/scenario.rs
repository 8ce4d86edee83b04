//! What a simulation runs: how many nodes and jobs, for how long, which faults how
//! often.

use std::time::Duration;

/// A simulated cluster and the faults it meets. Rates are per second of virtual time
/// over the whole cluster; each fault's size is drawn from the seed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Scenario {
    /// Scheduler nodes, all on the one store.
    pub nodes: usize,
    /// Interval jobs (every 1-5 s, runs of 0-3 s), each `coalesce = false` (see
    /// [`Scenario::run_policies`]).
    pub jobs: usize,
    /// How long faults are injected (virtual time).
    pub faults_for: Duration,
    /// How long the cluster then runs without faults before the final checks.
    pub settle: Duration,
    /// Node clocks are off by up to this much, either way (fixed per node).
    pub max_skew: Duration,
    /// Node kills (SIGKILL: never back) per second.
    pub crash_rate: f64,
    /// Node pauses (SIGSTOP), each longer than the lease, per second.
    pub pause_rate: f64,
    /// Store failovers (calls refused for 0.5-4 s, state kept) per second.
    pub failover_rate: f64,
    /// Slow-store spells (1-8 s, each call delayed up to 0.1-1.5 s) per second.
    pub slow_rate: f64,
    /// Per-mille chance that a call's request is lost, and again that its reply is
    /// lost after the store applied it.
    pub loss_per_mille: u32,
    /// Keep every trace line in [`Report::trace_tail`](crate::Report::trace_tail) (to compare two runs line by
    /// line), not only the last ones.
    pub full_trace: bool,
    /// The nodes' `HistoryOptions::record_starts` (on by default, as in the engine).
    pub record_starts: bool,
    /// The nodes keep every run in the store, leased (`EngineBuilder::leased_runs`).
    pub leased_runs: bool,
    /// Besides plain jobs, jobs that retry a failed first or second attempt (3 attempts,
    /// 1 s apart; an attempt fails one time in two), jobs that buffer one fire time
    /// (`max_instances` 1, `overlap = "buffer_one"`), `recover` jobs and one-off
    /// (`date`) jobs that retry, a fifth each.
    pub run_policies: bool,
    /// During the faults, operators' calls to random nodes: jobs run now by hand (one
    /// every 2 s), backfills of up to 10 s of a job's past (one every 4 s, half of them running
    /// what succeeded again) and removals of jobs that
    /// retry or buffer (one every 15 s); every run started by hand that was
    /// acknowledged must get an outcome, and no run may stay `running`.
    pub operator_calls: bool,
    /// A contract the store model breaks on purpose, to show that the checks catch it
    /// (`None` for every real run).
    pub sabotage: Option<Sabotage>,
}

/// A way for the store model to break its contract, each caught by one invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sabotage {
    /// A release reports itself applied even when another node holds the job's lease:
    /// a fire time is started twice.
    ReleaseAlwaysApplied,
    /// The history drops `missed` records: fire times end without an outcome.
    HistoryDropsMissed,
    /// Taking a dead node's runs for interrupted changes nothing: its runs stay
    /// `running` after it is reaped.
    InterruptNothing,
}

impl Scenario {
    /// Five nodes, 30 jobs, 40 s of faults: the scenario run for thousands of seeds.
    pub fn small() -> Self {
        Scenario {
            nodes: 5,
            jobs: 30,
            faults_for: Duration::from_secs(40),
            settle: Duration::from_secs(40),
            max_skew: Duration::from_millis(1000),
            crash_rate: 1.0 / 25.0,
            pause_rate: 1.0 / 25.0,
            failover_rate: 1.0 / 30.0,
            slow_rate: 1.0 / 20.0,
            loss_per_mille: 10,
            full_trace: false,
            record_starts: true,
            leased_runs: false,
            run_policies: false,
            operator_calls: false,
            sabotage: None,
        }
    }

    /// A hundred nodes, 300 jobs, 60 s of faults.
    pub fn hundred() -> Self {
        Scenario {
            nodes: 100,
            jobs: 300,
            faults_for: Duration::from_secs(60),
            settle: Duration::from_secs(40),
            max_skew: Duration::from_millis(1000),
            crash_rate: 1.0 / 6.0,
            pause_rate: 1.0 / 6.0,
            failover_rate: 1.0 / 30.0,
            slow_rate: 1.0 / 20.0,
            loss_per_mille: 10,
            full_trace: false,
            record_starts: true,
            leased_runs: false,
            run_policies: false,
            operator_calls: false,
            sabotage: None,
        }
    }

    /// This scenario with `nodes` nodes and `jobs` jobs.
    pub fn with_size(mut self, nodes: usize, jobs: usize) -> Self {
        self.nodes = nodes;
        self.jobs = jobs;
        self
    }

    /// This scenario keeping its whole trace.
    pub fn with_full_trace(mut self) -> Self {
        self.full_trace = true;
        self
    }

    /// This scenario with the nodes writing each run's start before it starts
    /// (`HistoryOptions::record_starts`, the default).
    pub fn with_record_starts(mut self) -> Self {
        self.record_starts = true;
        self
    }

    /// This scenario with `HistoryOptions::record_starts` off: each run's record gets
    /// its start time at the claim.
    pub fn without_record_starts(mut self) -> Self {
        self.record_starts = false;
        self
    }

    /// This scenario with leased runs (`EngineBuilder::leased_runs`): every run a row
    /// of the store, started, renewed, ended and taken over through the run contract.
    pub fn with_leased_runs(mut self) -> Self {
        self.leased_runs = true;
        self
    }

    /// This scenario with retries, buffered fire times and `recover` jobs
    /// ([`Scenario::run_policies`]).
    pub fn with_run_policies(mut self) -> Self {
        self.run_policies = true;
        self
    }

    /// This scenario with operators' calls during the faults
    /// ([`Scenario::operator_calls`]).
    pub fn with_operator_calls(mut self) -> Self {
        self.operator_calls = true;
        self
    }

    /// This scenario with the store model breaking its contract in this way.
    pub fn with_sabotage(mut self, sabotage: Sabotage) -> Self {
        self.sabotage = Some(sabotage);
        self
    }

    /// This scenario with faults injected for `faults_for`.
    pub fn with_faults_for(mut self, faults_for: Duration) -> Self {
        self.faults_for = faults_for;
        self
    }
}
