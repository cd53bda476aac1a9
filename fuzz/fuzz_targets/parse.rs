//! Parses arbitrary text; on success, displaying each statement and parsing
//! it again must give the same tree.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mqlite::lang::{parse_script, parse_statement};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = mqlite::lang::is_complete(text);
    match parse_script(text) {
        Ok(statements) => {
            for parsed in statements {
                let canonical = parsed.statement.to_string();
                match parse_statement(&canonical) {
                    Ok(again) => assert_eq!(again, parsed.statement, "canonical text: {canonical}"),
                    Err(e) => panic!("canonical text does not parse:\n{}", e.render(&canonical)),
                }
            }
        }
        Err(e) => {
            assert!(e.position <= text.len() && text.is_char_boundary(e.position));
            let _ = e.render(text);
        }
    }
});
