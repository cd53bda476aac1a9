//! Dot-commands: `.help`, `.mode`, `.timer`, `.read`, `.quit`/`.exit`.

use std::io::{self, Write};

use super::{Flow, Shell, ShellError};
use crate::render::Mode;

/// The dot-commands with their arguments and what they do, for `.help` and completion.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (".help", "", "Show this message"),
    (
        ".mode",
        "table|jsonl|csv|line",
        "Set the output mode (no argument: show it)",
    ),
    (
        ".timer",
        "on|off",
        "Print the run time of each statement (no argument: show it)",
    ),
    (".read", "FILE", "Run the statements in FILE"),
    (".quit", "", "Exit"),
    (".exit", "", "Exit"),
];

/// Guards against a file that `.read`s itself.
const MAX_READ_DEPTH: usize = 16;

/// One line per statement: its shape and an example.
const STATEMENTS: &[(&str, &str)] = &[
    (
        "CREATE TOPIC",
        "CREATE TOPIC orders PARTITIONS 3 RETENTION 7d;",
    ),
    (
        "CREATE QUEUE",
        "CREATE QUEUE jobs MAX DELIVERIES 5 ACK WAIT 30s;",
    ),
    ("ALTER", "ALTER TOPIC orders SET RETENTION 30d;"),
    ("DROP", "DROP QUEUE IF EXISTS jobs;"),
    ("SHOW", "SHOW TOPICS;  SHOW QUEUES;  SHOW GROUPS ON orders;"),
    ("DESCRIBE", "DESCRIBE orders;"),
    (
        "PUBLISH",
        "PUBLISH orders KEY 'c-7' {\"orderId\": \"ORD-1\"}, 'plain text';",
    ),
    (
        "SUBSCRIBE",
        "SUBSCRIBE GROUP billing TO orders FROM BEGINNING;",
    ),
    ("UNSUBSCRIBE", "UNSUBSCRIBE GROUP billing FROM orders;"),
    ("CONSUME", "CONSUME 10 FROM orders GROUP billing WAIT 5s;"),
    ("ACK", "ACK 17, 18;"),
    (
        "NACK",
        "NACK 19 DELAY 1m 'busy';  NACK 20 DEAD 'bad payload';",
    ),
    (
        "REPLAY",
        "REPLAY orders GROUP billing FROM TIMESTAMP '-1h';",
    ),
    ("REQUEUE DLQ", "REQUEUE DLQ orders GROUP billing LIMIT 100;"),
    ("PURGE DLQ", "PURGE DLQ orders;"),
    (
        "... DRY RUN",
        "REQUEUE DLQ orders DRY RUN;  PURGE DLQ WHERE attempts > 3 DRY RUN;  (list, change nothing)",
    ),
    ("PURGE", "PURGE orders;"),
    (
        "BEGIN/COMMIT",
        "BEGIN; PUBLISH orders 'a'; COMMIT;  (or ROLLBACK)",
    ),
    ("CHECK", "CHECK;"),
    (
        "EXPORT",
        "EXPORT orders TO 'orders.jsonl' WHERE data.total > 100 OVERWRITE;",
    ),
    ("IMPORT", "IMPORT 'orders.jsonl' INTO orders;"),
    (
        "BACKUP",
        "BACKUP TO 'shop-copy.db';  (online, all state; never replaces a file)",
    ),
    (
        "SET CLOCK",
        "SET CLOCK '2026-01-01T00:00:00Z';  ADVANCE 31s;  SHOW CLOCK;  SET CLOCK SYSTEM;",
    ),
    ("BENCH", "BENCH publish_batch MESSAGES 100000 SIZE 200B;"),
    (
        "SELECT",
        "SELECT key, data.total FROM orders WHERE data.total > 100 LIMIT 10;",
    ),
    (
        "",
        "SELECT * FROM DLQ;  SELECT * FROM GROUPS;  SELECT * FROM TOPICS;  SELECT * FROM PROCESSED;",
    ),
    (
        "",
        "SELECT group, member, offset, state, last_error FROM DELIVERIES;  SELECT id, history FROM DLQ;",
    ),
    ("TAIL", "TAIL orders WHERE key = 'c-7';  (Ctrl-C stops)"),
];

/// Runs one dot-command line (starting with `.`).
pub fn run(shell: &mut Shell, line: &str) -> Result<Flow, ShellError> {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or_default();
    let args: Vec<&str> = words.collect();
    let mut out = io::stdout().lock();
    match (command, args.as_slice()) {
        (".help", []) => {
            help(&mut out)?;
        }
        (".mode", []) => {
            writeln!(out, "current output mode: {}", shell.render.mode)?;
        }
        (".mode", [mode]) => {
            shell.render.mode = mode.parse::<Mode>().map_err(ShellError::Command)?
        }
        (".timer", []) => {
            writeln!(out, "timer: {}", if shell.timer { "on" } else { "off" })?;
        }
        (".timer", [on_off]) => {
            shell.timer = match on_off.to_ascii_lowercase().as_str() {
                "on" => true,
                "off" => false,
                _ => return Err(usage(".timer")),
            };
        }
        (".read", [_, ..]) => {
            // The rest of the line is the file name, so names with spaces work.
            let file = line[".read".len()..].trim();
            let source = std::fs::File::open(file)
                .map_err(|e| ShellError::Command(format!("cannot read {file}: {e}")))?;
            drop(out);
            if shell.read_depth >= MAX_READ_DEPTH {
                return Err(ShellError::Command(format!(
                    ".read nested more than {MAX_READ_DEPTH} deep (does a file read itself?)"
                )));
            }
            shell.read_depth += 1;
            let flow = shell.run_stream(&mut io::BufReader::new(source), file);
            shell.read_depth -= 1;
            return flow;
        }
        (".quit" | ".exit", []) => return Ok(Flow::Quit),
        _ => {
            return Err(
                match COMMANDS.iter().find(|(name, _, _)| *name == command) {
                    Some((name, _, _)) => usage(name),
                    None => ShellError::Command(format!(
                        "unknown command '{command}'; enter .help for the list"
                    )),
                },
            );
        }
    }
    Ok(Flow::Continue)
}

fn usage(command: &str) -> ShellError {
    let args = COMMANDS
        .iter()
        .find(|(name, _, _)| *name == command)
        .map_or("", |(_, args, _)| *args);
    ShellError::Command(format!("usage: {command} {args}").trim_end().to_string())
}

fn help(out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "Statements (end each with ';'; keywords are case-insensitive):"
    )?;
    let width = STATEMENTS.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
    for (statement, example) in STATEMENTS {
        writeln!(out, "  {statement:width$}  {example}")?;
    }
    writeln!(out)?;
    writeln!(out, "Commands:")?;
    let width = COMMANDS
        .iter()
        .map(|(c, a, _)| c.len() + 1 + a.len())
        .max()
        .unwrap_or(0);
    for (command, args, what) in COMMANDS {
        let shape = format!("{command} {args}");
        writeln!(out, "  {shape:width$}  {what}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_command() {
        let mut out = Vec::new();
        help(&mut out).expect("write to Vec");
        let text = String::from_utf8(out).expect("UTF-8");
        for (command, _, _) in COMMANDS {
            assert!(text.contains(command), "{command} missing from .help");
        }
        assert!(text.contains("CONSUME 10 FROM orders"));
        for new in [
            "DRY RUN;",
            "BACKUP TO '",
            "SET CLOCK '",
            "ADVANCE 31s",
            "SHOW CLOCK",
            "FROM DELIVERIES",
        ] {
            assert!(text.contains(new), "{new} missing from .help");
        }
    }

    #[test]
    fn usage_names_the_arguments() {
        assert_eq!(usage(".timer").to_string(), "Error: usage: .timer on|off");
        assert_eq!(usage(".quit").to_string(), "Error: usage: .quit");
    }
}
