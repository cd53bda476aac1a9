//! Model-based check: random sequences of queue operations against mqlite
//! and a plain in-memory model of the delivery semantics (as redb checks
//! its tables against a BTreeMap). Any difference fails with the sequence.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

use std::collections::BTreeMap;
use std::time::Duration;

use mqlite::{ConsumeRequest, Database, Durability, ManualClock, Message, NackAction};
use proptest::prelude::*;

const MAX_DELIVERIES: u32 = 3;
const ACK_WAIT_S: u64 = 10;

#[derive(Debug, Clone)]
enum Op {
    Publish(u8),
    Consume(u8),
    /// Ack the i-th delivery currently held (mod how many).
    Ack(u8),
    /// Ack an id that was already settled or replaced: must be refused.
    AckStale(u8),
    Nack(u8),
    NackDead(u8),
    Advance(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..5).prop_map(Op::Publish),
        4 => (1u8..6).prop_map(Op::Consume),
        3 => any::<u8>().prop_map(Op::Ack),
        1 => any::<u8>().prop_map(Op::AckStale),
        1 => any::<u8>().prop_map(Op::Nack),
        1 => any::<u8>().prop_map(Op::NackDead),
        2 => (1u8..25).prop_map(Op::Advance),
    ]
}

/// What the model knows of one message (by offset).
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Deliverable from `at` (ms); `attempts` deliveries so far; `id` is the
    /// last delivery's id, which stays valid until the next delivery (as an
    /// SQS receipt handle does).
    Waiting {
        attempts: u32,
        at: i64,
        id: Option<u64>,
    },
    /// Leased until `until` under delivery `id`.
    Leased {
        attempts: u32,
        until: i64,
        id: u64,
    },
    Acked,
    Dead,
}

#[derive(Default)]
struct Model {
    msgs: BTreeMap<u64, State>,
    /// Delivery ids handed out and no longer current.
    old_ids: Vec<u64>,
}

impl Model {
    /// Leases that ran out make their message deliverable again (from the
    /// moment they ran out), keeping the last delivery id valid.
    fn settle_expired(&mut self, now: i64) {
        for st in self.msgs.values_mut() {
            if let State::Leased {
                attempts,
                until,
                id,
            } = *st
                && until <= now
            {
                *st = State::Waiting {
                    attempts,
                    at: until,
                    id: Some(id),
                };
            }
        }
    }
}

fn check(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let db = Database::builder(dir.path().join("m.db"))
        .durability(Durability::Off)
        .clock(clock.clone())
        .open()
        .unwrap();
    db.execute(&format!(
        "CREATE QUEUE q MAX DELIVERIES {MAX_DELIVERIES} ACK WAIT {ACK_WAIT_S}s"
    ))
    .unwrap();
    let mut m = Model::default();
    let mut next_offset = 0u64;
    let mut held: Vec<(u64, u64)> = Vec::new(); // (delivery id, offset)
    for op in ops {
        let now = db.now_ms();
        match op {
            Op::Publish(n) => {
                let msgs = (0..n)
                    .map(|i| Message::new(format!("m{}", next_offset + u64::from(i))))
                    .collect();
                let p = db.publish_batch("q", msgs).unwrap();
                for x in p {
                    assert_eq!(x.offset, next_offset);
                    m.msgs.insert(
                        next_offset,
                        State::Waiting {
                            attempts: 0,
                            at: now,
                            id: None,
                        },
                    );
                    next_offset += 1;
                }
            }
            Op::Consume(k) => {
                let got = db
                    .consume(&ConsumeRequest::queue("q").max(usize::from(k)))
                    .unwrap();
                m.settle_expired(now);
                // Which messages may be delivered now.
                let eligible: Vec<u64> = m
                    .msgs
                    .iter()
                    .filter(|(_, s)| matches!(s, State::Waiting { at, .. } if *at <= now))
                    .map(|(o, _)| *o)
                    .collect();
                for d in &got {
                    let st = m.msgs.get(&d.offset).cloned();
                    let Some(State::Waiting {
                        attempts,
                        at,
                        id: old,
                    }) = st
                    else {
                        panic!("delivered offset {} in state {st:?}", d.offset);
                    };
                    m.old_ids.extend(old);
                    assert!(at <= now, "delivered before it was due");
                    assert_eq!(d.attempt, attempts + 1, "attempt of offset {}", d.offset);
                    assert_eq!(d.payload_str(), format!("m{}", d.offset));
                    m.msgs.insert(
                        d.offset,
                        State::Leased {
                            attempts: d.attempt,
                            until: now + (ACK_WAIT_S * 1000) as i64,
                            id: d.id,
                        },
                    );
                    held.retain(|(_, o)| *o != d.offset);
                    held.push((d.id, d.offset));
                }
                // Exhausted messages met on the way went to the DLQ: each must
                // have been due and delivered MAX_DELIVERIES times.
                let dead = db
                    .execute("SELECT offset, reason FROM DLQ WHERE reason LIKE 'exceeded%'")
                    .unwrap();
                for row in &dead.rows {
                    let mqlite::Value::Int(o) = row[0] else {
                        panic!("offset")
                    };
                    let o = o as u64;
                    match m.msgs.get(&o) {
                        Some(State::Dead) => {}
                        Some(State::Waiting { attempts, at, .. }) => {
                            assert!(
                                *attempts >= MAX_DELIVERIES && *at <= now,
                                "offset {o} dead too early"
                            );
                            assert!(eligible.contains(&o));
                            m.msgs.insert(o, State::Dead);
                        }
                        other => panic!("offset {o} dead-lettered while {other:?}"),
                    }
                }
                // Nothing deliverable was left behind while there was room.
                if got.len() < usize::from(k) {
                    let left: Vec<_> = m
                        .msgs
                        .iter()
                        .filter(|(_, s)| matches!(s, State::Waiting { at, attempts, .. } if *at <= now && *attempts < MAX_DELIVERIES))
                        .collect();
                    assert!(
                        left.is_empty(),
                        "deliverable messages not delivered: {left:?}"
                    );
                }
            }
            Op::Ack(i) | Op::Nack(i) | Op::NackDead(i) if !held.is_empty() => {
                let (id, off) = held.remove(usize::from(i) % held.len());
                let current = matches!(
                    m.msgs.get(&off),
                    Some(State::Leased { id: cur, .. } | State::Waiting { id: Some(cur), .. }) if *cur == id
                );
                let r = match op {
                    Op::Ack(_) => db.ack(&[id]),
                    Op::Nack(_) => db.nack(&[id], &NackAction::Now),
                    _ => db.nack(&[id], &NackAction::Dead(Some("model".into()))),
                };
                if current {
                    assert!(
                        r.is_ok(),
                        "settling current delivery {id} of offset {off}: {r:?}"
                    );
                    let attempts = match m.msgs.get(&off) {
                        Some(State::Leased { attempts, .. } | State::Waiting { attempts, .. }) => {
                            *attempts
                        }
                        _ => 0,
                    };
                    match op {
                        Op::Ack(_) => {
                            m.msgs.insert(off, State::Acked);
                            m.old_ids.push(id);
                        }
                        Op::Nack(_) => {
                            m.msgs.insert(
                                off,
                                State::Waiting {
                                    attempts,
                                    at: now,
                                    id: Some(id),
                                },
                            );
                        }
                        _ => {
                            m.msgs.insert(off, State::Dead);
                            m.old_ids.push(id);
                        }
                    }
                } else {
                    assert!(r.is_err(), "settling replaced delivery {id} must fail");
                }
            }
            Op::AckStale(i) if !m.old_ids.is_empty() => {
                let id = m.old_ids[usize::from(i) % m.old_ids.len()];
                assert!(
                    db.ack(&[id]).is_err(),
                    "an old delivery id {id} must be refused"
                );
            }
            Op::Advance(s) => {
                clock.advance(Duration::from_secs(u64::from(s)));
                m.settle_expired(db.now_ms());
            }
            _ => {}
        }
    }
    // Drain: everything not acked or dead is eventually delivered and acked once.
    clock.advance(Duration::from_secs(ACK_WAIT_S + 1));
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 1000);
        let got = db.consume(&ConsumeRequest::queue("q").max(50)).unwrap();
        if got.is_empty() {
            break;
        }
        for d in &got {
            let st = m.msgs.get(&d.offset).cloned();
            assert!(
                !matches!(st, Some(State::Acked | State::Dead)),
                "offset {} delivered again after it was {st:?}",
                d.offset
            );
            m.msgs.insert(d.offset, State::Acked);
        }
        db.ack(&got.iter().map(|d| d.id).collect::<Vec<_>>())
            .unwrap();
    }
    let dead_model = m.msgs.values().filter(|s| **s == State::Dead).count();
    let waiting: Vec<_> = m
        .msgs
        .iter()
        .filter(|(_, s)| !matches!(s, State::Acked | State::Dead))
        .collect();
    // Whatever was exhausted in the model's view went to the DLQ during the drain.
    let dead = db.execute("SELECT COUNT(*) FROM DLQ").unwrap().rows[0][0].clone();
    let dead = if let mqlite::Value::Int(n) = dead {
        n as usize
    } else {
        usize::MAX
    };
    assert!(dead >= dead_model, "DLQ {dead} < model {dead_model}");
    assert_eq!(
        dead,
        dead_model + waiting.len(),
        "every message is acked or dead: leftovers {waiting:?}"
    );
    assert_eq!(
        db.topic_stats("q").unwrap().messages,
        0,
        "a drained queue stores nothing"
    );
    assert_eq!(
        db.execute("CHECK").unwrap().rows[0][0],
        mqlite::Value::Text("ok".into())
    );
}

proptest! {
    // 64 cases in CI; PROPTEST_CASES=5000 for a long run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]
    #[test]
    fn queue_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        check(ops);
    }
}
