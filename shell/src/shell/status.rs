//! The status line table mode prints for a statement without rows, as
//! psql prints a command tag: `CREATE TOPIC`, `ACK 3`, `REPLAY 120`.

use mqlite::Session;
use mqlite::Value;
use mqlite::lang::ast::{Replay, Statement, TopicKind};

/// The status line of `stmt`, which has just run in `session`.
pub fn line(stmt: &Statement, session: &mut Session) -> String {
    match stmt {
        Statement::Create(c) => format!("CREATE {}", kind(c.kind)),
        Statement::Alter(a) => format!("ALTER {}", kind(a.kind)),
        Statement::Drop(d) => format!("DROP {}", kind(d.kind)),
        Statement::Ack(ids) => format!("ACK {}", ids.len()),
        Statement::Nack(n) => format!("NACK {}", n.ids.len()),
        Statement::Replay(r) => match unacked(r, session) {
            Some(n) => format!("REPLAY {n}"),
            None => "REPLAY".into(),
        },
        // The statement's first word: SUBSCRIBE, BEGIN, COMMIT, ...
        other => other
            .to_string()
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

fn kind(k: TopicKind) -> &'static str {
    match k {
        TopicKind::Topic => "TOPIC",
        TopicKind::Queue => "QUEUE",
    }
}

/// After a REPLAY: the messages of the topic the group has to go through
/// again (its `unacked` in SHOW GROUPS), read in the same session, so
/// inside a transaction it sees the replay.
fn unacked(r: &Replay, session: &mut Session) -> Option<i64> {
    let rs = session
        .execute_statement(&Statement::ShowGroups(Some(r.topic.clone())))
        .ok()?;
    let row = rs
        .iter()
        .find(|row| row.get_str("group") == Some(r.group.as_str()))?;
    row.get("unacked").and_then(Value::as_i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(db: &mqlite::Database, text: &str) -> String {
        let mut session = db.session();
        let mut last = String::new();
        for s in mqlite::lang::parse_script(text).expect("parses") {
            session.execute_statement(&s.statement).expect("runs");
            last = line(&s.statement, &mut session);
        }
        last
    }

    #[test]
    fn statements_without_rows_say_what_they_did() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = mqlite::Database::open(dir.path().join("s.db")).expect("open");
        assert_eq!(status(&db, "CREATE TOPIC t"), "CREATE TOPIC");
        assert_eq!(status(&db, "CREATE QUEUE q"), "CREATE QUEUE");
        assert_eq!(status(&db, "ALTER QUEUE q SET ACK WAIT 5s"), "ALTER QUEUE");
        assert_eq!(status(&db, "SUBSCRIBE GROUP g TO t"), "SUBSCRIBE");
        db.execute("PUBLISH q 'a', 'b', 'c'; PUBLISH t 'x', 'y'")
            .expect("publish");
        let rs = db.execute("CONSUME 3 FROM q").expect("consume");
        let ids: Vec<String> = rs
            .iter()
            .filter_map(|r| r.get_i64("delivery"))
            .map(|i| i.to_string())
            .collect();
        assert_eq!(status(&db, &format!("ACK {}, {}", ids[0], ids[1])), "ACK 2");
        assert_eq!(status(&db, &format!("NACK {}", ids[2])), "NACK 1");
        assert_eq!(status(&db, "REPLAY t GROUP g FROM BEGINNING"), "REPLAY 2");
        assert_eq!(
            status(&db, "BEGIN; REPLAY t GROUP g FROM LATEST"),
            "REPLAY 0"
        );
        assert_eq!(status(&db, "DROP QUEUE q"), "DROP QUEUE");
    }
}
