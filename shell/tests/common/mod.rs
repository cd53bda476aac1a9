//! Helpers of the attack tests (harness, soak): child processes whose
//! stdout lines are collected as they come, and a seeded generator.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

/// A small deterministic generator (xorshift64*); the seed is printed so a
/// failing run can be replayed with `MQLITE_CRASH_SEED`.
pub struct Rng(pub u64);

impl Rng {
    pub fn from_env(what: &str) -> Rng {
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
        eprintln!("{what} seed: MQLITE_CRASH_SEED={seed}");
        Rng(seed | 1)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// A command that re-runs this test binary as the child test `child_process`
/// with `role` in `MQLITE_ROLE`.
pub fn child_command(role: &str, db: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("exe"));
    c.args([
        "--exact",
        "child_process",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env("MQLITE_ROLE", role)
    .env("MQLITE_DB", db)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

/// A running child whose stdout and stderr are read by threads, so it never
/// blocks on a full pipe.
pub struct Running {
    pub name: String,
    pub child: Child,
    out: Option<JoinHandle<Vec<String>>>,
    err: Option<JoinHandle<String>>,
}

/// What a child printed: only complete lines (a line cut by SIGKILL before
/// its newline was not confirmed), and its stderr.
pub struct Finished {
    pub name: String,
    pub lines: Vec<String>,
    pub stderr: String,
    /// None when it was killed.
    pub status: Option<std::process::ExitStatus>,
}

/// Reads complete lines until EOF; a last line without newline is dropped.
pub fn complete_lines(out: impl Read) -> Vec<String> {
    let mut r = BufReader::new(out);
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return lines,
            Ok(_) if buf.last() == Some(&b'\n') => {
                buf.pop();
                lines.push(String::from_utf8_lossy(&buf).into_owned());
            }
            Ok(_) => return lines,
        }
    }
}

impl Running {
    pub fn start(name: impl Into<String>, cmd: Command) -> Running {
        Running::start_with_input(name, cmd, None)
    }

    /// Starts the child and, when given, writes `input` to its stdin from a
    /// thread (a write cut by the child's death is ignored).
    pub fn start_with_input(
        name: impl Into<String>,
        mut cmd: Command,
        input: Option<String>,
    ) -> Running {
        if input.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn");
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(text.as_bytes());
            });
        }
        let stdout: ChildStdout = child.stdout.take().expect("stdout piped");
        let mut stderr = child.stderr.take().expect("stderr piped");
        let out = std::thread::spawn(move || complete_lines(stdout));
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Running {
            name: name.into(),
            child,
            out: Some(out),
            err: Some(err),
        }
    }

    /// SIGKILLs the child (if still running) and collects what it printed.
    pub fn kill(mut self) -> Finished {
        let status = match self.child.try_wait().expect("try_wait") {
            Some(s) => Some(s),
            None => {
                let _ = self.child.kill();
                self.child.wait().expect("wait");
                None
            }
        };
        self.collect(status)
    }

    /// Waits for the child to exit by itself.
    pub fn wait(mut self) -> Finished {
        let status = self.child.wait().expect("wait");
        self.collect(Some(status))
    }

    fn collect(&mut self, status: Option<std::process::ExitStatus>) -> Finished {
        let lines = self
            .out
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        let stderr = self
            .err
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default();
        Finished {
            name: self.name.clone(),
            lines,
            stderr,
            status,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that panics midway must not leave children running.
        if self.out.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `mqlite` shell binary.
pub fn shell() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mqlite"))
}

/// A number from the environment, or the default.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
