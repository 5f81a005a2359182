//! The one writer of stdout and stderr: every line pbiops prints is queued to a thread of its own.
//!
//! The run lives on one runtime thread. Written there, a line blocks that thread whenever the
//! reader falls behind (a full pipe): polls, capacity-slot renewals, signals and the deadline all
//! stop with it, and a worker that stops renewing its slots loses them to other workers. Queued,
//! only the writer thread waits. Log lines wait up to [`BACKLOG`] bytes; beyond it they are
//! dropped and counted, and the count is logged once the reader has caught up. Outputs, metrics
//! and errors are never dropped. [`flush`] waits until everything queued is written: the end of
//! a run, before the process exits.
//!
//! The writer is woken only when it is idle: after writing, it gathers what comes for
//! [`GATHER`] before it writes again, so a busy fleet's lines go out in a few writes a second
//! instead of one wake-up and one write each. A flush ends the gathering at once.
//!
//! `tracing-appender` has such a writer, but it drops or blocks every line alike (outputs must
//! never be dropped, logs must never block) and brings the `time` crates for its rolling files.

use std::io::Write;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

/// Bytes of log lines that may wait for the reader before further ones are dropped: thousands of
/// lines, more than a reader that is merely slow ever leaves behind.
const BACKLOG: usize = 1 << 20;
/// How long the writer gathers lines after a write before it writes again.
const GATHER: Duration = Duration::from_millis(50);

/// Where a line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Standard output: Kestra's marker lines, outputs.
    Out,
    /// Standard error: human and JSON logs.
    Err,
}

/// What waits for the writer.
#[derive(Default)]
struct Queue {
    out: Vec<u8>,
    err: Vec<u8>,
    /// Bytes of log lines in `out` and `err`.
    logs: usize,
    /// Log lines dropped since the writer last wrote.
    dropped: usize,
    /// Callers waiting for everything queued before them to be written.
    flushes: Vec<Sender<()>>,
    /// The writer waits for work: the next line wakes it.
    idle: bool,
}

struct Console {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Whether the writer thread runs; without it, lines are written in place.
    threaded: bool,
}

impl Console {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn console() -> &'static Console {
    static CONSOLE: OnceLock<Console> = OnceLock::new();
    CONSOLE.get_or_init(|| {
        let threaded = std::thread::Builder::new()
            .name("pbiops-console".into())
            .spawn(write_all)
            .is_ok();
        Console {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            threaded,
        }
    })
}

/// Prints `line` and a newline; never dropped.
pub(crate) fn line(stream: Stream, line: &str) {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    queue(stream, &bytes, false);
}

/// Prints a formatted log event (`bytes` end with their newline); dropped when the backlog is full.
pub(crate) fn log(stream: Stream, bytes: &[u8]) {
    queue(stream, bytes, true);
}

fn queue(stream: Stream, bytes: &[u8], log: bool) {
    let console = console();
    if !console.threaded {
        write_to(stream, bytes);
        return;
    }
    let mut queue = console.lock();
    if log {
        if queue.logs + bytes.len() > BACKLOG {
            queue.dropped += 1;
            return;
        }
        queue.logs += bytes.len();
    }
    match stream {
        Stream::Out => queue.out.extend_from_slice(bytes),
        Stream::Err => queue.err.extend_from_slice(bytes),
    }
    if std::mem::take(&mut queue.idle) {
        console.wake.notify_one();
    }
}

/// Waits until every line queued so far is written and flushed.
pub(crate) fn flush() {
    let console = console();
    if !console.threaded {
        return;
    }
    let (done, written) = channel();
    console.lock().flushes.push(done);
    console.wake.notify_one();
    let _ = written.recv();
}

/// The writer thread: writes what is queued, then gathers for [`GATHER`] (or until a flush);
/// reports dropped log lines once the reader has taken what waited.
fn write_all() {
    let console = console();
    let mut queue = console.lock();
    loop {
        while queue.out.is_empty() && queue.err.is_empty() && queue.flushes.is_empty() {
            queue.idle = true;
            queue = console
                .wake
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
        queue.idle = false;
        let out = std::mem::take(&mut queue.out);
        let err = std::mem::take(&mut queue.err);
        let flushes = std::mem::take(&mut queue.flushes);
        let dropped = std::mem::take(&mut queue.dropped);
        queue.logs = 0;
        drop(queue);
        // stderr first: a human log line explains the output that follows it.
        write_to(Stream::Err, &err);
        write_to(Stream::Out, &out);
        if dropped > 0 {
            // Queued like any log line, and written before the flush below is answered.
            tracing::warn!(
                "{dropped} log lines were dropped: the output was not read while more than {} KiB of lines waited",
                BACKLOG / 1024
            );
            queue = console.lock();
            queue.flushes.extend(flushes);
            continue;
        }
        for done in flushes {
            let _ = done.send(());
        }
        queue = console.lock();
        if queue.flushes.is_empty() {
            queue = console
                .wake
                .wait_timeout_while(queue, GATHER, |q| q.flushes.is_empty())
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

fn write_to(stream: Stream, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // A reader that went away leaves nothing to report to.
    let _ = match stream {
        Stream::Out => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).and_then(|()| out.flush())
        }
        Stream::Err => std::io::stderr().lock().write_all(bytes),
    };
}

/// A `tracing` writer: collects one formatted event and queues it as a log line when dropped.
pub(crate) struct LogWriter {
    stream: Stream,
    bytes: Vec<u8>,
}

impl LogWriter {
    /// A writer for one event on `stream`.
    pub(crate) fn new(stream: Stream) -> LogWriter {
        LogWriter {
            stream,
            bytes: Vec::new(),
        }
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if !self.bytes.is_empty() {
            log(self.stream, &self.bytes);
        }
    }
}
