//! The command language: syntax tree, parser, and execution.

pub mod ast;
mod display;
mod parser;

pub use parser::{ParseError, ParsedStatement, is_complete, parse_script, parse_statement, KEYWORDS};
