//! The binaries' log: stderr, levels from `RUST_LOG` (default `info`), access lines
//! switched by the configuration (`[log] access`), text or one JSON object per line
//! (`[log] format`).
//!
//! Lines are formatted on the thread that logs and written by a thread of their own,
//! in batches, so the proxy's threads make no system call for them. Nothing is
//! dropped: when [`QUEUED_LINES`] wait (a sink slower than the traffic for long),
//! loggers wait, as a plain write would. Access lines, one per request, skip the
//! subscriber's formatter (see [`crate::access_log`]) and go to the same writer, in
//! the same layout.

use std::io::{BufWriter, IsTerminal};
use std::sync::{Mutex, OnceLock};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// Lines queued for the writer thread at most: a burst of them is absorbed, and a
/// stalled sink holds about 2 MiB (tracing-appender's default, 128k lines, would hold
/// some 30 MiB).
const QUEUED_LINES: usize = 8192;

/// The writer thread's guard: dropping it writes out what is queued.
static WRITER: Mutex<Option<WorkerGuard>> = Mutex::new(None);

/// Where access lines go once [`init_logging`] ran.
static ACCESS_SINK: OnceLock<AccessSink> = OnceLock::new();

/// The log's writer, for lines formatted outside the subscriber.
#[derive(Clone)]
pub(crate) struct AccessSink {
    /// The queue to the writer thread.
    pub(crate) writer: NonBlocking,
    /// Whether the level is coloured, as the subscriber colours it.
    pub(crate) ansi: bool,
    /// The lines' format.
    pub(crate) format: LogFormat,
}

/// How the binaries write their log lines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// `2026-11-26T21:31:39.842934Z  INFO target: message key=value …`.
    #[default]
    Text,
    /// One JSON object per line, as tracing-subscriber's JSON formatter writes them:
    /// `{"timestamp":…,"level":…,"fields":{…},"target":…}`; an access line's fields
    /// are its values (`kind`, `client`, `status`, …), typed, for a log shipper.
    Json,
}

/// The log's writer, if [`init_logging`] set one up (an embedder's own subscriber
/// gets access lines as tracing events instead).
pub(crate) fn access_sink() -> Option<&'static AccessSink> {
    ACCESS_SINK.get()
}

/// Starts logging to stderr in `format`. Call [`flush_logs`] before the process exits.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let ansi = std::io::stderr().is_terminal() && format == LogFormat::Text;
    // The writer thread flushes whenever it has no more lines waiting.
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("switchyard-log")
        .finish(BufWriter::new(std::io::stderr()));
    let sink = AccessSink {
        writer: writer.clone(),
        ansi,
        format,
    };
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => subscriber.init(),
        LogFormat::Json => subscriber.json().init(),
    }
    let _ = ACCESS_SINK.set(sink);
    *WRITER.lock().unwrap_or_else(|e| e.into_inner()) = Some(guard);
}

/// Writes out every line logged so far and stops the writer thread (later lines are
/// lost): the last call before the process exits.
pub fn flush_logs() {
    let guard = WRITER.lock().unwrap_or_else(|e| e.into_inner()).take();
    drop(guard);
}
