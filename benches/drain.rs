//! Memory and file size while draining a large queue (issue target: a
//! consumer draining 10,000,000 messages stays under 64 MB RSS, and the file
//! gives its space back afterwards).
//!
//! ```text
//! cargo bench --bench drain -- 10000000 /tmp/drain.db   # messages, file (replaced)
//! cargo bench --bench drain                             # 1,000,000 in a temp dir
//! ```
//!
//! A measurement, not a criterion bench (`harness = false`). `cargo bench`
//! adds `--bench` to the arguments; without it (`cargo test --benches`) the
//! default is a smoke run of 10,000 messages.

use mqlite::{ConsumeRequest, Database, Durability, Message};

fn rss_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() -> mqlite::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: u64 = match args.first() {
        Some(a) => a.parse().expect("the number of messages"),
        None if bench => 1_000_000,
        None => 10_000,
    };
    let dir = tempfile::tempdir()?;
    let path = args
        .get(1)
        .map_or_else(|| dir.path().join("drain.db"), Into::into);
    let _ = std::fs::remove_file(&path);
    let db = Database::builder(&path)
        .durability(Durability::Normal)
        .open()?;
    db.execute("CREATE QUEUE q")?;
    let payload = format!("{{\"i\":1,\"pad\":\"{}\"}}", "x".repeat(182));
    let t = std::time::Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(10_000);
        db.publish_batch("q", (0..k).map(|_| Message::new(payload.clone())).collect())?;
        left -= k;
    }
    let size_full = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "published {n} in {:.1}s; file {} MB; RSS peak so far {} MB",
        t.elapsed().as_secs_f64(),
        size_full >> 20,
        rss_kb("VmHWM:") >> 10
    );
    let t = std::time::Instant::now();
    let mut got = 0u64;
    loop {
        let batch = db.consume(&ConsumeRequest::queue("q").max(1000))?;
        if batch.is_empty() {
            break;
        }
        got += batch.len() as u64;
        db.ack(&batch.iter().map(|d| d.id).collect::<Vec<_>>())?;
    }
    assert_eq!(got, n, "every message drained once");
    println!(
        "drained {got} in {:.1}s ({:.0} msgs/s); RSS now {} MB, peak {} MB",
        t.elapsed().as_secs_f64(),
        got as f64 / t.elapsed().as_secs_f64(),
        rss_kb("VmRSS:") >> 10,
        rss_kb("VmHWM:") >> 10
    );
    drop(db);
    let size_after = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("file {} MB after the drain and close", size_after >> 20);
    Ok(())
}
