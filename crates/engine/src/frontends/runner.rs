//! The front-ends' own runtime, and how the synchronous API runs futures on it.

use super::*;

/// Runs futures to completion for the synchronous API.
#[derive(Clone)]
pub(super) struct Runner {
    pub(super) rt: Arc<OwnedRuntime>,
}

/// The front-end's own runtime, which may be dropped anywhere: tokio forbids dropping a
/// runtime (which waits for its tasks) inside another runtime's context, the usual
/// place of a background scheduler in a web application, so there it winds down in
/// the background instead.
pub(super) struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for OwnedRuntime {
    type Target = tokio::runtime::Runtime;
    fn deref(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("present until dropped")
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            }
        }
    }
}

impl Runner {
    pub(super) fn new() -> Result<Self, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("aps-io")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Other,
                    format!("cannot start the scheduler's runtime: {e}"),
                )
            })?;
        Ok(Runner {
            rt: Arc::new(OwnedRuntime(Some(rt))),
        })
    }

    pub(super) fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        // Pinned in place: a job API future is a few hundred bytes, and handing it to
        // the runtime by value would copy it several times per call.
        let mut fut = std::pin::pin!(fut);
        // Most calls finish without waiting (a scheduler not started yet, the memory
        // store): one poll inside the runtime's context answers them without the cost
        // of a full `block_on` (or of a helper thread when called from async code).
        {
            let _context = self.rt.enter();
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            // Called from inside an async context: blocking this thread on another
            // runtime is not allowed, so drive the future from a helper thread.
            std::thread::scope(|s| {
                s.spawn(|| self.rt.block_on(fut))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
        } else {
            self.rt.block_on(fut)
        }
    }
}
