"""What a resumable robustness map costs: the same grid evaluated with the record and the CSV rewritten
atomically after every point (`robot-rl robustness` since --resume) and, its peer, written once at the
end (as before). The worst case for the overhead: the fastest points there are (InvertedPendulum-v5,
one short episode a point) on a 20 x 20 grid, the most points a map takes, so the record grows to 400.
Each variant runs --repeats times, alternated, and its best time counts (the machine is shared). Prints
one JSON line: seconds of each, the overhead per point (ms) and in percent.

    python bench/robustness_resume_cost.py --max-steps 50
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> None:
    from robot_rl.policy_source import load_policy_source
    from robot_rl.robustness import parse_grid, robustness_grid, write_table
    from robot_rl.robustness_record import MapRecord, Point, axes_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="zoo:InvertedPendulum-v5_ppo")
    parser.add_argument("--max-steps", type=int, default=50)
    parser.add_argument("--side", type=int, default=20, help="points per axis")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    source = load_policy_source(args.policy)
    axes = [parse_grid(f"gain=0.3:1:{args.side}"), parse_grid(f"mass=0.5:1.5:{args.side}")]
    spec: dict[str, Any] = {"policy": args.policy, "axes": axes_spec(axes)}
    folder = Path(tempfile.mkdtemp(prefix="robustness_resume_cost."))
    record, table = folder / "map.robustness.json", folder / "map.csv"

    def save(partial: Any, finished: frozenset[tuple[int, ...]]) -> None:  # the command's, less the spec
        points = {i: Point(float(partial.mean[i]), float(partial.std[i]), 0) for i in finished}
        MapRecord(spec, points).save(record)
        write_table(partial, table, finished)

    every = frozenset(itertools.product(range(args.side), range(args.side)))
    robustness_grid(source.task, source.act, axes[:1], 1, source.seed, "return", args.max_steps)  # warm-up
    seconds = {"at_end": math.inf, "every_point": math.inf}
    for _ in range(args.repeats):  # alternated, the best of each: the machine is shared
        for name, progress in (("at_end", None), ("every_point", save)):
            start = time.perf_counter()
            result = robustness_grid(source.task, source.act, axes, 1, source.seed, "return", args.max_steps,
                                     progress=progress)
            if progress is None:
                save(result, every)
            seconds[name] = min(seconds[name], time.perf_counter() - start)
    points = args.side ** 2
    overhead = seconds["every_point"] - seconds["at_end"]
    print(json.dumps({"policy": args.policy, "points": points, "max_steps": args.max_steps,
                      "at_end_s": round(seconds["at_end"], 3),
                      "every_point_s": round(seconds["every_point"], 3),
                      "overhead_ms_per_point": round(1000 * overhead / points, 3),
                      "overhead_percent": round(100 * overhead / seconds["at_end"], 2)}))


if __name__ == "__main__":
    main()
