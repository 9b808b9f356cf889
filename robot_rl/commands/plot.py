"""`robot-rl plot RUN_DIR... [--out fig.png] [--metric return|eval_return|success_rate]`: compare runs.

Curves against environment steps and wall time; the seeds of one configuration as their mean with a
95% bootstrap band, one colour per configuration (robot_rl.plotting); the CSV of what was drawn is
written beside the PNG (fig.csv).
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="compare runs: curves vs steps and wall time, seeds as mean and 95%% CI")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (progress.csv, config.yaml)")
    p.add_argument("--out", default="plot.png",
                   help="the PNG to write; the CSV goes beside it (default plot.png)")
    p.add_argument("--metric", choices=("return", "eval_return", "success_rate"), default="return",
                   help="return: training episodes (mean of the last 20); eval_return: the periodic "
                        "deterministic evaluations; success_rate: where the task reports success")
    p.set_defaults(run=run_plot)


def run_plot(args: argparse.Namespace) -> int:
    from robot_rl.plotting import plot_runs

    png, table = plot_runs(args.runs, args.out, args.metric)
    print(json.dumps({"png": str(png), "csv": str(table), "runs": len(args.runs)}))
    return 0
