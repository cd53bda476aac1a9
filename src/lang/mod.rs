//! The command language: syntax tree, parser, and execution.

pub mod ast;
mod bench;
mod display;
pub(crate) mod exec;
mod jsonl;
mod parser;
mod query;
mod session;

/// Input limits of expressions (see docs/design.md, "Input limits").
pub use parser::expr::{MAX_DEPTH, MAX_HEIGHT, MAX_NODES};
pub use parser::{
    KEYWORDS, ParseError, ParsedStatement, is_complete, parse_script, parse_statement,
};
pub use session::Session;
