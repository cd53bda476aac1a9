//! nom 8 parser for the command language. (stub: to be written)

use std::ops::Range;

use super::ast::Statement;

/// Keywords of the language, upper case, for completion and highlighting.
pub const KEYWORDS: &[&str] = &[];

/// A syntax error: where and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error at line {line}, column {column}: {message}")]
pub struct ParseError {
    /// Byte offset in the input.
    pub position: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What was expected there, e.g. "expected a duration like 30s".
    pub message: String,
}

impl ParseError {
    /// The offending line of `source` with a caret under the position, then the message.
    pub fn render(&self, source: &str) -> String {
        let _ = source;
        self.to_string()
    }
}

/// One parsed statement and its byte range in the input (without the `;`).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedStatement {
    /// The statement.
    pub statement: Statement,
    /// Where it was in the input.
    pub span: Range<usize>,
}

/// Parses a script: statements separated by `;`, comments `--`.
pub fn parse_script(input: &str) -> Result<Vec<ParsedStatement>, ParseError> {
    let _ = input;
    Err(ParseError { position: 0, line: 1, column: 1, message: "parser not written".into() })
}

/// Parses exactly one statement (a trailing `;` is allowed).
pub fn parse_statement(input: &str) -> Result<Statement, ParseError> {
    let _ = input;
    Err(ParseError { position: 0, line: 1, column: 1, message: "parser not written".into() })
}

/// True when the text is ready to run in the REPL: it ends with `;` outside
/// quotes and comments (or is only whitespace/comments).
pub fn is_complete(input: &str) -> bool {
    input.trim_end().ends_with(';')
}
