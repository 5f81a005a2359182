//! A local, stateful emulator of the HTTP APIs pbiops talks to: Entra ID's token endpoint and the
//! managed identity endpoints, the Power BI REST API (workspaces, semantic models and refreshes,
//! Gen1 dataflows, reports, lineage), the Fabric REST API (workspaces, items, jobs) and Power
//! Automate HTTP triggers, plus a control API for tests. The crate's README is its specification.
//!
//! It is written from Microsoft's documented wire format, never from the client's types, so that
//! a field-name mistake in the client fails a test instead of being mirrored here.
//!
//! Module map:
//! - [`scenario`]: the scenario file (identities, workspaces, models, dataflows, reports, Fabric
//!   items, flows, and how each runs).
//! - `state`: the mutable world behind one mutex, and the emulator's clock.
//! - `refresh`: the model refresh state machine (when a refresh ends and how).
//! - `dataflow`, `jobs`, `progress`: dataflow transactions and Fabric job instances, which end by
//!   the same observation rules.
//! - `entra`: the token endpoint (secrets, certificate and federated assertions) and the managed
//!   identity endpoints.
//! - `powerbi`: the Power BI routes (discovery, refreshes, enhanced-body validation, `$filter`,
//!   dataflows, reports).
//! - `fabric`: the Fabric routes (workspaces, items, Job Scheduler).
//! - `flows`: Power Automate / Logic Apps HTTP triggers.
//! - `control`: the `/_emulator/…` control API.
//! - `faults`: fault injection, request log and counts (one middleware).
//! - `wire`: wire types, error envelopes, timestamps, common headers.
//! - `router`: paths, route names and the axum router.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let emulator = pbiops_emulator::spawn(pbiops_emulator::Scenario::demo(), "127.0.0.1:0").await?;
//! println!("{}", emulator.base_url()); // http://127.0.0.1:41234
//! emulator.shutdown().await
//! # }
//! ```

// Handlers return early with a ready error `Response` (`Result<_, Response>`), axum's idiom; the
// size of that error is irrelevant next to an HTTP round trip.
#![allow(clippy::result_large_err)]

mod control;
mod dataflow;
mod entra;
mod fabric;
mod faults;
mod flows;
mod jobs;
mod powerbi;
mod progress;
mod refresh;
mod router;
pub mod scenario;
mod state;
mod wire;

pub use scenario::Scenario;

use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Serves the emulator on `listener` until `shutdown` completes, then drains open requests.
pub async fn serve(
    listener: TcpListener,
    scenario: Scenario,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router::build(state::Shared::new(scenario));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `addr` (e.g. `127.0.0.1:0`) and serves the emulator on the current tokio runtime.
///
/// The server runs as a task of the caller's runtime: a test that blocks its thread (for example
/// on a child process) should use a multi-threaded runtime.
pub async fn spawn(scenario: Scenario, addr: &str) -> std::io::Result<Emulator> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, scenario, async {
        // A dropped sender also means "stop".
        let _ = rx.await;
    }));
    Ok(Emulator {
        addr,
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// A running emulator; it stops gracefully on [`Emulator::shutdown`] or when dropped.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Emulator {
    /// The base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and waits until open requests are answered.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(()),
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
