//! Fault injection under real SQLite. A small LD_PRELOAD shim, built here
//! with the C compiler, makes `write`/`pwrite`/`fsync`/`fdatasync` on the
//! database's files fail (EIO or ENOSPC) once, a few times in a row, or for
//! good, after a countdown. A child process (this test binary run again)
//! publishes with dedup ids and consumes/acks, printing each operation it
//! was told succeeded; a clean process then reopens the file: every
//! confirmed publish is there at its offset, no id twice, no acked message
//! delivered again, CHECK ok, and it takes writes again. Skipped, with a
//! message, where there is no C compiler.
//!
//! Disk full: a 2 MB tmpfs mounted by the test when it runs as root
//! (skipped with a message where mounting is not allowed).
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mqlite::{ConsumeRequest, Database, Durability, Message};

const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* fd -> 0 untracked, 1 the database, 2 its -wal, 3 another file of it */
static char tracked[65536];
static long after[2] = {-1, -1}, count[2], seen[2], injected[2];
static int err = EIO, ready;
static const char *match;
static const char *kinds[] = {"write", "fsync"};
static const char *files[] = {"?", "db", "wal", "other"};

static long envl(const char *name, long d) {
    const char *v = getenv(name);
    return v ? atol(v) : d;
}

static void init(void) {
    if (ready) return;
    match = getenv("SHIM_MATCH");
    after[0] = envl("SHIM_WRITE_AFTER", -1);
    count[0] = envl("SHIM_WRITE_COUNT", 0);
    after[1] = envl("SHIM_FSYNC_AFTER", -1);
    count[1] = envl("SHIM_FSYNC_COUNT", 0);
    err = (int)envl("SHIM_ERRNO", EIO);
    ready = 1;
}

static void track(int fd, const char *path) {
    init();
    if (fd < 0 || fd >= 65536) return;
    tracked[fd] = 0;
    if (!match || !path || !strstr(path, match)) return;
    size_t n = strlen(path);
    tracked[fd] = (n > 4 && !strcmp(path + n - 4, "-wal")) ? 2
                : (n > 4 && (!strcmp(path + n - 4, "-shm") || strstr(path, "-journal"))) ? 3 : 1;
}

/* Whether this call on fd fails: count [kind] calls on tracked files; fail
   the ones past the countdown, `count` of them (-1: for good). */
static int fault(int kind, int fd) {
    init();
    if (fd < 0 || fd >= 65536 || !tracked[fd] || after[kind] < 0) return 0;
    seen[kind]++;
    if (seen[kind] <= after[kind]) return 0;
    if (count[kind] >= 0 && injected[kind] >= count[kind]) return 0;
    injected[kind]++;
    dprintf(2, "SHIM injected %s on %s\n", kinds[kind], files[(int)tracked[fd]]);
    errno = err;
    return 1;
}

typedef int (*open_t)(const char *, int, ...);
typedef int (*openat_t)(int, const char *, int, ...);
typedef int (*close_t)(int);
typedef ssize_t (*write_t)(int, const void *, size_t);
typedef ssize_t (*pwrite_t)(int, const void *, size_t, off_t);
typedef int (*fsync_t)(int);
#define REAL(name, T) static T real; if (!real) real = (T)dlsym(RTLD_NEXT, name)

int open(const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, int); va_end(ap);
    REAL("open", open_t);
    int fd = real(path, flags, mode); track(fd, path); return fd;
}
int open64(const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, int); va_end(ap);
    REAL("open64", open_t);
    int fd = real(path, flags, mode); track(fd, path); return fd;
}
int openat(int dir, const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, int); va_end(ap);
    REAL("openat", openat_t);
    int fd = real(dir, path, flags, mode); track(fd, path); return fd;
}
int close(int fd) {
    REAL("close", close_t);
    if (fd >= 0 && fd < 65536) tracked[fd] = 0;
    return real(fd);
}
ssize_t write(int fd, const void *b, size_t n) {
    REAL("write", write_t);
    return fault(0, fd) ? -1 : real(fd, b, n);
}
ssize_t pwrite(int fd, const void *b, size_t n, off_t o) {
    REAL("pwrite", pwrite_t);
    return fault(0, fd) ? -1 : real(fd, b, n, o);
}
ssize_t pwrite64(int fd, const void *b, size_t n, off_t o) {
    REAL("pwrite64", pwrite_t);
    return fault(0, fd) ? -1 : real(fd, b, n, o);
}
int fsync(int fd) {
    REAL("fsync", fsync_t);
    return fault(1, fd) ? -1 : real(fd);
}
int fdatasync(int fd) {
    REAL("fdatasync", fsync_t);
    return fault(1, fd) ? -1 : real(fd);
}
"#;

const EIO: i32 = 5;
const ENOSPC: i32 = 28;
/// Ids each child publishes.
const IDS: u64 = 40;

fn open(path: &Path) -> Database {
    Database::builder(path)
        .durability(Durability::Full)
        .open()
        .expect("open")
}

/// The child: publishes ids 0..IDS with dedup ids, retrying each a few
/// times on error, and consumes + acks one message after every publish.
/// Prints `PUB id partition offset`, `ACK offset`, `ERR what: error`.
#[test]
fn child_process() {
    let Ok(path) = std::env::var("MQLITE_FAULT_DB") else {
        return;
    };
    println!(); // after the harness's "test child_process ... "
    let db = match Database::builder(&path).durability(Durability::Full).open() {
        Ok(db) => db,
        Err(e) => {
            println!("ERR open: {e}");
            return;
        }
    };
    let mut errors_in_a_row = 0;
    for id in 0..IDS {
        for _try in 0..4 {
            let m = Message::new(format!("m{id}")).dedup_id(format!("m{id}"));
            match db.publish("q", m) {
                Ok(p) => {
                    println!("PUB {id} {} {}", p.partition, p.offset);
                    errors_in_a_row = 0;
                    break;
                }
                Err(e) => {
                    println!("ERR publish m{id}: {e}");
                    errors_in_a_row += 1;
                }
            }
        }
        match db.consume(&ConsumeRequest::queue("q").max(1)) {
            Ok(got) => {
                for d in got {
                    match db.ack(&[d.id]) {
                        Ok(()) => println!("ACK {}", d.offset),
                        Err(e) => println!("ERR ack {}: {e}", d.offset),
                    }
                }
            }
            Err(e) => println!("ERR consume: {e}"),
        }
        if errors_in_a_row >= 8 {
            println!("STOP");
            return;
        }
    }
    println!("DONE");
}

/// Builds the shim, or None (with a message) without a C compiler.
fn build_shim(dir: &Path) -> Option<PathBuf> {
    let src = dir.join("shim.c");
    let so = dir.join("shim.so");
    std::fs::write(&src, SHIM).unwrap();
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .output();
    match out {
        Ok(o) if o.status.success() => Some(so),
        Ok(o) => panic!(
            "the shim does not build: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            eprintln!("SKIPPED: fault injection needs a C compiler (cc: {e})");
            None
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Write,
    Fsync,
}

/// What a faulty run printed and what the shim injected.
struct Run {
    published: HashMap<u64, (i64, i64)>,
    acked: HashSet<i64>,
    /// Offsets whose ACK failed: its outcome may be unknown (an fsync
    /// failure at COMMIT), so the message may be gone.
    ack_failed: HashSet<i64>,
    errors: Vec<String>,
    injected: Vec<String>,
    done: bool,
}

/// Runs the child under the shim with `count` faults (-1: for good) of
/// `op` after `after` calls, on a fresh file with a queue.
fn faulty_run(
    shim: &Path,
    op: Op,
    after: u64,
    count: i64,
    errno: i32,
) -> (tempfile::TempDir, PathBuf, Run) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fault.db");
    open(&db).execute("CREATE QUEUE q").unwrap();
    let (a, c) = match op {
        Op::Write => ("SHIM_WRITE_AFTER", "SHIM_WRITE_COUNT"),
        Op::Fsync => ("SHIM_FSYNC_AFTER", "SHIM_FSYNC_COUNT"),
    };
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("MQLITE_FAULT_DB", &db)
        .env("LD_PRELOAD", shim)
        .env("SHIM_MATCH", "fault.db")
        .env(a, after.to_string())
        .env(c, count.to_string())
        .env("SHIM_ERRNO", errno.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child crashed: {stderr}\n{stdout}");
    let mut run = Run {
        published: HashMap::new(),
        acked: HashSet::new(),
        ack_failed: HashSet::new(),
        errors: Vec::new(),
        injected: stderr
            .lines()
            .filter(|l| l.starts_with("SHIM "))
            .map(String::from)
            .collect(),
        done: stdout.lines().any(|l| l == "DONE"),
    };
    for line in stdout.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        match w[0] {
            "PUB" => {
                let n: Vec<i64> = w[1..].iter().map(|x| x.parse().unwrap()).collect();
                let again = run.published.insert(n[0] as u64, (n[1], n[2]));
                assert!(again.is_none(), "id {} confirmed twice", n[0]);
            }
            "ACK" => {
                run.acked.insert(w[1].parse().unwrap());
            }
            "ERR" => {
                if w[1] == "ack" {
                    run.ack_failed
                        .insert(w[2].trim_end_matches(':').parse().unwrap());
                }
                run.errors.push(line.to_string());
            }
            _ => {}
        }
    }
    (dir, db, run)
}

/// A clean process (this one, without the shim) reads the file back:
/// every confirmed publish is where it was reported, no id is stored twice,
/// no confirmed ack is delivered again, CHECK ok, and writes work.
fn verify(db_path: &Path, run: &Run, what: &str) {
    let db = open(db_path);
    assert_eq!(
        db.execute("CHECK").unwrap().rows,
        vec![vec![mqlite::Value::Text("ok".into())]],
        "{what}: integrity"
    );
    let rs = db.execute("SELECT offset, payload FROM q").unwrap();
    let stored: Vec<(i64, String)> = rs
        .rows
        .iter()
        .map(|r| (r[0].to_string().parse().unwrap(), r[1].to_string()))
        .collect();
    let mut seen = HashSet::new();
    for (_, p) in &stored {
        assert!(seen.insert(p.clone()), "{what}: {p} stored twice");
    }
    for (id, (_, offset)) in &run.published {
        // An acked message may stay stored until the messages before it
        // are settled; one never acked must be there.
        if !run.acked.contains(offset) && !run.ack_failed.contains(offset) {
            assert!(
                stored.contains(&(*offset, format!("m{id}"))),
                "{what}: confirmed m{id} at offset {offset} is missing; stored {stored:?}"
            );
        }
    }
    // What can be delivered now holds no message whose ack was confirmed.
    let again = db.consume(&ConsumeRequest::queue("q").max(1000)).unwrap();
    for d in &again {
        assert!(
            !run.acked.contains(&(d.offset as i64)),
            "{what}: offset {} delivered again after its ACK",
            d.offset
        );
    }
    db.publish("q", Message::new("after"))
        .unwrap_or_else(|e| panic!("{what}: a clean process cannot write: {e}"));
}

fn case(shim: &Path, op: Op, after: u64, count: i64, errno: i32) -> Run {
    let what = format!("{op:?} fault x{count} after {after} (errno {errno})");
    let (_dir, db, run) = faulty_run(shim, op, after, count, errno);
    eprintln!(
        "{what}: {} injected, {} errors, {} confirmed publishes, {} acks, done {}",
        run.injected.len(),
        run.errors.len(),
        run.published.len(),
        run.acked.len(),
        run.done
    );
    assert!(
        !run.injected.is_empty(),
        "{what}: the shim injected nothing"
    );
    verify(&db, &run, &what);
    run
}

/// A fault on the WAL during a commit surfaces as an error.
fn wal_fault_reported(run: &Run, what: &str) {
    if run.injected.iter().any(|l| l.ends_with("on wal")) {
        assert!(
            !run.errors.is_empty(),
            "{what}: a WAL fault reported no error"
        );
    }
}

#[test]
fn single_and_repeated_write_and_fsync_faults_are_errors_and_the_next_operations_work() {
    if std::env::var("MQLITE_FAULT_DB").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(shim) = build_shim(dir.path()) else {
        return;
    };
    for (op, after, count, errno) in [
        (Op::Write, 30, 1, EIO),
        (Op::Write, 60, 3, ENOSPC),
        (Op::Fsync, 8, 1, EIO),
        (Op::Fsync, 15, 3, EIO),
    ] {
        let run = case(&shim, op, after, count, errno);
        let what = format!("{op:?} x{count}");
        wal_fault_reported(&run, &what);
        // The faults stop: every id ends up published (the connection that
        // saw the error was replaced and the retries went through).
        assert!(run.done, "{what}: the child gave up: {:?}", run.errors);
        assert_eq!(
            run.published.len() as u64,
            IDS,
            "{what}: every id published"
        );
    }
}

#[test]
fn permanent_write_and_fsync_faults_never_report_success_and_lose_nothing() {
    if std::env::var("MQLITE_FAULT_DB").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(shim) = build_shim(dir.path()) else {
        return;
    };
    for (op, after, errno) in [(Op::Write, 40, EIO), (Op::Fsync, 10, ENOSPC)] {
        let run = case(&shim, op, after, -1, errno);
        let what = format!("{op:?} for good");
        wal_fault_reported(&run, &what);
        assert!(!run.done, "{what}: the child never noticed the fault");
        assert!(!run.errors.is_empty(), "{what}: no error reported");
    }
}

/// Unmounts the tmpfs when dropped (after the database that lives on it).
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path) -> Option<Mount> {
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: disk full needs to mount a tmpfs (run as root)");
        return None;
    }
    Some(Mount(mnt))
}

/// A database on a 2 MB tmpfs beside a 512 KB filler file, filled with
/// 4 KB publishes until one fails: the mount, the file, how many publishes
/// were confirmed and the error of the one that failed.
struct Full {
    // Fields drop in order: the database before the unmount.
    db: Database,
    path: PathBuf,
    confirmed: usize,
    error: String,
    mount: Mount,
}

fn fill_disk(dir: &Path) -> Option<Full> {
    let mount = mount_tmpfs(dir)?;
    std::fs::write(mount.0.join("filler"), vec![7u8; 512 * 1024]).unwrap();
    let path = mount.0.join("full.db");
    let db = open(&path);
    db.execute("CREATE QUEUE q").unwrap();
    let mut confirmed = 0;
    let error = loop {
        assert!(confirmed < 1000, "2 MB never filled up");
        match db.execute(&publish_statement(confirmed)) {
            Ok(_) => confirmed += 1,
            Err(e) => break e.to_string(),
        }
    };
    eprintln!("disk full after {confirmed} publishes: {error}");
    Some(Full {
        mount,
        path,
        db,
        confirmed,
        error,
    })
}

fn publish_statement(n: usize) -> String {
    format!("PUBLISH q DEDUP 'd{n}' '{n} {}'", "x".repeat(4000))
}

/// CHECK is ok; returns the number of messages in q.
fn check_and_count(db: &Database) -> usize {
    assert_eq!(
        db.execute("CHECK").unwrap().rows,
        vec![vec![mqlite::Value::Text("ok".into())]]
    );
    let rs = db.execute("SELECT COUNT(*) FROM q").unwrap();
    rs.rows[0][0].to_string().parse::<usize>().unwrap()
}

#[test]
fn a_full_disk_gives_a_clear_error_loses_nothing_and_works_again_after_space_is_freed() {
    if std::env::var("MQLITE_FAULT_DB").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(full) = fill_disk(dir.path()) else {
        return;
    };
    let (db, n) = (&full.db, full.confirmed);
    assert!(
        full.error.contains("full"),
        "the error says the disk is full: {}",
        full.error
    );
    // While full: reads work, the file is sound, nothing confirmed is lost.
    assert_eq!(check_and_count(db), n, "nothing acknowledged lost");
    // Space freed: the failed publish goes through, then consume and ack.
    std::fs::remove_file(full.mount.0.join("filler")).unwrap();
    db.execute(&publish_statement(n))
        .unwrap_or_else(|e| panic!("publish after freeing space: {e}"));
    let got = db
        .consume(
            &ConsumeRequest::queue("q")
                .max(10)
                .wait(Duration::from_millis(10)),
        )
        .unwrap();
    db.ack(&got.iter().map(|d| d.id).collect::<Vec<_>>())
        .unwrap();
    let reopened = open(&full.path);
    assert_eq!(check_and_count(&reopened), n + 1 - got.len());
}

#[test]
fn on_a_full_disk_each_error_names_its_statement_and_purge_frees_space() {
    if std::env::var("MQLITE_FAULT_DB").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(full) = fill_disk(dir.path()) else {
        return;
    };
    let db = &full.db;
    // PURGE is what a person reaches for on a full disk: it must run.
    db.execute("PURGE q")
        .unwrap_or_else(|e| panic!("PURGE on a full disk: {e}"));
    assert_eq!(check_and_count(db), 0);
    db.execute(&publish_statement(full.confirmed))
        .unwrap_or_else(|e| panic!("publish after PURGE: {e}"));
    assert!(
        full.error.contains("PUBLISH") && full.error.contains("full"),
        "names PUBLISH and the full disk: {}",
        full.error
    );
}
