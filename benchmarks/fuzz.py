"""Fuzz the engine with thousands of random networks and count the outcomes.

Each network (``spa_core.fuzzing.random_network``) is pruned at a random ratio with a
random criterion, local or global ranking and ``round_to``; the oracle must hold or the
pruning must refuse with a reason. Prints graphs, groups, mismatches, errors and
refusals by reason. Run: ``.venv/bin/python benchmarks/fuzz.py --graphs 1000``.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from multiprocessing import Pool

from spa_core.fuzzing import check_network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--graphs", type=int, default=1000)
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    t0 = time.perf_counter()
    seeds = range(args.start, args.start + args.graphs)
    with Pool(args.workers) as pool:
        outcomes = pool.map(check_network, seeds, chunksize=8)
    status = Counter(o.status for o in outcomes)
    refusals = Counter(o.reason.split(" - ")[0] for o in outcomes if o.status == "refused")
    groups = sum(o.groups for o in outcomes)
    worst = max((o.error for o in outcomes if o.status == "ok"), default=0.0)
    print("\n| graphs | groups | oracle held | refused | mismatches | errors | worst error | seconds |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {len(outcomes)} | {groups} | {status['ok']} | {status['refused']} | {status['mismatch']} | "
          f"{status['error']} | {worst:.2e} | {time.perf_counter() - t0:.0f} |")
    if refusals:
        print("\nrefusals by reason:")
        for reason, n in refusals.most_common():
            print(f"  {n:5d}  {reason}")
    bad = [o for o in outcomes if o.status in ("mismatch", "error")]
    for o in bad[:20]:
        print(f"seed {o.seed}: {o.status} error={o.error:.3g} {o.reason}")


if __name__ == "__main__":
    main()
