//! Running statements and scripts: what the command line, stdin, `.read`
//! and the REPL have in common.

pub(crate) mod dot;
mod status;

use std::fmt;
use std::io::{self, BufRead, BufWriter, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use mqlite::lang::ast::Statement;
use mqlite::lang::{ParseError, is_complete, parse_script};
use mqlite::{Database, Session};

use crate::render::{Batch, Mode, Printer, RenderOptions};

/// A progress callback drawing one bar per step (BENCH workload, EXPORT,
/// IMPORT, REQUEUE) on stderr. IMPORT counts bytes of its file.
fn progress_bar() -> impl FnMut(&str, u64, u64) + Send + 'static {
    let mut current: Option<(String, indicatif::ProgressBar)> = None;
    move |step, done, total| {
        let fresh = !matches!(&current, Some((name, _)) if name == step);
        if fresh {
            if let Some((_, bar)) = current.take() {
                bar.finish_and_clear();
            }
            let bar = indicatif::ProgressBar::new(total);
            let template = if step == "IMPORT" {
                "{msg:>20} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"
            } else {
                "{msg:>20} [{bar:30}] {pos}/{len} {per_sec}"
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(step.to_string());
            current = Some((step.to_string(), bar));
        }
        if let Some((_, bar)) = &current {
            bar.set_length(total);
            bar.set_position(done);
            if done >= total {
                bar.finish_and_clear();
            }
        }
    }
}

/// Why a script or statement stopped.
#[derive(Debug)]
pub enum ShellError {
    /// The text did not parse; holds the rendered error with its caret.
    Syntax(String),
    /// The engine refused a statement.
    Engine(mqlite::Error),
    /// A dot-command was wrong.
    Command(String),
    /// Standard output is closed (e.g. `mqlite db "..." | head -1`).
    BrokenPipe,
    /// Ctrl-C stopped a statement; the rest of the script is not run.
    Interrupted,
}

impl fmt::Display for ShellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShellError::Syntax(rendered) => f.write_str(rendered.trim_end()),
            ShellError::Engine(e) => write!(f, "Error: {e}"),
            ShellError::Command(msg) => write!(f, "Error: {msg}"),
            ShellError::BrokenPipe => f.write_str("Error: standard output is closed"),
            ShellError::Interrupted => f.write_str("Interrupted"),
        }
    }
}

/// Whether to keep going after a dot-command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Read the next statement.
    Continue,
    /// `.quit` / `.exit` was given.
    Quit,
}

/// The open database and the settings the dot-commands change.
pub struct Shell {
    /// The open database (the REPL completes names from it).
    pub db: Database,
    session: Session,
    /// How results are printed (`.mode`).
    pub render: RenderOptions,
    /// Print `Run Time: ...` after each statement (`.timer`).
    pub timer: bool,
    /// Line mode has printed a row, so the next row needs a blank line first.
    line_rows_printed: bool,
    /// How many `.read` files are open inside each other.
    pub read_depth: usize,
    /// True while a statement runs, so Ctrl-C knows whether to interrupt it.
    running: Arc<AtomicBool>,
}

impl Shell {
    /// A shell on `db` printing with `render`.
    pub fn new(db: Database, render: RenderOptions) -> Shell {
        let mut session = db.session();
        if io::stderr().is_terminal() {
            session.set_progress(progress_bar());
        }
        Shell {
            db,
            session,
            render,
            timer: false,
            line_rows_printed: false,
            read_depth: 0,
            running: Arc::new(AtomicBool::new(false)),
        }
    }

    /// True between BEGIN and COMMIT/ROLLBACK.
    pub fn in_transaction(&self) -> bool {
        self.session.in_transaction()
    }

    /// Makes Ctrl-C stop the running statement (TAIL, CONSUME ... WAIT).
    ///
    /// A second Ctrl-C while the same statement still runs ends the process
    /// (exit 130), for statements that do not watch the flag. With nothing
    /// running, `interactive` decides: the REPL ignores the signal (rustyline
    /// reads Ctrl-C as a key at the prompt), a script run ends.
    pub fn handle_ctrl_c(&self, interactive: bool) -> Result<(), ctrlc::Error> {
        let flag = self.session.interrupt_flag();
        let running = Arc::clone(&self.running);
        ctrlc::set_handler(move || {
            if running.load(Ordering::SeqCst) {
                if flag.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
            } else if !interactive {
                std::process::exit(130);
            }
        })
    }

    /// Parses all of `source`, then runs its statements and dot-commands in order.
    ///
    /// Nothing runs when any statement has a syntax error. Stops at the first
    /// error, or at `.quit`.
    pub fn run_script(&mut self, source: &str) -> Result<Flow, ShellError> {
        // A UTF-8 byte order mark (files saved by some editors) is not text.
        let source = source.strip_prefix('\u{feff}').unwrap_or(source);
        let items = split_script(source).map_err(|e| ShellError::Syntax(e.render(source)))?;
        for item in items {
            match item {
                Item::Statement(stmt) => self.run_statement(&stmt)?,
                Item::Dot(line) => {
                    if dot::run(self, &line)? == Flow::Quit {
                        return Ok(Flow::Quit);
                    }
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// Runs statements and dot-commands read from `input` as each is
    /// complete, so a statement piped in runs before the next one arrives
    /// and memory stays bounded: no line or statement may be longer than
    /// [`mqlite::MAX_LINE_BYTES`]. `name` names the input in errors.
    ///
    /// Stops at the first error (statements before it stand), or at `.quit`.
    pub fn run_stream(&mut self, input: &mut dyn BufRead, name: &str) -> Result<Flow, ShellError> {
        let mut pending = String::new();
        let mut line = Vec::new();
        let mut n = 0usize;
        loop {
            let limit = mqlite::MAX_LINE_BYTES.saturating_sub(pending.len());
            let more = mqlite::read_line_limited(input, limit, &mut line).map_err(|e| {
                let what = if e.kind() == io::ErrorKind::InvalidData {
                    format!(
                        "a statement or line is longer than {} bytes",
                        mqlite::MAX_LINE_BYTES
                    )
                } else {
                    e.to_string()
                };
                ShellError::Command(format!("{name} line {}: {what}", n + 1))
            })?;
            if !more {
                return self.run_script(&pending);
            }
            n += 1;
            let text = std::str::from_utf8(&line)
                .map_err(|_| ShellError::Command(format!("{name} line {n}: not UTF-8 text")))?;
            let text = if n == 1 {
                text.strip_prefix('\u{feff}').unwrap_or(text)
            } else {
                text
            };
            if text.trim_start().starts_with('.') && at_statement_start(&pending) {
                pending.clear();
                if dot::run(self, text.trim())? == Flow::Quit {
                    return Ok(Flow::Quit);
                }
                continue;
            }
            pending.push_str(text);
            // Only a line with a `;` can complete a statement.
            if text.contains(';') && is_complete(&pending) {
                let flow = self.run_script(&pending)?;
                pending.clear();
                if flow == Flow::Quit {
                    return Ok(Flow::Quit);
                }
            }
        }
    }

    /// Runs one statement, printing each result as it arrives.
    pub fn run_statement(&mut self, stmt: &Statement) -> Result<(), ShellError> {
        let start = Instant::now();
        let stdout = io::stdout();
        let mut out = BufWriter::new(stdout.lock());
        // In line mode, `More` only adds a blank line before the first row,
        // which keeps the rows of consecutive statements apart too.
        let mut printer = Printer::new(
            if self.render.mode == Mode::Line && self.line_rows_printed {
                Batch::More
            } else {
                Batch::First
            },
        );
        let mut printed_rows = false;
        let mut write_error: Option<io::Error> = None;
        let opts = &self.render;
        let flag = self.session.interrupt_flag();
        flag.store(false, Ordering::SeqCst);
        self.running.store(true, Ordering::SeqCst);
        let result = self.session.run(stmt, &mut |rs| {
            // Flush every batch: TAIL prints as messages arrive.
            let written = printer
                .print(&mut out, &rs, opts)
                .and_then(|()| out.flush());
            printed_rows |= !rs.rows.is_empty();
            written.map_err(|e| {
                let err = mqlite::Error::Io(io::Error::new(e.kind(), e.to_string()));
                write_error = Some(e);
                err
            })
        });
        self.running.store(false, Ordering::SeqCst);
        self.line_rows_printed |= printed_rows && self.render.mode == Mode::Line;
        let interrupted = flag.swap(false, Ordering::SeqCst);
        if let Some(e) = write_error {
            return Err(e.into());
        }
        // A TAIL ended by Ctrl-C (or an error) still closes its table.
        printer.finish(&mut out)?;
        result.map_err(ShellError::Engine)?;
        if self.render.mode == Mode::Table && !printer.printed_table() {
            writeln!(out, "{}", status::line(stmt, &mut self.session))?;
        }
        if self.timer {
            writeln!(out, "Run Time: {:.6}s", start.elapsed().as_secs_f64())?;
        }
        out.flush()?;
        if interrupted {
            return Err(ShellError::Interrupted);
        }
        Ok(())
    }
}

impl From<io::Error> for ShellError {
    fn from(e: io::Error) -> ShellError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            ShellError::BrokenPipe
        } else {
            ShellError::Engine(mqlite::Error::Io(e))
        }
    }
}

/// One step of a script.
#[derive(Debug)]
enum Item {
    Statement(Statement),
    /// A dot-command line, trimmed.
    Dot(String),
}

/// Splits a script into statements and dot-commands, in order.
///
/// A line starting with `.` where a statement could start is a dot-command.
/// Those lines are blanked out (same byte length) before parsing, so the
/// parser's byte positions, lines and columns still point into `source`.
fn split_script(source: &str) -> Result<Vec<Item>, ParseError> {
    let mut masked = String::with_capacity(source.len());
    let mut dots: Vec<(usize, String)> = Vec::new();
    for line in source.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        if body.trim_start().starts_with('.') && at_statement_start(&masked) {
            dots.push((masked.len(), body.trim().to_string()));
            masked.extend(std::iter::repeat_n(' ', body.len()));
            masked.push_str(&line[body.len()..]);
        } else {
            masked.push_str(line);
        }
    }
    let statements = if masked.trim().is_empty() {
        Vec::new()
    } else {
        parse_script(&masked)?
    };
    let mut items = Vec::with_capacity(statements.len() + dots.len());
    let mut dots = dots.into_iter().peekable();
    for parsed in statements {
        while let Some((_, line)) = dots.next_if(|(at, _)| *at < parsed.span.start) {
            items.push(Item::Dot(line));
        }
        items.push(Item::Statement(parsed.statement));
    }
    items.extend(dots.map(|(_, line)| Item::Dot(line)));
    Ok(items)
}

/// True when `text` holds only whole statements, so the next line starts a new one.
pub fn at_statement_start(text: &str) -> bool {
    text.trim().is_empty() || is_complete(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes(items: &[Item]) -> Vec<&str> {
        items
            .iter()
            .map(|i| match i {
                Item::Dot(l) => l.as_str(),
                Item::Statement(_) => "statement",
            })
            .collect()
    }

    #[test]
    fn dot_lines_between_statements_are_found() {
        let script = ".mode csv\nCREATE QUEUE jobs;\n  .timer on\n\
                      PUBLISH jobs 'a\n.not a command';\n.read x.mql\n";
        let items = split_script(script).expect("parses");
        assert_eq!(
            shapes(&items),
            [
                ".mode csv",
                "statement",
                ".timer on",
                "statement",
                ".read x.mql"
            ]
        );
    }

    #[test]
    fn syntax_errors_point_into_the_original_text() {
        let script = ".mode csv\nCREATE QUEUE jobs;\nPUBLISH jobs 'a' 'b';\n";
        let err = split_script(script).expect_err("two payloads need a comma");
        assert_eq!(err.line, 3);
        assert_eq!(&script[err.position..err.position + 3], "'b'");
    }

    #[test]
    fn empty_script_has_no_items() {
        assert!(split_script("").expect("empty").is_empty());
        assert!(split_script("  \n\n").expect("blank").is_empty());
    }
}
