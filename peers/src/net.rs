//! The brokers' clients are async: they run on one tokio runtime, and the
//! (synchronous) workloads call them through `call`, which bounds each step
//! by `TIMEOUT`.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

use crate::Result;

/// Longest any one network step (connect, a publish and its confirmation,
/// a fetch, an ack) may take before the run fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A runtime with one worker per core: the clients' connection tasks run
/// there while the workload threads wait in `call`.
pub fn runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .enable_all()
        .build()
        .map_err(|e| format!("start the tokio runtime: {e}"))
}

/// Runs `step` on the runtime, from a thread outside it; fails with `what`
/// and the error, or after `TIMEOUT`.
pub fn call<T, E: Display>(
    rt: &Handle,
    what: &str,
    step: impl Future<Output = std::result::Result<T, E>>,
) -> Result<T> {
    rt.block_on(async {
        match tokio::time::timeout(TIMEOUT, step).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Err(_) => Err(format!("{what}: no answer in {} s", TIMEOUT.as_secs())),
        }
    })
}
