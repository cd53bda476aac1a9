//! SELECT as a SQL user expects it: positions in ORDER BY and GROUP BY,
//! booleans shown as booleans.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use common::{fail, open, rows};
use mqlite::Error;
use serde_json::json;

fn setup() -> common::TestDb {
    let t = open();
    t.db.execute(
        "CREATE TOPIC orders;
         PUBLISH orders KEY 'b' {\"total\": 5}, {\"total\": 30};
         PUBLISH orders KEY 'a' {\"total\": 20}, {\"total\": 10};
         PUBLISH orders KEY 'c' {\"total\": 1}",
    )
    .unwrap();
    t
}

#[test]
fn order_by_a_position_sorts_by_that_column() {
    let t = setup();
    let db = &t.db;
    assert_eq!(
        rows(db, "SELECT key, total FROM orders ORDER BY 2"),
        [
            json!({"key": "c", "total": 1}),
            json!({"key": "b", "total": 5}),
            json!({"key": "a", "total": 10}),
            json!({"key": "a", "total": 20}),
            json!({"key": "b", "total": 30}),
        ]
    );
    // An alias sorts by the value too (a JSON path's projection is JSON
    // text, which sorted "10" before "5").
    let by_alias: Vec<_> = rows(db, "SELECT total AS t FROM orders ORDER BY t")
        .into_iter()
        .map(|r| r["t"].clone())
        .collect();
    assert_eq!(
        by_alias,
        [json!(1), json!(5), json!(10), json!(20), json!(30)]
    );
    let by_key_then_total: Vec<_> = rows(db, "SELECT key, total FROM orders ORDER BY 1, 2 DESC")
        .into_iter()
        .map(|r| r["total"].clone())
        .collect();
    assert_eq!(
        by_key_then_total,
        [json!(20), json!(10), json!(30), json!(5), json!(1)]
    );
    // `*` counts as its columns: partition, offset, timestamp, key, ...
    let keys: Vec<_> = rows(db, "SELECT * FROM orders ORDER BY 4 DESC, 2")
        .into_iter()
        .map(|r| (r["key"].clone(), r["offset"].clone()))
        .collect();
    assert_eq!(
        keys,
        [
            (json!("c"), json!(4)),
            (json!("b"), json!(0)),
            (json!("b"), json!(1)),
            (json!("a"), json!(2)),
            (json!("a"), json!(3)),
        ]
    );
    assert_eq!(
        rows(
            db,
            "SELECT key, SUM(total) AS s FROM orders GROUP BY 1 ORDER BY 2 DESC"
        ),
        [
            json!({"key": "b", "s": 35}),
            json!({"key": "a", "s": 30}),
            json!({"key": "c", "s": 1}),
        ]
    );
    for (q, clause) in [
        ("SELECT key FROM orders ORDER BY 2", "ORDER BY 2"),
        ("SELECT key FROM orders ORDER BY 0", "ORDER BY 0"),
        ("SELECT key, COUNT(*) FROM orders GROUP BY 3", "GROUP BY 3"),
    ] {
        let e = fail(db, q);
        assert!(matches!(e, Error::InvalidStatement(_)), "{q}: {e:?}");
        assert!(
            e.to_string().contains(&format!("{clause}: a position")),
            "{q}: {e}"
        );
    }
}

#[test]
fn booleans_come_out_as_booleans() {
    let t = setup();
    let db = &t.db;
    assert_eq!(
        rows(
            db,
            "SELECT TRUE AS t, FALSE AS f, 1 AS one FROM orders LIMIT 1"
        ),
        [json!({"t": true, "f": false, "one": 1})]
    );
    assert_eq!(
        rows(
            db,
            "SELECT total > 10 AS big, NOT total > 10 AS small, key IN ('a') AS a,
                    total BETWEEN 5 AND 20 AS mid, key IS NULL AS nokey, key LIKE 'b%' AS b,
                    total + 1 AS next, nothing = 1 AS unknown
             FROM orders WHERE offset = 1"
        ),
        [json!({
            "big": true, "small": false, "a": false, "mid": false, "nokey": false,
            "b": true, "next": 31, "unknown": null
        })]
    );
    let rs = db.execute("SELECT TRUE AS t FROM orders LIMIT 1").unwrap();
    assert_eq!(rs.rows[0][0], mqlite::Value::Bool(true));
}
