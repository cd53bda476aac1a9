//! The crash harness: producers, consumers (ack, nack, nack dead), a DLQ
//! mover and shell processes share one file and are SIGKILLed at random.
//! Every child prints one line per operation it was told succeeded; the
//! parent keeps those lines (a line cut by the kill was not confirmed) and,
//! after every round, a fresh process reads the file back. The checks:
//! lost = 0 (every confirmed publish is stored where it was reported),
//! unexpected = 0 (nothing that no child published, nothing twice), no
//! delivery of a message after its ACK was confirmed, no message both live
//! (not yet acked) and dead (in the DLQ), CHECK ok.
//!
//! `MQLITE_CRASH_KILLS` sets the number of kills (default 200, about a
//! minute); the counts are printed at the end (`--nocapture` shows them).
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{Finished, Rng, Running, child_command, env_num, shell};
use mqlite::rusqlite::{self, OpenFlags};
use mqlite::{ConsumeRequest, Database, Durability, Error, Message, NackAction};

/// Retention forever, so every message stays in the log and "lost" can be
/// checked against it; a short ACK WAIT so killed consumers' leases come back.
const SETUP: &str = "CREATE TOPIC t PARTITIONS 3 RETENTION FOREVER ACK WAIT 1s MAX DELIVERIES 4;
                     SUBSCRIBE GROUP g TO t FROM BEGINNING";
const ACK_WAIT: Duration = Duration::from_secs(1);
/// The most messages a producer may have in flight (a batch), unconfirmed.
const BATCH: u64 = 3;

fn open(path: &str) -> Database {
    Database::builder(path)
        .durability(Durability::Normal)
        .open()
        .expect("open")
}

/// The child side: does nothing unless started by the parent test.
#[test]
fn child_process() {
    let Ok(role) = std::env::var("MQLITE_ROLE") else {
        return;
    };
    let path = std::env::var("MQLITE_DB").expect("db");
    let id = std::env::var("MQLITE_ID").unwrap_or_default();
    // The test harness printed "test child_process ... " without a newline.
    println!();
    let db = open(&path);
    match role.as_str() {
        "producer" => producer(&db, &id),
        "consumer" => consumer(&db, &id, false),
        "drain" => consumer(&db, &id, true),
        "mover" => mover(&db),
        "checker" => checker(&db, &path),
        other => panic!("unknown role {other}"),
    }
}

/// Prints an unexpected error and exits non-zero: the parent fails on it.
fn fail(what: &str, e: &Error) -> ! {
    println!("ERR {what}: {e}");
    std::process::exit(3)
}

/// Publishes `p<id>-<n>` with the payload as dedup id, singly and in
/// batches of BATCH; prints `PUB payload partition offset` once confirmed.
fn producer(db: &Database, id: &str) {
    let mut rng = Rng(env_num("MQLITE_SEED", 7) | 1);
    let mut n = 0u64;
    loop {
        let count = if rng.below(5) == 0 { BATCH } else { 1 };
        let msgs: Vec<Message> = (n..n + count)
            .map(|k| {
                let p = format!("p{id}-{k}");
                Message::new(p.clone())
                    .dedup_id(p)
                    .key(format!("k{}", k % 5))
            })
            .collect();
        match db.publish_batch("t", msgs) {
            Ok(done) => {
                for (k, p) in (n..).zip(done) {
                    println!("PUB p{id}-{k} {} {}", p.partition, p.offset);
                }
            }
            Err(e) => fail("publish", &e),
        }
        n += count;
    }
}

/// Consumes from group g; prints `GOT delivery partition offset` per
/// delivery, then acks most, nacks some and dead-letters some (the drain
/// acks everything and stops when nothing is left).
fn consumer(db: &Database, id: &str, drain: bool) {
    let mut rng = Rng(env_num("MQLITE_SEED", 7) | 1);
    let mut empty = 0;
    loop {
        let req = ConsumeRequest::topic("t", "g")
            .max(1 + rng.below(8) as usize)
            .member(format!("c{id}"))
            .wait(Duration::from_millis(20));
        let before = now_us();
        let got = db.consume(&req).unwrap_or_else(|e| fail("consume", &e));
        for d in &got {
            println!("GOT {} {} {} {before}", d.id, d.partition, d.offset);
        }
        if got.is_empty() {
            empty += 1;
            if drain && empty > 10 {
                return;
            }
            continue;
        }
        empty = 0;
        let mut acks = Vec::new();
        for d in &got {
            let r = if drain { 0 } else { rng.below(100) };
            if r < 85 {
                acks.push(d);
            } else {
                let (word, action) = if r < 93 {
                    ("NACK", NackAction::Now)
                } else {
                    ("DEAD", NackAction::Dead(Some("harness".into())))
                };
                match db.nack(&[d.id], &action) {
                    Ok(()) => println!("{word} {} {} {}", d.id, d.partition, d.offset),
                    Err(e) => fenced_or_fail("nack", &e),
                }
            }
        }
        ack(db, &acks);
    }
}

/// Acks in one call; if a lease ran out meanwhile (fenced), acks one by one.
fn ack(db: &Database, ds: &[&mqlite::Delivery]) {
    let print = |d: &mqlite::Delivery| {
        println!("ACK {} {} {} {}", d.id, d.partition, d.offset, now_us());
    };
    match db.ack(&ds.iter().map(|d| d.id).collect::<Vec<_>>()) {
        Ok(()) => ds.iter().for_each(|d| print(d)),
        Err(e) => {
            fenced_or_fail("ack", &e);
            for d in ds {
                match db.ack(&[d.id]) {
                    Ok(()) => print(d),
                    Err(e) => fenced_or_fail("ack", &e),
                }
            }
        }
    }
}

/// Microseconds since the epoch: one clock for every process of the machine,
/// so the parent can order a delivery that started after an ACK returned.
fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// A lease that ran out and was given to another consumer is an expected
/// refusal; anything else is a failure.
fn fenced_or_fail(what: &str, e: &Error) {
    match e {
        Error::StaleDelivery { .. } | Error::UnknownDelivery(_) => println!("FENCED {what}: {e}"),
        _ => fail(what, e),
    }
}

/// Gives dead letters back to the group, a few at a time.
fn mover(db: &Database) {
    loop {
        match db.execute("REQUEUE DLQ t GROUP g LIMIT 3") {
            Ok(rs) => println!("REQ {:?}", rs.rows),
            Err(e) => fail("requeue", &e),
        }
        std::thread::sleep(Duration::from_millis(15));
    }
}

/// The fresh process that reads the file back after a round: CHECK, every
/// message (`MSG partition offset payload`), every dead letter (`DEAD_ROW
/// partition offset`) and every message still live for group g (`LIVE
/// partition offset`: pending, in an unsettled range lease, or past the
/// cursor).
fn checker(db: &Database, path: &str) {
    let rs = db.execute("CHECK").unwrap_or_else(|e| fail("check", &e));
    println!("CHECK {:?}", rs.rows);
    let rs = db
        .execute("SELECT partition, offset, payload FROM t")
        .unwrap_or_else(|e| fail("select", &e));
    for r in &rs.rows {
        println!("MSG {} {} {}", r[0], r[1], r[2]);
    }
    let rs = db
        .execute("SELECT partition, offset FROM DLQ")
        .unwrap_or_else(|e| fail("select dlq", &e));
    for r in &rs.rows {
        println!("DEAD_ROW {} {}", r[0], r[1]);
    }
    let c = rusqlite::Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    for (p, o) in live(&c) {
        println!("LIVE {p} {o}");
    }
}

/// Messages of t not acked by g, from mqlite's tables (see docs/design.md,
/// "Range leases"): pending rows, unset bits of range leases, and every
/// offset from the cursor to the end of the partition.
fn live(c: &rusqlite::Connection) -> BTreeSet<(i64, i64)> {
    let q = |sql: &str| -> Vec<(i64, i64, i64, Vec<u8>)> {
        let mut st = c.prepare(sql).unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let ids = "group_id = (SELECT id FROM mq_groups WHERE name = 'g')
               AND topic_id = (SELECT id FROM mq_topics WHERE name = 't')";
    let mut live = BTreeSet::new();
    for (p, o, _, _) in q(&format!(
        "SELECT partition, offset, 0, x'' FROM mq_pending WHERE {ids}"
    )) {
        live.insert((p, o));
    }
    for (p, first, count, acked) in q(&format!(
        "SELECT partition, first_offset, count, acked FROM mq_leases WHERE {ids}"
    )) {
        for i in 0..count {
            let bit = acked
                .get((i / 8) as usize)
                .is_some_and(|b| b & (1 << (i % 8)) != 0);
            if !bit {
                live.insert((p, first + i));
            }
        }
    }
    for (p, cursor, end, _) in q(&format!(
        "SELECT c.partition, c.next_offset,
                (SELECT COALESCE(MAX(offset) + 1, 0) FROM mq_messages m
                 WHERE m.topic_id = c.topic_id AND m.partition = c.partition), x''
         FROM mq_cursors c WHERE {ids}"
    )) {
        live.extend((cursor..end).map(|o| (p, o)));
    }
    live
}

type Pos = (i64, i64);

/// What the parent learnt from the children's confirmed lines.
#[derive(Default)]
struct Log {
    /// payload -> where its publish was confirmed.
    published: HashMap<String, Pos>,
    /// producer name -> highest confirmed sequence number.
    highest: HashMap<String, u64>,
    /// producer names started (the only ones allowed to appear).
    producers: HashSet<String>,
    /// message -> when its earliest confirmed ACK had returned (µs).
    acked: HashMap<Pos, i64>,
    /// every (delivery id, message, µs before its CONSUME started) printed.
    got: Vec<(u64, Pos, i64)>,
    errors: Vec<String>,
    kills: u64,
    nacks: u64,
    deads: u64,
}

#[derive(Debug, Default, PartialEq)]
struct Counts {
    lost: usize,
    unexpected: usize,
    redelivered_after_ack: usize,
    ack_undone: usize,
    live_and_dead: usize,
    integrity_failures: usize,
}

fn nums(rest: &str) -> Vec<i64> {
    rest.split(' ').filter_map(|w| w.parse().ok()).collect()
}

impl Log {
    fn take(&mut self, f: &Finished) {
        for line in &f.lines {
            let Some((word, rest)) = line.split_once(' ') else {
                continue;
            };
            match word {
                "PUB" => {
                    let mut w = rest.split(' ');
                    let payload = w.next().unwrap().to_string();
                    let n = nums(rest);
                    self.confirm_publish(payload, (n[0], n[1]));
                }
                "GOT" => {
                    let n = nums(rest);
                    self.got.push((n[0] as u64, (n[1], n[2]), n[3]));
                }
                "ACK" => {
                    let n = nums(rest);
                    let t = self.acked.entry((n[1], n[2])).or_insert(n[3]);
                    *t = (*t).min(n[3]);
                }
                "NACK" => self.nacks += 1,
                "DEAD" => self.deads += 1,
                "ERR" => self.errors.push(format!("{}: {line}", f.name)),
                _ => {}
            }
        }
        if f.status.is_some_and(|s| !s.success()) {
            self.errors
                .push(format!("{} exited {:?}: {}", f.name, f.status, f.stderr));
        }
    }

    fn confirm_publish(&mut self, payload: String, at: Pos) {
        if let Some((who, n)) = payload.rsplit_once('-') {
            let n: u64 = n.parse().unwrap();
            let h = self.highest.entry(who.to_string()).or_default();
            *h = (*h).max(n);
        }
        self.published.insert(payload, at);
    }

    /// A payload some child may have published: a started producer's, at
    /// most BATCH past its highest confirmed number.
    fn possible(&self, payload: &str) -> bool {
        let Some((who, n)) = payload.rsplit_once('-') else {
            return false;
        };
        let Ok(n) = n.parse::<u64>() else {
            return false;
        };
        self.producers.contains(who)
            && match self.highest.get(who) {
                Some(h) => n <= h + BATCH,
                None => n < BATCH,
            }
    }

    /// Compares the log with what the checker read from the file.
    fn check(&self, f: &Finished) -> Counts {
        let mut c = Counts::default();
        let mut stored: HashMap<String, Vec<Pos>> = HashMap::new();
        let (mut live, mut dead) = (HashSet::new(), HashSet::new());
        let mut checked = false;
        for line in &f.lines {
            let Some((word, rest)) = line.split_once(' ') else {
                continue;
            };
            let n = nums(rest);
            match word {
                "CHECK" => {
                    checked = true;
                    if rest != "[[Text(\"ok\")]]" {
                        eprintln!("CHECK: {rest}");
                        c.integrity_failures += 1;
                    }
                }
                "MSG" => {
                    let payload = rest.splitn(3, ' ').nth(2).unwrap().to_string();
                    stored.entry(payload).or_default().push((n[0], n[1]));
                }
                "DEAD_ROW" => {
                    dead.insert((n[0], n[1]));
                }
                "LIVE" => {
                    live.insert((n[0], n[1]));
                }
                _ => {}
            }
        }
        assert!(checked, "checker failed: {}\n{:?}", f.stderr, f.lines);
        for (payload, at) in &self.published {
            if stored.get(payload).is_none_or(|v| !v.contains(at)) {
                eprintln!(
                    "lost: {payload} at {at:?}, stored {:?}",
                    stored.get(payload)
                );
                c.lost += 1;
            }
        }
        for (payload, at) in &stored {
            if at.len() > 1 || !self.possible(payload) {
                eprintln!("unexpected: {payload} at {at:?}");
                c.unexpected += 1;
            }
        }
        // Delivery ids are reserved in blocks per process, so they do not
        // order deliveries across processes; the clock does: a CONSUME that
        // started after an ACK of the same message had returned must not
        // have delivered it.
        for (id, m, started) in &self.got {
            if self.acked.get(m).is_some_and(|acked| started > acked) {
                eprintln!("redelivered after ack: {m:?} as {id}");
                c.redelivered_after_ack += 1;
            }
        }
        c.ack_undone = self
            .acked
            .keys()
            .filter(|m| live.contains(m) || dead.contains(m))
            .count();
        c.live_and_dead = live.intersection(&dead).count();
        c
    }
}

/// Starts every role once for a round, with fresh ids (a killed producer's
/// successor publishes new payloads).
fn start_round(db: &str, round: u64, rng: &mut Rng, log: &mut Log) -> Vec<Running> {
    let mut children = Vec::new();
    let lib = |role: &str, id: String, rng: &mut Rng| {
        let mut c = child_command(role, db);
        c.env("MQLITE_ID", &id)
            .env("MQLITE_SEED", rng.below(u64::MAX).to_string());
        Running::start(format!("{role} {id}"), c)
    };
    for k in 0..2 {
        let id = format!("{round}x{k}");
        log.producers.insert(format!("p{id}"));
        children.push(lib("producer", id, rng));
    }
    for k in 0..2 {
        children.push(lib("consumer", format!("{round}x{k}"), rng));
    }
    children.push(lib("mover", round.to_string(), rng));
    children.push(shell_producer(db, &round.to_string(), log));
    children
}

/// A shell process fed PUBLISH and REQUEUE statements on stdin; its n-th
/// publish row confirms its n-th PUBLISH.
fn shell_producer(db: &str, id: &str, log: &mut Log) -> Running {
    log.producers.insert(format!("s{id}"));
    let mut input = String::new();
    for n in 0..20_000 {
        input.push_str(&format!("PUBLISH t DEDUP 's{id}-{n}' 's{id}-{n}';\n"));
        if n % 4 == 3 {
            input.push_str("REQUEUE DLQ t GROUP g LIMIT 1;\n");
        }
    }
    let mut c = shell();
    c.arg(db)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    Running::start_with_input(format!("shell {id}"), c, Some(input))
}

/// Turns the shell's jsonl rows into the same PUB lines the library
/// children print.
fn shell_lines(f: Finished, id: &str) -> Finished {
    let mut n = 0;
    let mut lines = Vec::new();
    for l in &f.lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("jsonl row");
        if let (Some(p), Some(o)) = (v["partition"].as_i64(), v["offset"].as_i64()) {
            lines.push(format!("PUB s{id}-{n} {p} {o}"));
            n += 1;
        }
    }
    // A killed shell has no status; one that stopped by itself failed.
    if let Some(s) = f.status {
        lines.push(format!("ERR shell exited {s}: {}", f.stderr));
    }
    Finished { lines, ..f }
}

fn run_checker(db: &str) -> Finished {
    Running::start("checker", child_command("checker", db)).wait()
}

/// Rounds on one file before the next file starts: the checker reads every
/// message back after each round, so a long run moves to a new file to keep
/// each check small.
const ROUNDS_PER_FILE: u64 = 25;

/// Totals over all files, printed at the end.
#[derive(Default)]
struct Totals {
    kills: u64,
    rounds: u64,
    files: u64,
    published: usize,
    acked: usize,
    nacks: u64,
    deads: u64,
    deliveries: usize,
}

/// Kills one child after another at its own random moment of the round.
fn kill_round(children: Vec<Running>, rng: &mut Rng, log: &mut Log) {
    let mut children = children;
    let mut at: Vec<u64> = children.iter().map(|_| 50 + rng.below(550)).collect();
    let t0 = Instant::now();
    while !children.is_empty() {
        let i = (0..at.len()).min_by_key(|&i| at[i]).unwrap();
        let due = Duration::from_millis(at.remove(i));
        std::thread::sleep(due.saturating_sub(t0.elapsed()));
        let child = children.remove(i);
        let name = child.name.clone();
        let f = child.kill();
        if f.status.is_none() {
            log.kills += 1;
        }
        let f = match name.strip_prefix("shell ") {
            Some(id) => shell_lines(f, id),
            None => f,
        };
        log.take(&f);
    }
}

/// Rounds of kills on a fresh file until `kills` more kills or
/// ROUNDS_PER_FILE rounds, each followed by a check; then a drain (after
/// the killed consumers' leases ran out) and a last check.
fn one_file(kills: u64, rng: &mut Rng, totals: &mut Totals) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db").to_str().unwrap().to_string();
    open(&db).execute(SETUP).unwrap();
    let mut log = Log::default();
    let mut round = 0;
    while log.kills < kills && round < ROUNDS_PER_FILE {
        let children = start_round(&db, round, rng, &mut log);
        kill_round(children, rng, &mut log);
        let c = log.check(&run_checker(&db));
        assert!(log.errors.is_empty(), "children failed: {:#?}", log.errors);
        let at = totals.kills + log.kills;
        assert_eq!(c, Counts::default(), "after round {round}, {at} kills");
        round += 1;
    }
    std::thread::sleep(ACK_WAIT + Duration::from_millis(200));
    let mut drain = child_command("drain", &db);
    drain.env("MQLITE_ID", "drain");
    log.take(&Running::start("drain", drain).wait());
    let checked = run_checker(&db);
    let c = log.check(&checked);
    let left = checked
        .lines
        .iter()
        .filter(|l| l.starts_with("LIVE "))
        .count();
    assert!(log.errors.is_empty(), "children failed: {:#?}", log.errors);
    assert_eq!(c, Counts::default(), "after the drain");
    assert_eq!(left, 0, "the drain leaves every message acked or dead");
    assert!(
        log.published.len() > 100 && !log.acked.is_empty(),
        "the children did work"
    );
    totals.kills += log.kills;
    totals.rounds += round;
    totals.files += 1;
    totals.published += log.published.len();
    totals.acked += log.acked.len();
    totals.nacks += log.nacks;
    totals.deads += log.deads;
    totals.deliveries += log.got.len();
    if std::env::var("MQLITE_CRASH_VERBOSE").is_ok() {
        eprintln!(
            "file {}: {} kills in {round} rounds, {} confirmed publishes, {} acks; all counts 0 \
             (totals: {} kills, {} publishes, {} acks)",
            totals.files,
            log.kills,
            log.published.len(),
            log.acked.len(),
            totals.kills,
            totals.published,
            totals.acked
        );
    }
}

#[test]
fn random_sigkills_lose_nothing_and_never_redeliver_an_acked_message() {
    if std::env::var("MQLITE_ROLE").is_ok() {
        return;
    }
    let mut rng = Rng::from_env("crash harness");
    let want = env_num("MQLITE_CRASH_KILLS", 200);
    let started = Instant::now();
    let mut t = Totals::default();
    while t.kills < want {
        one_file(want - t.kills, &mut rng, &mut t);
    }
    // Every check above asserted zero; reaching here means every count is 0.
    eprintln!(
        "crash harness: {} kills in {} rounds on {} files, {:.1} s: confirmed publishes {}, \
         confirmed acks {}, nacks {}, nack-deads {}, deliveries seen {}; lost 0, unexpected 0, \
         redelivered after ack 0, ack undone 0, live and dead 0, integrity failures 0",
        t.kills,
        t.rounds,
        t.files,
        started.elapsed().as_secs_f64(),
        t.published,
        t.acked,
        t.nacks,
        t.deads,
        t.deliveries,
    );
}
