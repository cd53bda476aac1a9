//! Topic patterns: RabbitMQ's topic-exchange matching on dot-separated names.

use crate::{Error, PatternProblem, Result};

/// RabbitMQ topic-exchange matching: words split on `.`, `*` is exactly one
/// word, `#` is zero or more words.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[&str], n: &[&str]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((&"#", rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((&w, rest)) => match n.split_first() {
                Some((&nw, nrest)) => (w == "*" || w == nw) && go(rest, nrest),
                None => false,
            },
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let n: Vec<&str> = name.split('.').collect();
    go(&p, &n)
}

/// An [`Error::InvalidPattern`].
fn invalid(pattern: &str, problem: PatternProblem) -> Error {
    Error::InvalidPattern {
        pattern: pattern.to_string(),
        problem,
    }
}

pub(crate) fn validate_pattern(p: &str) -> Result<()> {
    if p.is_empty() {
        return Err(invalid(p, PatternProblem::Empty));
    }
    for w in p.split('.') {
        if w.is_empty() {
            return Err(invalid(p, PatternProblem::EmptyWord));
        }
        if w != "*" && w != "#" && (w.contains('*') || w.contains('#')) {
            return Err(invalid(p, PatternProblem::EmbeddedWildcard));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_is_one_word_and_hash_is_any_number() {
        assert!(pattern_matches("order.*", "order.placed"));
        assert!(!pattern_matches("order.*", "order"));
        assert!(!pattern_matches("order.*", "order.placed.eu"));
        assert!(pattern_matches("order.#", "order"));
        assert!(pattern_matches("order.#", "order.placed.eu"));
        assert!(pattern_matches("#", "anything.at.all"));
        assert!(pattern_matches("#.eu", "order.placed.eu"));
        assert!(pattern_matches("*.placed.#", "order.placed"));
        assert!(!pattern_matches("*.placed.#", "placed"));
        assert!(pattern_matches("a.#.b.#.c", "a.x.b.y.z.c"));
        assert!(!pattern_matches("a.#.b", "a.x.c"));
        assert!(pattern_matches("order", "order"));
        assert!(!pattern_matches("order", "orders"));
    }

    #[test]
    fn patterns_are_checked() {
        assert!(validate_pattern("order.*").is_ok());
        assert!(validate_pattern("#").is_ok());
        let problem = |p: &str| match validate_pattern(p) {
            Err(Error::InvalidPattern { pattern, problem }) if pattern == p => problem,
            other => panic!("{p}: {other:?}"),
        };
        assert_eq!(problem(""), PatternProblem::Empty);
        assert_eq!(problem("order..x"), PatternProblem::EmptyWord);
        assert_eq!(problem("order.x*"), PatternProblem::EmbeddedWildcard);
        assert_eq!(problem("or#der"), PatternProblem::EmbeddedWildcard);
        let text = |p: &str| validate_pattern(p).unwrap_err().to_string();
        assert_eq!(text(""), "a pattern must not be empty");
        assert_eq!(
            text("order..x"),
            "pattern 'order..x' has an empty word (two dots in a row?)"
        );
        assert_eq!(
            text("or#der"),
            "pattern 'or#der': '*' and '#' must stand alone between dots (like 'order.*' or 'order.#')"
        );
    }
}
