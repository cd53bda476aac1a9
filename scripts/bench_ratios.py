#!/usr/bin/env python3
"""Ratios of mqlite to plain SQLite from the `throughput` criterion bench.

Usage (after the bench ran):

    cargo bench --bench throughput
    python3 scripts/bench_ratios.py [--target-dir DIR] [--stat typical|mean|median]

The criterion output is read from $CRITERION_HOME, else DIR/criterion, else
$CARGO_TARGET_DIR/criterion, else ./target/criterion (criterion's own order,
with --target-dir in place of cargo's). For a separate build directory:

    CARGO_TARGET_DIR=/work/target-bench cargo bench --bench throughput
    CARGO_TARGET_DIR=/work/target-bench python3 scripts/bench_ratios.py

For each workload group it reads <group>/{mqlite,raw_sqlite}/new/estimates.json
(time per iteration, in ns) and benchmark.json (messages per iteration, the
bench's Throughput::Elements) and prints messages per second and
mqlite / raw. The default statistic, "typical", is the one criterion prints:
the regression slope when it was sampled linearly, else the mean.

After the table it prints mqlite's 4-consumer figure against its own
1-consumer one (consume_ack_competing / consume_ack, both mqlite); the target
is at least 1.00.
"""

import argparse
import json
import os
import sys

WORKLOADS = [
    "publish",
    "publish_batch",
    "publish_concurrent",
    "consume_ack",
    "consume_ack_competing",
    "replay",
]
FUNCTIONS = ("mqlite", "raw_sqlite")


def criterion_dir(target_dir):
    if os.environ.get("CRITERION_HOME"):
        return os.environ["CRITERION_HOME"]
    if target_dir:
        return os.path.join(target_dir, "criterion")
    if os.environ.get("CARGO_TARGET_DIR"):
        return os.path.join(os.environ["CARGO_TARGET_DIR"], "criterion")
    return os.path.join("target", "criterion")


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def msgs_per_sec(root, group, function, stat):
    """Messages per second of one benchmark, or None if it has not run."""
    new = os.path.join(root, group, function, "new")
    try:
        estimates = load(os.path.join(new, "estimates.json"))
        bench = load(os.path.join(new, "benchmark.json"))
    except FileNotFoundError:
        return None
    throughput = bench.get("throughput") or {}
    elements = throughput.get("Elements")
    if elements is None:
        raise SystemExit(f"{new}: benchmark has no Throughput::Elements")
    if stat == "typical":
        est = estimates.get("slope") or estimates["mean"]
    else:
        est = estimates[stat]
    ns = est["point_estimate"]
    return elements / (ns / 1e9)


def fmt_rate(x):
    return "-" if x is None else f"{x:,.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target-dir", help="cargo target directory (default: $CARGO_TARGET_DIR or ./target)")
    ap.add_argument("--stat", choices=["typical", "mean", "median"], default="typical")
    args = ap.parse_args()

    root = criterion_dir(args.target_dir)
    if not os.path.isdir(root):
        sys.exit(f"no criterion results in {root}: run `cargo bench --bench throughput` first")

    rows = []
    mq_rates = {}
    for w in WORKLOADS:
        mq, raw = (msgs_per_sec(root, w, f, args.stat) for f in FUNCTIONS)
        mq_rates[w] = mq
        ratio = f"{mq / raw:.2f}" if mq and raw else "-"
        rows.append((w, fmt_rate(mq), fmt_rate(raw), ratio))

    header = ("workload", "mqlite msgs/s", "raw msgs/s", "ratio")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    line = lambda r: "  ".join(
        c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)
    )
    print(f"# {root} ({args.stat}; ratio = mqlite / raw, 1.00 = as fast as plain SQLite)")
    print(line(header))
    print(line(tuple("-" * n for n in widths)))
    for r in rows:
        print(line(r))

    one, four = mq_rates["consume_ack"], mq_rates["consume_ack_competing"]
    scaling = f"{four / one:.2f}" if one and four else "-"
    print(
        f"\nmqlite consume_ack_competing / consume_ack: {fmt_rate(four)} / {fmt_rate(one)} msgs/s"
        f" = {scaling} (target >= 1.00: 4 competing consumers at least as fast as 1)"
    )


if __name__ == "__main__":
    main()
