//! Display of the syntax tree as canonical text. (stub)
