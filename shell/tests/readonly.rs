//! `--readonly` after a crash and where the file may only be read (issue
//! #10, hole 9): it reads the committed data, changes no byte of the
//! database or its write-ahead log, and never checkpoints.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

const BIN: &str = env!("CARGO_BIN_EXE_mqlite");

/// Publishes acknowledged (jsonl rows printed) before the writer is killed.
const ACKED_BEFORE_KILL: usize = 200;

/// A file's length, a hash of its bytes, and its modification time.
#[derive(Debug, PartialEq)]
struct FileState {
    len: usize,
    hash: u64,
    modified: SystemTime,
}

fn state(path: &Path) -> Option<FileState> {
    let bytes = fs::read(path).ok()?;
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    Some(FileState {
        len: bytes.len(),
        hash: h.finish(),
        modified: fs::metadata(path).ok()?.modified().ok()?,
    })
}

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

/// Starts a writer on `db` publishing without end, SIGKILLs it after
/// `ACKED_BEFORE_KILL` acknowledged publishes, and returns how many it
/// acknowledged. It leaves a WAL behind (its connection never closed).
fn crash_a_writer(db: &Path) -> usize {
    // 4,000 publishes: far more than run before the kill, and short of the
    // length limit of one command-line argument.
    let script = format!("CREATE TOPIC t; {}", "PUBLISH t 'a message';".repeat(4_000));
    let mut child = Command::new(BIN)
        .arg(db)
        .arg(script)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().expect("stdout");
    let mut acked = 0;
    for line in BufReader::new(stdout).lines() {
        line.expect("read writer output");
        acked += 1;
        if acked == ACKED_BEFORE_KILL {
            break;
        }
    }
    child.kill().expect("SIGKILL the writer");
    child.wait().expect("reap the writer");
    assert_eq!(acked, ACKED_BEFORE_KILL, "the writer published");
    let wal = fs::metadata(sibling(db, "-wal")).expect("a WAL is left behind");
    assert!(wal.len() > 0, "the WAL has content");
    acked
}

/// The count of `t` as a read-write open sees it, on a copy of the files
/// (the copy recovers the WAL; the original is not touched).
fn count_of_a_copy(db: &Path) -> u64 {
    let copy = tempfile::tempdir().expect("temp dir");
    let to = copy.path().join("copy.db");
    for suffix in ["", "-wal", "-shm"] {
        let from = sibling(db, suffix);
        if from.exists() {
            fs::copy(&from, sibling(&to, suffix)).expect("copy");
        }
    }
    let out = Command::new(BIN)
        .arg(&to)
        .arg("SELECT COUNT(*) AS n FROM t")
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    count(&out)
}

fn count(out: &Output) -> u64 {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one jsonl row");
    row["n"].as_u64().expect("n")
}

fn read_only_count(db: &Path, as_nobody: bool) -> Output {
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    cmd.arg("--readonly")
        .arg(db)
        .arg("SELECT COUNT(*) AS n FROM t")
        .output()
        .expect("run --readonly")
}

/// The database, its -wal and -shm as they are now.
fn all_states(db: &Path) -> [Option<FileState>; 3] {
    ["", "-wal", "-shm"].map(|s| state(&sibling(db, s)))
}

#[test]
fn readonly_after_a_crash_reads_the_wal_and_checkpoints_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("hot.db");
    let acked = crash_a_writer(&db);
    let expected = count_of_a_copy(&db);
    assert!(expected >= acked as u64, "{expected} < {acked}");
    let [main, wal, _] = all_states(&db);

    let out = read_only_count(&db, false);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(count(&out), expected);
    assert_eq!(state(&db), main, "the database file is unchanged");
    assert_eq!(
        state(&sibling(&db, "-wal")),
        wal,
        "the WAL is still there, unchanged: nothing was checkpointed"
    );
}

/// Whether this process may run a child as user `nobody`: it is root
/// (whose reads bypass file permissions) and `setpriv` exists.
fn can_run_as_nobody() -> bool {
    let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !(root && setpriv) {
        eprintln!("skipped: needs root and setpriv to read as another user");
    }
    root && setpriv
}

/// A directory and database of root's that user `nobody` may read only
/// (files 0644, directory 0755).
fn readable_only(dir: &Path, db: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod dir");
    for suffix in ["", "-wal", "-shm"] {
        let f = sibling(db, suffix);
        if f.exists() {
            fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).expect("chmod");
        }
    }
}

#[test]
fn readonly_works_for_a_user_who_may_only_read() {
    if !can_run_as_nobody() {
        return;
    }
    // After a crash: the WAL and its index are there, read-only to nobody.
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("hot.db");
    crash_a_writer(&db);
    let expected = count_of_a_copy(&db);
    readable_only(dir.path(), &db);
    let before = all_states(&db);
    let out = read_only_count(&db, true);
    assert!(out.status.success(), "after a crash: {out:?}");
    assert_eq!(count(&out), expected);
    assert_eq!(all_states(&db), before, "nothing changed");

    // Closed cleanly: no WAL, and none can be created in the directory.
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("cold.db");
    let out = Command::new(BIN)
        .arg(&db)
        .arg("CREATE TOPIC t; PUBLISH t 'a'; PUBLISH t 'b'")
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    readable_only(dir.path(), &db);
    let before = all_states(&db);
    let out = read_only_count(&db, true);
    assert!(out.status.success(), "closed cleanly: {out:?}");
    assert_eq!(count(&out), 2);
    assert_eq!(all_states(&db), before, "nothing changed");

    // A WAL whose index (-shm) is gone and cannot be made: a clear error.
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("hot.db");
    crash_a_writer(&db);
    fs::remove_file(sibling(&db, "-shm")).expect("remove -shm");
    readable_only(dir.path(), &db);
    let before = all_states(&db);
    let out = read_only_count(&db, true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr.starts_with("Error: ") && stderr.contains("hot.db-shm"),
        "{stderr}"
    );
    assert_eq!(all_states(&db), before, "nothing changed");
}
