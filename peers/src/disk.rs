//! How fast the disk fsyncs right now: on a shared machine it moves by ten
//! times within minutes, and every durable row waits for it, so each
//! system's turn is preceded by a probe and the figure is reported with it.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

use crate::Result;

/// Writes per probe.
const WRITES: u32 = 200;

/// Rewrites one 4 KiB block of a file in `dir` and fdatasyncs it, `WRITES`
/// times; the rate of those.
pub fn fsyncs_per_second(dir: &Path) -> Result<f64> {
    let path = dir.join("fsync-probe");
    let fail = |e: std::io::Error| format!("disk probe {}: {e}", path.display());
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(fail)?;
    let block = [0x5a_u8; 4096];
    f.write_all(&block)
        .and_then(|()| f.sync_all())
        .map_err(fail)?;
    let start = Instant::now();
    for _ in 0..WRITES {
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.write_all(&block))
            .and_then(|()| f.sync_data())
            .map_err(fail)?;
    }
    let rate = f64::from(WRITES) / start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path).map_err(fail)?;
    Ok(rate)
}
