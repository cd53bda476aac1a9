//! The interactive shell: line editing, history, completion and highlighting.
//!
//! A statement may span lines. The loop below, not rustyline's `Validator`,
//! collects the lines: rustyline 19 has no continuation prompt (its layout
//! is computed on the raw buffer, so a prompt drawn by the highlighter would
//! put the cursor in the wrong column), and reading each line on its own is
//! what lets us show `...>` like sqlite3 and psql do.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use mqlite::Database;
use mqlite::lang::KEYWORDS;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::HistoryHinter;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Config, Editor, Helper, Hinter, Validator};

use crate::shell::dot;
use crate::shell::{Flow, Shell, ShellError, at_statement_start};

/// At most this many topic names and this many group names are offered.
const MAX_NAMES: usize = 100;

/// Runs the REPL until `.quit` or Ctrl-D.
///
/// # Errors
/// Fails when the terminal cannot be read.
pub fn run(shell: &mut Shell, path: &Path) -> rustyline::Result<()> {
    let history = history_path();
    let mut editor = editor(&shell.db, history.as_deref())?;
    if let Err(e) = shell.handle_ctrl_c(true) {
        eprintln!("warning: Ctrl-C will not stop running statements: {e}");
    }

    let (prompt, continuation) = prompts(path);
    println!(
        "mqlite {}: enter .help for usage hints, Ctrl-D to exit.",
        env!("CARGO_PKG_VERSION")
    );
    let mut pending = String::new();
    // Inside BEGIN ... COMMIT the prompt says so, as psql's `=*>` does.
    let in_tx_prompt = prompt.replacen("> ", "*> ", 1);
    loop {
        let shown = if !pending.is_empty() {
            &continuation
        } else if shell.in_transaction() {
            &in_tx_prompt
        } else {
            &prompt
        };
        let line = match editor.readline(shown) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                pending.clear();
                continue;
            }
            Err(ReadlineError::Eof) => {
                if !pending.trim().is_empty() {
                    eprintln!("Not run (Ctrl-D before its ';'):\n{pending}");
                }
                break;
            }
            Err(e) => return Err(e),
        };
        if pending.is_empty() && line.trim().is_empty() {
            continue;
        }
        if !pending.is_empty() {
            pending.push('\n');
        }
        pending.push_str(&line);
        let dot_command = pending.trim_start().starts_with('.');
        if !dot_command && !at_statement_start(&pending) {
            continue;
        }
        let entry = std::mem::take(&mut pending);
        if let Some(file) = &history {
            editor.add_history_entry(entry.as_str())?;
            // Appending (not rewriting) keeps what other open shells saved.
            if let Err(e) = editor.append_history(file) {
                eprintln!("warning: cannot save history to {}: {e}", file.display());
            }
        }
        match shell.run_script(&entry) {
            Ok(Flow::Quit) => break,
            // Ctrl-C is how TAIL ends: not an error worth a message.
            Ok(Flow::Continue) | Err(ShellError::Interrupted) => {}
            Err(e) => eprintln!("{e}"),
        }
    }
    if shell.in_transaction() {
        eprintln!("The open transaction was rolled back (it had no COMMIT).");
    }
    Ok(())
}

/// The line editor, completing names from `db`, with the history in
/// `history` loaded.
fn editor(
    db: &Database,
    history: Option<&Path>,
) -> rustyline::Result<Editor<ReplHelper, FileHistory>> {
    let config = Config::builder()
        .auto_add_history(false)
        .history_ignore_dups(true)?
        .max_history_size(10_000)?
        .completion_type(CompletionType::List)
        .build();
    let mut editor: Editor<ReplHelper, FileHistory> = Editor::with_config(config)?;
    editor.set_helper(Some(ReplHelper {
        hinter: HistoryHinter::new(),
        db: db.clone(),
    }));
    if let Some(file) = history
        && file.exists()
        && let Err(e) = editor.load_history(file)
    {
        eprintln!("warning: cannot load history from {}: {e}", file.display());
    }
    Ok(editor)
}

/// `shop.db> ` and a continuation prompt of the same width, `...> ` right-aligned.
fn prompts(path: &Path) -> (String, String) {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let width = name.chars().count().max(3);
    (format!("{name}> "), format!("{:>width$}> ", "..."))
}

/// `~/.mqlite_history`, or nothing without a home directory.
fn history_path() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".mqlite_history"))
}

/// Completion, hints and highlighting for the line editor.
#[derive(Helper, Hinter, Validator)]
struct ReplHelper {
    #[rustyline(Hinter)]
    hinter: HistoryHinter,
    db: Database,
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .char_indices()
            .rev()
            .take_while(|&(_, c)| is_name_char(c))
            .last()
            .map_or(pos, |(i, _)| i);
        let word = &before[start..];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        if word.starts_with('.') && before[..start].trim().is_empty() {
            let commands = dot::COMMANDS
                .iter()
                .filter(|(name, _, _)| name.starts_with(word))
                .map(|(name, _, _)| pair(name.to_string()))
                .collect();
            return Ok((start, commands));
        }
        let lower =
            word.chars().any(|c| c.is_lowercase()) && !word.chars().any(|c| c.is_uppercase());
        let in_case = |k: &str| {
            if lower {
                k.to_lowercase()
            } else {
                k.to_uppercase()
            }
        };
        let mut candidates: Vec<String> = Vec::new();
        let context = previous_word(&before[..start]).to_ascii_uppercase();
        let (topics, groups, keywords): (bool, bool, &[&str]) = match context.as_str() {
            // psql-style: the word before decides what can come next.
            "GROUP" => (false, true, &[]),
            "PUBLISH" => (true, false, &["TO"]),
            "PURGE" | "REQUEUE" => (true, false, &["DLQ"]),
            "TO" | "DESCRIBE" | "TAIL" | "INTO" | "ON" | "REPLAY" | "EXISTS" => (true, false, &[]),
            _ => (true, true, KEYWORDS),
        };
        if topics {
            let names = self.db.topic_names().unwrap_or_default();
            candidates.extend(names.into_iter().take(MAX_NAMES));
        }
        if groups {
            let names = self.db.group_names().unwrap_or_default();
            candidates.extend(names.into_iter().take(MAX_NAMES));
        }
        candidates.retain(|n| starts_with_ignore_case(n, word));
        candidates.extend(
            keywords
                .iter()
                .filter(|k| starts_with_ignore_case(k, word))
                .map(|k| in_case(k)),
        );
        candidates.sort();
        candidates.dedup();
        Ok((start, candidates.into_iter().map(pair).collect()))
    }
}

impl Highlighter for ReplHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        highlight(line)
    }

    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Owned(format!("{DIM}{hint}{RESET}"))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, kind: CmdKind) -> bool {
        // Any edit can turn a word into a keyword or open a string.
        kind != CmdKind::MoveCursor
    }
}

fn pair(text: String) -> Pair {
    Pair {
        display: text.clone(),
        replacement: text,
    }
}

/// The last whole word of `text` (empty at the start of a statement).
fn previous_word(text: &str) -> &str {
    let text = text.trim_end();
    let start = text
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_name_char(c))
        .last()
        .map_or(text.len(), |(i, _)| i);
    &text[start..]
}

/// Characters of an unquoted name (`order.placed`, `email-service`) or a dot-command.
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-')
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

const KEYWORD: &str = "\x1b[1;34m";
const STRING: &str = "\x1b[32m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Colours keywords and quoted strings. Works on char boundaries only and
/// adds nothing but escape sequences, so the display width is unchanged.
fn highlight(line: &str) -> Cow<'_, str> {
    let mut out = String::with_capacity(line.len() + 16);
    let mut chars = line.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '\'' => {
                // A doubled '' closes and reopens: the same colour either way.
                let mut end = line.len();
                for (i, c) in chars.by_ref() {
                    if c == '\'' {
                        end = i + 1;
                        break;
                    }
                }
                out.push_str(STRING);
                out.push_str(&line[start..end]);
                out.push_str(RESET);
            }
            '-' if chars.peek().is_some_and(|&(_, c)| c == '-') => {
                let end = end_while(&mut chars, line.len(), |c| c != '\n');
                out.push_str(DIM);
                out.push_str(&line[start..end]);
                out.push_str(RESET);
            }
            c if c.is_ascii_digit() => {
                let end = end_while(&mut chars, line.len(), |c| c.is_alphanumeric() || c == '.');
                out.push_str(&line[start..end]);
            }
            c if c.is_alphabetic() || c == '_' => {
                let end = end_while(&mut chars, line.len(), is_name_char);
                let word = &line[start..end];
                if KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word)) {
                    out.push_str(KEYWORD);
                    out.push_str(word);
                    out.push_str(RESET);
                } else {
                    out.push_str(word);
                }
            }
            c => out.push(c),
        }
    }
    if out.len() == line.len() {
        Cow::Borrowed(line)
    } else {
        Cow::Owned(out)
    }
}

/// Consumes characters while `pred` holds; returns the byte offset where they stop.
fn end_while(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    len: usize,
    pred: impl Fn(char) -> bool,
) -> usize {
    while let Some(&(i, c)) = chars.peek() {
        if !pred(c) {
            return i;
        }
        chars.next();
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip_ansi(text: &str) -> String {
        let mut out = String::new();
        let mut in_escape = false;
        for c in text.chars() {
            match (in_escape, c) {
                (false, '\x1b') => in_escape = true,
                (true, 'm') => in_escape = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out
    }

    #[test]
    fn highlighting_keeps_the_text() {
        for line in [
            "PUBLISH orders 'it''s ünïcödé' -- comment",
            "SELECT data.total FROM \"order.placed\" WHERE x > 10MB",
            "'unterminated ✓",
            "日本語 -- コメント\nCONSUME 2 FROM jobs;",
            "",
        ] {
            assert_eq!(strip_ansi(&highlight(line)), line);
        }
    }

    #[test]
    fn strings_and_comments_are_coloured() {
        assert_eq!(highlight("'a'"), format!("{STRING}'a'{RESET}"));
        assert_eq!(highlight("x -- c"), format!("x {DIM}-- c{RESET}"));
        assert_eq!(highlight("email-service 30s"), "email-service 30s");
    }

    #[test]
    fn keywords_are_coloured_in_any_case() {
        assert_eq!(
            highlight("select x FROM t"),
            format!("{KEYWORD}select{RESET} x {KEYWORD}FROM{RESET} t")
        );
        assert_eq!(highlight("selected"), "selected");
    }

    fn completions(helper: &ReplHelper, line: &str) -> Vec<String> {
        let history = rustyline::history::MemHistory::new();
        let ctx = rustyline::Context::new(&history);
        let (start, pairs) = helper.complete(line, line.len(), &ctx).expect("complete");
        pairs
            .into_iter()
            .map(|p| format!("{}{}", &line[..start], p.replacement))
            .collect()
    }

    #[test]
    fn completion_offers_what_fits_the_previous_word() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Database::open(dir.path().join("c.db")).expect("open");
        db.execute(
            "CREATE TOPIC orders; CREATE TOPIC order.placed; SUBSCRIBE GROUP billing TO orders;",
        )
        .expect("setup");
        let helper = ReplHelper {
            hinter: HistoryHinter::new(),
            db,
        };
        assert_eq!(
            completions(&helper, "PUBLISH ord"),
            ["PUBLISH order.placed", "PUBLISH orders"]
        );
        assert_eq!(
            completions(&helper, "PUBLISH order."),
            ["PUBLISH order.placed"]
        );
        assert_eq!(completions(&helper, "publish t"), ["publish to"]);
        assert_eq!(completions(&helper, "sel"), ["select"]);
        assert_eq!(completions(&helper, "SEL"), ["SELECT"]);
        assert_eq!(
            completions(&helper, "CONSUME FROM orders GROUP b"),
            ["CONSUME FROM orders GROUP billing"]
        );
        assert_eq!(completions(&helper, "  .mo"), ["  .mode"]);
        assert!(completions(&helper, "PUBLISH ").is_empty());
    }

    #[test]
    fn previous_word_skips_the_current_one() {
        assert_eq!(previous_word("PUBLISH "), "PUBLISH");
        assert_eq!(previous_word("CONSUME 2 FROM jobs GROUP  "), "GROUP");
        assert_eq!(previous_word(""), "");
        assert_eq!(previous_word("x ("), "");
    }

    #[test]
    fn prompts_line_up() {
        assert_eq!(
            prompts(Path::new("/tmp/shop.db")),
            ("shop.db> ".into(), "    ...> ".into())
        );
        assert_eq!(prompts(Path::new("a")), ("a> ".into(), "...> ".into()));
    }

    #[test]
    fn prefix_match_is_on_char_boundaries() {
        assert!(starts_with_ignore_case("PUBLISH", "pub"));
        assert!(!starts_with_ignore_case("ünï", "u"));
        assert!(!starts_with_ignore_case("a", "ab"));
    }
}
