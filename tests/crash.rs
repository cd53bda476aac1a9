//! Crash loops, as Kafka tests its transactions: real child processes are
//! killed with SIGKILL at random points and restarted; a checker then counts
//! lost, duplicated and unexpected messages (as RabbitMQ's Jepsen checker
//! does). `MQLITE_CRASH_KILLS` raises the number of kills (default 50).
//!
//! The test binary re-runs itself as the child (`child_process` below).
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mqlite::{ConsumeRequest, Database, Durability, Message};

fn open(path: &str) -> Database {
    Database::builder(path)
        .durability(Durability::Normal)
        .open()
        .expect("open")
}

fn kills() -> usize {
    std::env::var("MQLITE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

/// A small deterministic generator (xorshift64*): the seed is printed so a
/// failing run can be replayed with MQLITE_CRASH_SEED.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("MQLITE_CRASH_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(7)
                    | 1
            });
        eprintln!("crash test seed: MQLITE_CRASH_SEED={seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[test]
fn child_process() {
    let Ok(role) = std::env::var("MQLITE_CRASH_ROLE") else {
        return;
    };
    let path = std::env::var("MQLITE_CRASH_DB").expect("db");
    let db = open(&path);
    match role.as_str() {
        "copier" => copier(&db),
        "producer" => producer(&db),
        other => panic!("unknown role {other}"),
    }
}

/// Copies `in` to `out` with an application row per message, one transaction per batch.
fn copier(db: &Database) {
    loop {
        let mut tx = db.transaction().expect("begin");
        let got = tx
            .consume(&ConsumeRequest::topic("in", "copier").max(5))
            .expect("consume");
        if got.is_empty() {
            tx.rollback().expect("rollback");
            return; // drained
        }
        for d in &got {
            let mut m = Message::new(d.payload.clone());
            if let Some(k) = &d.key {
                m = m.key(k.clone());
            }
            tx.publish("out", m).expect("publish");
            tx.connection()
                .expect("conn")
                .execute(
                    "INSERT INTO app_rows (payload) VALUES (?1)",
                    [d.payload_str().as_ref()],
                )
                .expect("app row");
        }
        tx.ack(&got.iter().map(|d| d.id).collect::<Vec<_>>())
            .expect("ack");
        tx.commit().expect("commit");
    }
}

/// Publishes ids up to MQLITE_CRASH_UPTO with dedup ids, logging each one
/// it saw acknowledged; after a restart it retries from a little before the
/// last acknowledged id.
fn producer(db: &Database) {
    let log_path = std::env::var("MQLITE_CRASH_LOG").expect("log");
    let upto: u64 = std::env::var("MQLITE_CRASH_UPTO")
        .expect("upto")
        .parse()
        .expect("upto");
    let last = std::fs::read_to_string(&log_path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse::<u64>().ok())
        .max();
    let start = last.map_or(0, |l| l.saturating_sub(3));
    // A kill can tear the last line ("15" of "1560"): start on a fresh line
    // so a fragment never joins the next number.
    let torn = std::fs::read(&log_path).is_ok_and(|b| b.last().is_some_and(|c| *c != b'\n'));
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("log");
    if torn {
        writeln!(log).expect("log write");
    }
    for i in start..upto {
        let p = db
            .publish(
                "ids",
                Message::new(format!("id-{i}")).dedup_id(format!("id-{i}")),
            )
            .expect("publish");
        if last.is_some_and(|l| i <= l) {
            assert!(
                p.duplicate,
                "id-{i} was acknowledged before: must be a duplicate"
            );
        }
        // One write call per line (writeln! may split it in two).
        log.write_all(format!("{i}\n").as_bytes())
            .expect("log write");
    }
}

fn spawn(role: &str, db: &str, env: &[(&str, String)]) -> Child {
    let mut c = Command::new(std::env::current_exe().expect("exe"));
    c.args([
        "--exact",
        "child_process",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env("MQLITE_CRASH_ROLE", role)
    .env("MQLITE_CRASH_DB", db)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().expect("spawn")
}

/// Kills the child after a random delay (it may also finish first); returns
/// whether it was killed.
fn kill_after(mut child: Child, rng: &mut Rng) -> bool {
    std::thread::sleep(Duration::from_micros(1000 + rng.below(30_000)));
    let finished = child.try_wait().expect("try_wait").is_some();
    if !finished {
        child.kill().expect("kill");
    }
    let out = child.wait_with_output().expect("wait");
    if finished {
        assert!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    !finished
}

fn integrity_ok(db: &str) {
    let d = open(db);
    let rs = d.execute("CHECK").expect("check");
    assert_eq!(
        rs.rows,
        vec![vec![mqlite::Value::Text("ok".into())]],
        "integrity after a kill"
    );
}

fn run_to_end(role: &str, db: &str, env: &[(&str, String)]) {
    let out = spawn(role, db, env).wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "final {role} run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn killed_copier_transactions_lose_and_duplicate_nothing() {
    if std::env::var("MQLITE_CRASH_ROLE").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let p = path.to_str().unwrap().to_string();
    let db = open(&p);
    db.execute(
        "CREATE TOPIC in PARTITIONS 3; CREATE TOPIC out PARTITIONS 3;
         SUBSCRIBE GROUP copier TO in FROM BEGINNING;",
    )
    .unwrap();
    let tx = db.transaction().unwrap();
    tx.connection()
        .unwrap()
        .execute_batch("CREATE TABLE app_rows (id INTEGER PRIMARY KEY, payload TEXT)")
        .unwrap();
    tx.commit().unwrap();

    let mut rng = Rng::new();
    let mut sent: Vec<(String, String)> = Vec::new();
    let mut seq = 0;
    let mut publish_more = |n: usize, sent: &mut Vec<(String, String)>| {
        let batch: Vec<Message> = (0..n)
            .map(|_| {
                seq += 1;
                let key = format!("k{}", seq % 7);
                let payload = format!("{key}-{seq:05}");
                sent.push((key.clone(), payload.clone()));
                Message::new(payload).key(key)
            })
            .collect();
        db.publish_batch("in", batch).unwrap();
    };
    publish_more(100, &mut sent);
    let mut killed = 0;
    while killed < kills() {
        publish_more(20, &mut sent);
        if kill_after(spawn("copier", &p, &[]), &mut rng) {
            killed += 1;
            if std::env::var("MQLITE_CRASH_VERBOSE").is_ok() {
                let lag = db.execute("SELECT lag FROM GROUPS").unwrap();
                eprintln!(
                    "kill {killed}: sent {}, lag {:?}",
                    sent.len(),
                    lag.rows[0][0]
                );
            }
        }
        integrity_ok(&p);
    }
    run_to_end("copier", &p, &[]);

    let out = db
        .execute("SELECT key, payload FROM out ORDER BY partition, offset")
        .unwrap();
    let outs: Vec<(String, String)> = out
        .rows
        .iter()
        .map(|r| (r[0].to_string(), r[1].to_string()))
        .collect();
    let conn_rows: Vec<String> = {
        let tx = db.transaction().unwrap();
        let c = tx.connection().unwrap();
        let mut st = c.prepare("SELECT payload FROM app_rows").unwrap();
        let v = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<Vec<String>, _>>()
            .unwrap();
        drop(st);
        tx.rollback().unwrap();
        v
    };
    let want: HashSet<&String> = sent.iter().map(|(_, p)| p).collect();
    for (what, got) in [
        (
            "out messages",
            outs.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(),
        ),
        ("app rows", conn_rows),
    ] {
        let mut counts: HashMap<&String, usize> = HashMap::new();
        for g in &got {
            *counts.entry(g).or_default() += 1;
        }
        let lost = want.iter().filter(|w| !counts.contains_key(*w)).count();
        let duplicated = counts.values().filter(|&&c| c > 1).count();
        let unexpected = counts.keys().filter(|k| !want.contains(*k)).count();
        assert_eq!(
            (lost, duplicated, unexpected),
            (0, 0, 0),
            "{what}: lost, duplicated, unexpected after {killed} kills"
        );
    }
    // Per key, the output keeps the input order.
    let mut by_key: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for (k, p) in &outs {
        by_key.entry(k).or_default().push(p);
    }
    for (k, ps) in by_key {
        let want: Vec<&String> = sent
            .iter()
            .filter(|(sk, _)| sk == k)
            .map(|(_, p)| p)
            .collect();
        assert_eq!(ps, want, "order of key {k}");
    }
    assert_eq!(
        db.execute("SELECT lag, pending FROM GROUPS").unwrap().rows[0],
        vec![mqlite::Value::Int(0), mqlite::Value::Int(0)]
    );
}

#[test]
fn killed_producers_with_dedup_ids_store_every_id_exactly_once() {
    if std::env::var("MQLITE_CRASH_ROLE").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dedup.db");
    let p = path.to_str().unwrap().to_string();
    let log = dir.path().join("acked.log").to_str().unwrap().to_string();
    open(&p).execute("CREATE TOPIC ids PARTITIONS 2").unwrap();
    let mut rng = Rng::new();
    let mut upto = 0u64;
    let mut killed = 0;
    while killed < kills() {
        upto += 40;
        let env = [
            ("MQLITE_CRASH_LOG", log.clone()),
            ("MQLITE_CRASH_UPTO", upto.to_string()),
        ];
        if kill_after(spawn("producer", &p, &env), &mut rng) {
            killed += 1;
        }
        integrity_ok(&p);
    }
    let env = [
        ("MQLITE_CRASH_LOG", log.clone()),
        ("MQLITE_CRASH_UPTO", upto.to_string()),
    ];
    run_to_end("producer", &p, &env);

    let db = open(&p);
    let rs = db
        .execute("SELECT payload, COUNT(*) AS n FROM ids GROUP BY payload")
        .unwrap();
    let stored: HashMap<String, i64> = rs
        .rows
        .iter()
        .map(|r| {
            (
                r[0].to_string(),
                if let mqlite::Value::Int(n) = r[1] {
                    n
                } else {
                    -1
                },
            )
        })
        .collect();
    let dups: Vec<_> = stored.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        dups.is_empty(),
        "{} ids stored more than once, e.g. {:?}",
        dups.len(),
        &dups[..dups.len().min(10)]
    );
    let missing: Vec<u64> = (0..upto)
        .filter(|i| !stored.contains_key(&format!("id-{i}")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} ids never stored, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let acked: HashSet<u64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    assert!(
        acked
            .iter()
            .all(|i| stored.contains_key(&format!("id-{i}"))),
        "an acknowledged id is missing"
    );
    assert_eq!(stored.len() as u64, upto, "nothing unexpected");
}
