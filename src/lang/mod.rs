//! The command language: syntax tree, parser, and execution.

pub mod ast;
mod display;
pub(crate) mod exec;
mod parser;
mod query;

pub use parser::{
    KEYWORDS, ParseError, ParsedStatement, is_complete, parse_script, parse_statement,
};
