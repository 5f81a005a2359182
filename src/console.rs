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
//! `tracing-appender` has such a writer, but it drops or blocks every line alike (outputs must
//! never be dropped, logs must never block) and brings the `time` crates for its rolling files.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

/// Bytes of log lines that may wait for the reader before further ones are dropped: thousands of
/// lines, more than a reader that is merely slow ever leaves behind.
const BACKLOG: usize = 1 << 20;

/// Where a line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Standard output: Kestra's marker lines, outputs.
    Out,
    /// Standard error: human and JSON logs.
    Err,
}

enum Message {
    /// Bytes ending in a newline; `log` when they may have been dropped (and count in `pending`).
    Lines {
        stream: Stream,
        bytes: Vec<u8>,
        log: bool,
    },
    Flush(Sender<()>),
}

struct Console {
    /// `None` when the writer thread could not start: lines are then written in place.
    queue: Option<Sender<Message>>,
    /// Bytes of log lines queued and not yet written.
    pending: AtomicUsize,
    /// Log lines dropped since the reader last caught up.
    dropped: AtomicUsize,
}

fn console() -> &'static Console {
    static CONSOLE: OnceLock<Console> = OnceLock::new();
    CONSOLE.get_or_init(|| {
        let (tx, rx) = channel();
        let queue = std::thread::Builder::new()
            .name("pbiops-console".into())
            .spawn(move || write_all(&rx))
            .ok()
            .map(|_| tx);
        Console {
            queue,
            pending: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    })
}

/// Prints `line` and a newline; never dropped.
pub(crate) fn line(stream: Stream, line: &str) {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    send(stream, bytes, false);
}

/// Prints a formatted log event (`bytes` end with their newline); dropped when the backlog is full.
pub(crate) fn log(stream: Stream, bytes: Vec<u8>) {
    let console = console();
    let len = bytes.len();
    if console.queue.is_some() && console.pending.fetch_add(len, Ordering::AcqRel) + len > BACKLOG {
        console.pending.fetch_sub(len, Ordering::AcqRel);
        console.dropped.fetch_add(1, Ordering::AcqRel);
        return;
    }
    send(stream, bytes, true);
}

fn send(stream: Stream, bytes: Vec<u8>, log: bool) {
    let console = console();
    let message = Message::Lines { stream, bytes, log };
    let unsent = match &console.queue {
        Some(queue) => queue.send(message).err().map(|e| e.0),
        None => Some(message),
    };
    if let Some(Message::Lines { stream, bytes, .. }) = unsent {
        write_to(stream, &bytes);
    }
}

/// Waits until every line queued so far is written and flushed.
pub(crate) fn flush() {
    let Some(queue) = &console().queue else {
        return;
    };
    let (done, written) = channel();
    if queue.send(Message::Flush(done)).is_ok() {
        let _ = written.recv();
    }
}

/// The writer thread: writes what is queued in batches (one `write` for every line that waited),
/// and reports dropped log lines once the reader has caught up.
fn write_all(queue: &Receiver<Message>) {
    let console = console();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Ok(first) = queue.recv() {
        let mut next = Some(first);
        let mut flushed = None;
        while let Some(message) = next.take() {
            match message {
                Message::Lines { stream, bytes, log } => {
                    if log {
                        console.pending.fetch_sub(bytes.len(), Ordering::AcqRel);
                    }
                    match stream {
                        Stream::Out => out.extend_from_slice(&bytes),
                        Stream::Err => err.extend_from_slice(&bytes),
                    }
                }
                Message::Flush(done) => {
                    flushed = Some(done);
                    break;
                }
            }
            next = queue.try_recv().ok();
        }
        // stderr first: a human log line explains the output that follows it.
        write_to(Stream::Err, &err);
        write_to(Stream::Out, &out);
        err.clear();
        out.clear();
        let dropped = console.dropped.swap(0, Ordering::AcqRel);
        if dropped > 0 {
            // Queued like any log line; a flush waiting meanwhile is answered after it.
            tracing::warn!(
                "{dropped} log lines were dropped: the output was not read while more than {} KiB of lines waited",
                BACKLOG / 1024
            );
            if let (Some(done), Some(queue)) = (flushed.take(), &console.queue) {
                let _ = queue.send(Message::Flush(done));
            }
        }
        if let Some(done) = flushed {
            let _ = done.send(());
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
            log(self.stream, std::mem::take(&mut self.bytes));
        }
    }
}
