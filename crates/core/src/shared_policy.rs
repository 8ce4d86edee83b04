//! One allocation for the many jobs that share a run policy.
//!
//! Jobs usually get their policy from the same place (`[job_defaults]`, one spec
//! reused), so consecutive non-default policies are mostly equal. Sharing them keeps a
//! job's policy a reference count instead of its own allocation (with the retry's
//! `on` list, two): measured, the per-job allocations cost a pass running 10,000
//! such jobs 8 % more instructions than jobs with the default policy, mostly
//! in freeing them when the jobs end (docs/PERFORMANCE.md, "Run policies").

use std::sync::{Arc, Mutex, PoisonError};

use crate::job::default_policy;
use crate::policy::RunPolicy;

/// The last non-default policy handed out, reused while the next ones equal it.
static LAST: Mutex<Option<Arc<RunPolicy>>> = Mutex::new(None);

/// `policy` as a shared `Arc`: the default policy's shared instance, the previous
/// non-default policy's instance when `policy` equals it, or a new one (then kept for
/// the next call). Equal policies behave alike, so sharing changes nothing but memory.
pub fn shared_policy(policy: &RunPolicy) -> Arc<RunPolicy> {
    if policy.is_default() {
        return default_policy();
    }
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    match &*last {
        Some(kept) if **kept == *policy => kept.clone(),
        _ => {
            let new = Arc::new(policy.clone());
            *last = Some(new.clone());
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Overlap, RetryPolicy};
    use std::time::Duration;

    #[test]
    fn equal_policies_share_one_allocation_and_different_ones_do_not() {
        let a = RunPolicy {
            retry: Some(RetryPolicy::new(3, Duration::from_secs(10))),
            overlap: Overlap::BufferOne,
            ..RunPolicy::default()
        };
        let b = RunPolicy {
            overlap: Overlap::Skip,
            ..a.clone()
        };
        let first = shared_policy(&a);
        let second = shared_policy(&a);
        assert!(Arc::ptr_eq(&first, &second));
        let other = shared_policy(&b);
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(*other, b);
        assert_eq!(*first, a);
        assert!(Arc::ptr_eq(
            &shared_policy(&RunPolicy::default()),
            &default_policy()
        ));
    }
}
