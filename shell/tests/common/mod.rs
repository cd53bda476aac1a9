//! Helpers of the attack tests (harness, soak): child processes whose
//! stdout lines are collected as they come, and a seeded generator.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
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
    lines: Arc<Mutex<Vec<String>>>,
    out: Option<JoinHandle<()>>,
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

/// Reads complete lines into `lines` until EOF; a last line without
/// newline is dropped.
pub fn complete_lines(out: impl Read, lines: &Mutex<Vec<String>>) {
    let mut r = BufReader::new(out);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(_) if buf.last() == Some(&b'\n') => {
                buf.pop();
                let line = String::from_utf8_lossy(&buf).into_owned();
                lines.lock().unwrap().push(line);
            }
            _ => return,
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
        cmd: Command,
        input: Option<String>,
    ) -> Running {
        match input {
            None => Running::start_with_writer(name, cmd, None::<fn(ChildStdin)>),
            Some(text) => Running::start_with_writer(
                name,
                cmd,
                Some(move |mut stdin: ChildStdin| {
                    let _ = stdin.write_all(text.as_bytes());
                }),
            ),
        }
    }

    /// Starts the child; `writer`, when given, gets its stdin in a thread of
    /// its own (the child sees EOF when the writer returns).
    pub fn start_with_writer<W>(
        name: impl Into<String>,
        mut cmd: Command,
        writer: Option<W>,
    ) -> Running
    where
        W: FnOnce(ChildStdin) + Send + 'static,
    {
        if writer.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn");
        if let Some(w) = writer {
            let stdin = child.stdin.take().expect("stdin piped");
            std::thread::spawn(move || w(stdin));
        }
        let stdout: ChildStdout = child.stdout.take().expect("stdout piped");
        let mut stderr = child.stderr.take().expect("stderr piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let out = std::thread::spawn(move || complete_lines(stdout, &sink));
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Running {
            name: name.into(),
            child,
            lines,
            out: Some(out),
            err: Some(err),
        }
    }

    /// The complete lines printed so far, shared with the reading thread.
    pub fn lines_handle(&self) -> Arc<Mutex<Vec<String>>> {
        self.lines.clone()
    }

    /// The complete lines printed so far.
    pub fn lines_so_far(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
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
        if let Some(h) = self.out.take() {
            h.join().unwrap();
        }
        let lines = std::mem::take(&mut *self.lines.lock().unwrap());
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
