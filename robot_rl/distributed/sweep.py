"""`robot-rl sweep`: every grid combination × seed as a Ray Tune trial, each trial the ordinary trainer
writing its ordinary run directory, so that `robot-rl plot`, `export` and `train --resume` work on it.

A sweep folder holds:
  sweep.json       the plan: the grid, the seeds, --max-concurrent (what `--resume` reads back)
  launch.yaml      a copy of the launch file (a resumed sweep trains what the first one did)
  runs/<c>_s<seed> the trials' run directories, each with trial.log (the trainer's output and the
                   worker's pid); eval.json marks a finished trial
  tune/            Ray Tune's own experiment state
  results.csv, summary.txt, comparison.png (+ .csv), best_bundle/   written at the end (report.py)

A trial killed mid-run (its worker, or its node) is retried by Tune (FailureConfig.max_failures) and
resumes from its newest checkpoint through the trainer's own resume; `--resume DIR` starts only the
trials without eval.json, so a finished trial is never run again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot_rl.distributed.grid import GridAxis, Trial, check_trials, parse_grid, plan_trials
from robot_rl.errors import ConfigError

PLAN_FILE, LAUNCH_COPY, RUNS = "sweep.json", "launch.yaml", "runs"
TRIAL_LOG, FINISHED = "trial.log", "eval.json"
MAX_FAILURES = 3
"""Times Tune restarts a trial whose worker died or raised, each time from its newest checkpoint."""


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep runs; saved as sweep.json so that `--resume` runs the same trials."""

    out: Path
    axes: tuple[GridAxis, ...]
    seeds: tuple[int, ...]
    max_concurrent: int | None

    @property
    def launch_file(self) -> Path:
        return self.out / LAUNCH_COPY

    def trials(self) -> list[Trial]:
        return plan_trials(list(self.axes), list(self.seeds))

    def run_dir(self, trial: Trial) -> Path:
        return self.out / RUNS / trial.name

    def save(self) -> None:
        data = {"grid": [[a.key, list(a.values)] for a in self.axes], "seeds": list(self.seeds),
                "max_concurrent": self.max_concurrent}
        (self.out / PLAN_FILE).write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, out: str | Path) -> SweepPlan:
        out = Path(out).resolve()
        plan_file = out / PLAN_FILE
        if not plan_file.is_file() or not (out / LAUNCH_COPY).is_file():
            raise ConfigError(f"--resume {out}: not a sweep folder (no {PLAN_FILE} and {LAUNCH_COPY})")
        try:
            data = json.loads(plan_file.read_text())
            axes = tuple(GridAxis(str(k), tuple(v)) for k, v in data["grid"])
            return cls(out, axes, tuple(int(s) for s in data["seeds"]), data.get("max_concurrent"))
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"--resume {out}: {PLAN_FILE} is damaged "
                              f"({type(err).__name__}: {err})") from None


def new_plan(launch_file: str | Path, grid: list[str], seeds: int, out: str | Path,
             max_concurrent: int | None) -> SweepPlan:
    """Validate a new sweep completely (every trial's config); writes nothing (see `create`)."""
    if seeds < 1:
        raise ConfigError(f"--seeds: must be >= 1, got {seeds}")
    if max_concurrent is not None and max_concurrent < 1:
        raise ConfigError(f"--max-concurrent: must be >= 1, got {max_concurrent}")
    from robot_rl.launch import load_train_config

    base_seed = load_train_config(launch_file).seed
    axes = parse_grid(grid)
    seed_list = [base_seed + i for i in range(seeds)]
    check_trials(launch_file, axes, plan_trials(axes, seed_list))
    out = Path(out).resolve()
    if (out / PLAN_FILE).exists():
        raise ConfigError(f"--out {out} already holds a sweep; finish it with "
                          f"`robot-rl sweep --resume {out}`")
    return SweepPlan(out, tuple(axes), tuple(seed_list), max_concurrent)


def create(plan: SweepPlan, launch_file: str | Path) -> None:
    """Write a new sweep's folder: the plan and a copy of its launch file."""
    try:
        (plan.out / RUNS).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(launch_file, plan.launch_file)
        plan.save()
    except OSError as err:
        raise ConfigError(f"--out {plan.out}: cannot write the sweep folder: {err.strerror or err}") from None


def pending_trials(plan: SweepPlan) -> list[Trial]:
    """The trials without eval.json: never started, killed, or failed."""
    return [t for t in plan.trials() if not (plan.run_dir(t) / FINISHED).is_file()]


def run_sweep(plan: SweepPlan, address: str | None, num_cpus: int | None = None,
              log: Any = sys.stderr) -> dict[str, str]:
    """Run the plan's pending trials on Ray Tune; returns {trial name: error} of those that failed.

    `num_cpus`: the CPUs of a local Ray instance (None: all); each trial takes one, and one more per
    rollout worker (`rollout_workers`, placed in the trial's placement group). Connects unless
    connected already (the command connects before it writes a new sweep's folder).
    """
    from robot_rl.distributed.cluster import connect

    pending = pending_trials(plan)
    done = len(plan.trials()) - len(pending)
    print(f"sweep {plan.out}: {len(plan.trials())} trials, {done} finished, {len(pending)} to run",
          file=log, flush=True)
    if not pending:
        return {}
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    workers = [rollout_workers(plan.launch_file, t) for t in pending]
    specs = [{"name": t.name, "launch": str(plan.launch_file), "overrides": t.overrides(),
              "run_dir": str(plan.run_dir(t)), "rollout_workers": n}
             for t, n in zip(pending, workers, strict=True)]
    ray = connect(address, num_cpus=num_cpus)
    if address is None:
        check_local_cpus(ray, 1 + max(workers))
    from ray import tune

    tuner = tune.Tuner(
        tune.with_resources(run_trial, trial_resources),
        param_space={"trial": tune.grid_search(specs)},
        tune_config=tune.TuneConfig(max_concurrent_trials=plan.max_concurrent,
                                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(name=f"tune_{time.strftime('%Y%m%d-%H%M%S')}",
                                  storage_path=str(plan.out / "tune"), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=MAX_FAILURES)),
    )
    try:
        results = tuner.fit()
    finally:
        ray.shutdown()
    errors = {}
    for index in range(len(results)):
        result = results[index]
        if result.error is not None and result.config is not None:
            errors[result.config["trial"]["name"]] = str(result.error).strip().splitlines()[-1]
    return errors


def trial_resources(config: dict[str, Any]) -> Any:
    """A trial's placement group: one CPU for its trainer and one per rollout worker (`rollout_workers`),
    so that its workers are placed with it (Tune refuses actors that a trial did not reserve)."""
    from ray import tune

    return tune.PlacementGroupFactory([{"CPU": 1.0}] * (1 + int(config["trial"]["rollout_workers"])))


def rollout_workers(launch_file: str | Path, trial: Trial) -> int:
    """The trial's `rollout_workers` (a grid may vary it): the CPUs its trial takes beyond its trainer's."""
    from robot_rl.launch import load_train_config

    return load_train_config(launch_file, trial.overrides()).rollout_workers


def check_local_cpus(ray: Any, need: int) -> None:
    """A trial that needs more CPUs than the local Ray instance has would wait forever: one error first."""
    have = int(ray.cluster_resources().get("CPU", 0))
    if need > have:
        raise ConfigError(f"rollout_workers: a trial takes {need} CPUs (its trainer and {need - 1} rollout "
                          f"workers), but the local Ray instance has {have}; give --num-cpus {need} or more")


def _trial_name(trial: Any) -> str:
    return trial.config["trial"]["name"]


def run_trial(config: dict[str, Any]) -> None:
    """One Tune trial (in a Ray worker): train the run directory to the end, resuming it from its newest
    checkpoint when one exists, and report its final evaluation. Output goes to the run's trial.log."""
    from ray import tune

    spec = config["trial"]
    run_dir = Path(spec["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / TRIAL_LOG, "a", buffering=1) as out, \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        print(f"trial {spec['name']}: pid {os.getpid()} on {os.uname().nodename}", flush=True)
        result = train_trial(spec["launch"], spec["overrides"], run_dir)
        print(f"trial {spec['name']}: finished at step {result['step']}, evaluation return "
              f"{result['mean_return']:.2f} ± {result['std_return']:.2f}", flush=True)
    tune.report({"mean_return": result["mean_return"], "std_return": result["std_return"],
                 "step": result["step"]})


def train_trial(launch_file: str, overrides: list[str], run_dir: Path) -> dict[str, Any]:
    """Train one trial's run directory to the end, as `robot-rl train` does: its eval.json when finished,
    the trainer's resume when it holds checkpoints, a fresh run otherwise (the trainer clears what a
    run killed before its first checkpoint left)."""
    from robot_rl.launch import load_train_config, trainer_class
    from robot_rl.run_base import read_resume_config
    from robot_rl.run_dir import has_checkpoints

    finished = run_dir / FINISHED
    if finished.is_file():
        result: dict[str, Any] = json.loads(finished.read_text())
        return result
    if has_checkpoints(run_dir):
        config, _ = read_resume_config(run_dir)
        trainer = trainer_class(config.algo).resume(run_dir, config)
    else:
        config = load_train_config(launch_file, overrides)
        trainer = trainer_class(config.algo)(config, run_dir)
    return trainer.train()
