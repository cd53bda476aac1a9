//! The interactive shell, driven through a real terminal in tmux.
//!
//! Each test starts its own tmux server (own socket) running `mqlite` with a
//! temporary HOME, types into it and reads the screen back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(10);

/// What the pane prints when mqlite has ended, before its exit status.
const EXITED: &str = "mqlite exited with status";

/// A tmux server with one pane running the REPL on `shop.db`.
struct Repl {
    socket: String,
    dir: TempDir,
}

impl Repl {
    /// Starts the REPL on `shop.db` in a fresh temp dir, after running `setup` there.
    fn start(test: &str, setup: &str) -> Repl {
        let available = Command::new("tmux").arg("-V").output();
        assert!(
            available.is_ok_and(|o| o.status.success()),
            "tmux is not installed: the REPL tests need it (apt-get install -y tmux)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("home")).expect("temp HOME");
        if !setup.is_empty() {
            let status = Command::new(env!("CARGO_BIN_EXE_mqlite"))
                .arg(dir.path().join("shop.db"))
                .arg(setup)
                .output()
                .expect("run setup");
            assert!(status.status.success(), "setup failed: {status:?}");
        }
        let repl = Repl {
            socket: format!("mqlite-test-{}-{test}", std::process::id()),
            dir,
        };
        // A shell waits for mqlite and prints its exit status: tmux itself
        // sometimes leaves an exited pane process unreaped for a long while,
        // so `#{pane_dead}` is not a reliable sign that mqlite ended.
        let script = format!("HOME=\"$1\" \"$2\" shop.db; echo \"{EXITED} $?\"; sleep 600");
        repl.tmux(&["-f", "/dev/null"])
            .args(["new-session", "-d", "-x", "120", "-y", "40", "-s", "main"])
            .args(["-c"])
            .arg(repl.dir.path())
            .args(["sh", "-c", &script, "sh"])
            .arg(repl.home())
            .arg(env!("CARGO_BIN_EXE_mqlite"))
            .output()
            .map(|o| assert!(o.status.success(), "tmux new-session: {o:?}"))
            .expect("start tmux");
        repl.wait_for("the prompt", |s| last_line(s) == "shop.db>");
        repl
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn tmux(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket]).args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.tmux(args).output().expect("run tmux");
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        out
    }

    /// Types `text` literally (no key names).
    fn type_text(&self, text: &str) {
        // tmux reads an argument ending in ';' as a command separator.
        let escaped = match text.strip_suffix(';') {
            Some(head) => format!("{head}\\;"),
            None => text.to_string(),
        };
        self.run(&["send-keys", "-t", "main", "-l", &escaped]);
    }

    /// Presses keys by tmux name: `Enter`, `Tab`, `C-c`, `C-d`.
    fn press(&self, key: &str) {
        self.run(&["send-keys", "-t", "main", key]);
    }

    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "main"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until `done` holds; returns that screen.
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `Some(exit status)` once mqlite has exited.
    fn exit_status(&self) -> Option<i32> {
        self.screen()
            .lines()
            .find_map(|l| l.trim().strip_prefix(EXITED))
            .and_then(|status| status.trim().parse().ok())
    }
}

impl Drop for Repl {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]).output();
    }
}

/// The last non-empty line of the screen, trimmed.
fn last_line(screen: &str) -> &str {
    screen
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
}

/// The trimmed cells of a table line.
fn cells(line: &str) -> Vec<&str> {
    line.split(['│', '┆'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

fn history(home: &Path) -> String {
    std::fs::read_to_string(home.join(".mqlite_history")).unwrap_or_default()
}

#[test]
fn a_statement_can_span_two_lines() {
    let repl = Repl::start("multiline", "");
    repl.type_text("CREATE TOPIC orders");
    repl.press("Enter");
    repl.wait_for("the continuation prompt", |s| last_line(s) == "...>");
    repl.type_text("PARTITIONS 2;");
    repl.press("Enter");
    repl.wait_for("the prompt after CREATE", |s| {
        s.contains("...> PARTITIONS 2;") && last_line(s) == "shop.db>"
    });
    repl.type_text("SHOW TOPICS;");
    repl.press("Enter");
    let screen = repl.wait_for("the SHOW TOPICS table", |s| s.contains("(1 row)"));
    let row = screen
        .lines()
        .find(|l| cells(l).first() == Some(&"orders"))
        .unwrap_or_else(|| panic!("no orders row:\n{screen}"));
    assert_eq!(cells(row)[1], "2", "partitions: {row}");
    assert!(!screen.contains("Error"), "{screen}");
    let history = history(&repl.home());
    assert!(history.contains("CREATE TOPIC orders"), "{history}");
    assert!(history.contains("SHOW TOPICS;"), "{history}");
}

#[test]
fn tab_completes_names_and_keywords_and_ctrl_c_clears_the_line() {
    let repl = Repl::start("complete", "CREATE TOPIC orders;");
    repl.type_text("PUBLISH ord");
    repl.press("Tab");
    repl.wait_for("the topic name completed", |s| {
        last_line(s) == "shop.db> PUBLISH orders"
    });

    repl.press("C-c");
    repl.wait_for("a cleared line", |s| last_line(s) == "shop.db>");

    repl.type_text("sel");
    repl.press("Tab");
    repl.wait_for("the keyword completed", |s| {
        last_line(s) == "shop.db> select"
    });
    repl.press("C-c");
    repl.wait_for("a cleared line", |s| last_line(s) == "shop.db>");

    // Had the half-typed text survived, `.mode` would not be a dot-command.
    repl.type_text(".mode");
    repl.press("Enter");
    let screen = repl.wait_for("the .mode answer", |s| {
        s.contains("current output mode: table") && last_line(s) == "shop.db>"
    });
    assert!(!screen.contains("...>"), "{screen}");
    assert!(!screen.contains("Error"), "{screen}");
}

#[test]
fn errors_are_shown_and_the_repl_goes_on() {
    let repl = Repl::start("errors", "");
    repl.type_text("PUBLISH nope 'x';");
    repl.press("Enter");
    repl.wait_for("the engine error", |s| {
        s.contains("Error: ") && s.contains("nope") && last_line(s) == "shop.db>"
    });
    repl.type_text("PUBLISH x 'a' 'b';");
    repl.press("Enter");
    let screen = repl.wait_for("the syntax error", |s| {
        s.lines().any(|l| l.trim() == "^") && last_line(s) == "shop.db>"
    });
    assert!(screen.contains("PUBLISH x 'a' 'b';"), "{screen}");
    repl.type_text(".frobnicate");
    repl.press("Enter");
    repl.wait_for("the dot-command error", |s| {
        s.contains("unknown command '.frobnicate'")
    });
    assert_eq!(repl.exit_status(), None, "the REPL must keep running");
}

#[test]
fn ctrl_d_exits_with_status_0() {
    let repl = Repl::start("eof", "");
    repl.press("C-d");
    let start = Instant::now();
    while repl.exit_status().is_none() {
        assert!(
            start.elapsed() < WAIT,
            "mqlite did not exit:\n{}",
            repl.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(repl.exit_status(), Some(0));
}

#[test]
fn ctrl_d_says_which_unfinished_statement_it_dropped() {
    let repl = Repl::start("eof-pending", "");
    repl.type_text("CREATE TOPIC never");
    repl.press("Enter");
    repl.wait_for("the continuation prompt", |s| last_line(s) == "...>");
    repl.type_text("PARTITIONS 2");
    repl.press("Enter");
    repl.wait_for("the continuation prompt", |s| last_line(s) == "...>");
    repl.press("C-d");
    let screen = repl.wait_for("mqlite to exit", |s| s.contains(EXITED));
    assert!(
        screen.contains("Not run (Ctrl-D before its ';'):"),
        "{screen}"
    );
    let said = screen
        .lines()
        .skip_while(|l| !l.starts_with("Not run"))
        .nth(1)
        .unwrap_or_default();
    assert_eq!(said.trim_end(), "CREATE TOPIC never", "{screen}");
    assert_eq!(repl.exit_status(), Some(0));
    let topics = Command::new(env!("CARGO_BIN_EXE_mqlite"))
        .arg(repl.dir.path().join("shop.db"))
        .arg("SHOW TOPICS")
        .output()
        .expect("run mqlite");
    assert_eq!(String::from_utf8_lossy(&topics.stdout), "", "nothing ran");
}

#[test]
fn statements_without_rows_print_a_status_and_the_timer_its_state() {
    let repl = Repl::start("status", "");
    repl.type_text("CREATE TOPIC orders;");
    repl.press("Enter");
    repl.wait_for("the status line", |s| {
        s.lines().any(|l| l.trim() == "CREATE TOPIC") && last_line(s) == "shop.db>"
    });
    repl.type_text(".timer");
    repl.press("Enter");
    repl.wait_for("the timer's state", |s| {
        s.lines().any(|l| l.trim() == "timer: off") && last_line(s) == "shop.db>"
    });
    repl.type_text(".timer on");
    repl.press("Enter");
    repl.type_text("SUBSCRIBE GROUP g TO orders;");
    repl.press("Enter");
    let screen = repl.wait_for("the status and the run time", |s| {
        s.lines().any(|l| l.starts_with("Run Time: ")) && last_line(s) == "shop.db>"
    });
    let lines: Vec<&str> = screen.lines().map(str::trim).collect();
    let at = lines
        .iter()
        .position(|l| *l == "SUBSCRIBE")
        .unwrap_or_else(|| panic!("no SUBSCRIBE status:\n{screen}"));
    let time = lines[at + 1].strip_prefix("Run Time: ").unwrap_or_default();
    assert_eq!(
        time.split_once('.').map(|(_, f)| f.len()),
        Some(7),
        "six decimals and 's': {screen}"
    );
}

#[test]
fn tail_in_table_mode_streams_rows_under_one_header() {
    let repl = Repl::start("tail", "CREATE TOPIC t; PUBLISH t 'before';");
    repl.type_text("TAIL t;");
    repl.press("Enter");
    repl.wait_for("TAIL to start", |s| last_line(s) == "shop.db> TAIL t;");
    std::thread::sleep(Duration::from_millis(300));
    let db = repl.dir.path().join("shop.db");
    for payload in ["first", "second"] {
        let published = Command::new(env!("CARGO_BIN_EXE_mqlite"))
            .arg(&db)
            .arg(format!("PUBLISH t '{payload}'"))
            .output()
            .expect("publish");
        assert!(published.status.success(), "{published:?}");
        repl.wait_for(payload, |s| s.contains(payload));
    }
    repl.press("C-c");
    let screen = repl.wait_for("the end of the table", |s| {
        s.contains("(2 rows)") && last_line(s) == "shop.db>"
    });
    assert_eq!(
        screen.matches("payload").count(),
        1,
        "one header:\n{screen}"
    );
    assert!(!screen.contains("(1 row)"), "one count:\n{screen}");
    assert!(
        !screen.contains("before"),
        "TAIL shows new messages:\n{screen}"
    );
    let rows: Vec<&str> = screen
        .lines()
        .filter(|l| l.contains("first") || l.contains("second"))
        .collect();
    assert_eq!(rows.len(), 2, "{screen}");
    assert_eq!(
        rows[0].chars().count(),
        rows[1].chars().count(),
        "the rows line up:\n{screen}"
    );
}

#[test]
fn quit_exits_with_status_0() {
    let repl = Repl::start("quit", "");
    repl.type_text(".quit");
    repl.press("Enter");
    let start = Instant::now();
    while repl.exit_status().is_none() {
        assert!(
            start.elapsed() < WAIT,
            "mqlite did not exit:\n{}",
            repl.screen()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(repl.exit_status(), Some(0));
}

#[test]
fn ctrl_c_stops_a_waiting_statement_and_the_repl_goes_on() {
    let repl = Repl::start("interrupt", "CREATE QUEUE jobs;");
    repl.type_text("CONSUME FROM jobs WAIT 60s;");
    repl.press("Enter");
    // The statement runs once the line is accepted and the prompt is gone.
    repl.wait_for("the statement to start", |s| {
        last_line(s) == "shop.db> CONSUME FROM jobs WAIT 60s;"
    });
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    repl.press("C-c");
    repl.wait_for("the prompt after Ctrl-C", |s| last_line(s) == "shop.db>");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(repl.exit_status(), None, "Ctrl-C must not end the REPL");
    repl.type_text(".mode");
    repl.press("Enter");
    repl.wait_for("the .mode answer", |s| {
        s.contains("current output mode: table")
    });
}
