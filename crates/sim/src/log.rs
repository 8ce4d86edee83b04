//! The engines' warnings and errors, kept with the world (shown with a failing seed's
//! trace) rather than written to stderr. Not part of the trace hash: log lines name run
//! ids, which are UUIDs.

use std::io;
use std::sync::Arc;

use crate::world::World;

/// A writer into the world's log; one per event, as `tracing_subscriber` asks.
pub(crate) struct LogSink {
    world: Arc<World>,
    line: Vec<u8>,
}

impl LogSink {
    /// What the subscriber calls for each event's writer.
    pub(crate) fn maker(world: Arc<World>) -> impl Fn() -> LogSink + Send + Sync + 'static {
        move || LogSink {
            world: world.clone(),
            line: Vec::new(),
        }
    }
}

impl io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogSink {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        self.world.log(text.trim_end());
    }
}
