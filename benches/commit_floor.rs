//! The floor under the "8 publishing threads ≥ 5 × 1" target of issue #5 on
//! this machine: group commit with no SQL at all.
//!
//! ```text
//! cargo bench --bench commit_floor            # no work per write
//! cargo bench --bench commit_floor -- 9       # 9 µs of CPU per write
//! ```
//!
//! A measurement, not a criterion bench (`harness = false`); it runs for
//! about a second, so `cargo test --benches` runs it as it is. Arguments
//! starting with `--` (`cargo bench` adds `--bench`) are ignored.
//!
//! A model of `src/commit.rs`, without SQLite: callers queue a job and sleep
//! on their own condition variable; whoever finds no leader leads, gathers
//! until every active caller has queued (or 250 µs pass), spins the given
//! microseconds of CPU per job (mqlite's statements), writes 8 KiB in place
//! into a preallocated file and `fdatasync`s it (the WAL commit), then wakes
//! each caller. It prints one thread's commits per second, eight threads'
//! writes per second, and their ratio.
//!
//! What it shows: with no work per write the ratio is bounded by what waking
//! eight threads after every fsync costs on the machine's cores. Where that
//! bound is below 5, no change to mqlite's statements can reach the target.

use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const THREADS: usize = 8;
const GATHER: Duration = Duration::from_micros(250);

struct Slot {
    done: Mutex<bool>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    queue: Vec<Arc<Slot>>,
    leading: bool,
    active: usize,
}

struct Group {
    state: Mutex<State>,
    arrived: Condvar,
    file: std::fs::File,
    commits: Mutex<u64>,
    work: Duration,
}

impl Group {
    fn wake_gatherer(&self, st: &State) {
        if st.leading && st.queue.len() >= st.active {
            self.arrived.notify_one();
        }
    }

    /// The commit: CPU for each job, then one durable write.
    fn commit(&self, jobs: usize) {
        let start = Instant::now();
        while start.elapsed() < self.work * jobs as u32 {
            std::hint::spin_loop();
        }
        let mut n = self.commits.lock().expect("commits");
        *n += 1;
        // In place, like a WAL that is being reused: no size change.
        let offset = (*n % 64) * 8192;
        self.file.write_all_at(&[7u8; 8192], offset).expect("write");
        self.file.sync_data().expect("fdatasync");
    }

    fn publish(&self) {
        let slot = Arc::new(Slot {
            done: Mutex::new(false),
            wake: Condvar::new(),
        });
        let mut st = self.state.lock().expect("state");
        st.queue.push(Arc::clone(&slot));
        st.active += 1;
        self.wake_gatherer(&st);
        loop {
            if *slot.done.lock().expect("slot") {
                st.active -= 1;
                self.wake_gatherer(&st);
                return;
            }
            if st.leading {
                drop(st);
                let done = slot.done.lock().expect("slot");
                if !*done {
                    // Woken with a result, or to lead the next batch.
                    drop(slot.wake.wait(done).expect("wait"));
                }
                st = self.state.lock().expect("state");
                continue;
            }
            st.leading = true;
            let until = Instant::now() + GATHER;
            while st.queue.len() < st.active {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                st = self
                    .arrived
                    .wait_timeout(st, until - now)
                    .expect("gather")
                    .0;
            }
            let jobs = std::mem::take(&mut st.queue);
            drop(st);
            self.commit(jobs.len());
            for j in &jobs {
                *j.done.lock().expect("slot") = true;
                j.wake.notify_one();
            }
            st = self.state.lock().expect("state");
            st.leading = false;
            if let Some(next) = st.queue.first() {
                next.wake.notify_one();
            }
        }
    }
}

fn main() {
    let work_us: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map_or(0, |s| s.parse().expect("microseconds of work per write"));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(dir.path().join("wal"))
        .expect("open");
    file.set_len(64 * 8192).expect("preallocate");
    file.sync_all().expect("sync");
    let group = Arc::new(Group {
        state: Mutex::default(),
        arrived: Condvar::new(),
        file,
        commits: Mutex::new(0),
        work: Duration::from_micros(work_us),
    });

    let n1 = 2_000;
    let start = Instant::now();
    for _ in 0..n1 {
        group.publish();
    }
    let one = f64::from(n1) / start.elapsed().as_secs_f64();

    let per = 1_000;
    let start = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let group = Arc::clone(&group);
            std::thread::spawn(move || {
                for _ in 0..per {
                    group.publish();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let many = (THREADS * per) as f64 / start.elapsed().as_secs_f64();
    println!(
        "work {work_us} us per write: 1 thread {one:.0} commits/s, {THREADS} threads {many:.0} writes/s = {:.2}x",
        many / one
    );
}
