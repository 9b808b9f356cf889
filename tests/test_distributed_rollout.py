"""Distributed rollouts (`rollout_workers: N`, issue 17): the worker's collection step, the normaliser
merge, and real Ray actors on a local instance of 2 CPUs (started once for the module).

Without Ray: a worker holding all the envs, with the local run's noise stream, collects exactly the
local run's buffer; the learner's merge of two workers' new moments equals the statistics of all the
observations. With Ray: 2 workers give the local run's batch shapes, a worker SIGKILLed mid-iteration is
replaced and the run finishes (its lost samples logged), and 2 workers learn InvertedPendulum like the
local trainer does.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from process_tree import alive, descendants

from robot_rl.acting import policy_weights
from robot_rl.checkpoint import list_checkpoints
from robot_rl.distributed.cluster import ClusterUnreachable
from robot_rl.distributed.rollout import RolloutPool, RolloutWorker, TrackedMoments, WorkerSetup, split_envs
from robot_rl.errors import ConfigError, RobotRLError
from robot_rl.launch import load_train_config, parse_train_config
from robot_rl.normalization import RunningMeanStd
from robot_rl.rollout import _STORED as STORED_FIELDS
from robot_rl.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["log.progress_bar=false", "log.tensorboard=false", "log.plot=false", "eval.episodes=5"]
BASE = {"task": "InvertedPendulum-v5", "algo": "ppo", "num_envs": 4, "vectorization": "batched",
        "env_threads": 1, "total_steps": 4096,
        "ppo": {"num_steps": 128, "epochs": 2, "minibatch_size": 256},
        "eval": {"episodes": 2},
        "log": {"progress_bar": False, "tensorboard": False, "plot": False, "checkpoint_every_steps": 0}}


def _config(**changes):
    data = {**BASE, **changes}
    return parse_train_config(data)


# ---------------------------------------------------------------------------------- config (no Ray)
@pytest.mark.parametrize("changes, message", [
    ({"rollout_workers": -1}, "rollout_workers: must be >= 0"),
    ({"rollout_workers": 5}, "rollout_workers: each worker steps at least one of the num_envs"),
    ({"rollout_workers": 2, "algo": "dqn", "task": "CartPole-v1", "vectorization": "sync", "ppo": None,
      "env_threads": None}, "rollout_workers: distributed rollouts are for the on-policy algorithms"),
    ({"ray_address": "auto"}, "ray_address: names the Ray cluster of the rollout workers"),
    ({"rollout_workers": 1, "ray_address": "nohost"}, "ray_address: 'nohost' is not valid"),
])
def test_bad_rollout_settings_are_one_error_naming_the_key(changes, message) -> None:
    data = {**BASE, **changes}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(ConfigError) as err:
        parse_train_config(data)
    assert message in str(err.value), str(err.value)


def test_a_privileged_critic_with_rollout_workers_is_one_error_naming_both_keys() -> None:
    # the Ray workers collect observations only: the asymmetric critic's privileged terms stay local
    data = {**BASE, "task": "cube:rotate-z", "rollout_workers": 2,
            "policy": {"critic_privileged": ["cube_vel", "cube_mass"]}}
    with pytest.raises(ConfigError) as err:
        parse_train_config(data)
    message = str(err.value)
    assert message.startswith("policy.critic_privileged:"), message
    assert "rollout_workers" in message, message
    parse_train_config({**data, "rollout_workers": 0})  # the same critic collecting locally is valid


def test_the_cli_refuses_negative_workers_before_training(tmp_path: Path) -> None:
    launch = str(ROOT / "launch" / "invertedpendulum_ppo.yaml")
    command = [sys.executable, "-m", "robot_rl.cli", "train", launch, "--out", str(tmp_path / "run"),
               "--set", "rollout_workers=-1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "rollout_workers: must be >= 0" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_an_address_where_no_ray_answers_is_one_error_naming_ray_address(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()  # (the module's Ray instance starts later: it would be reused)
    trainer = Trainer(_config(rollout_workers=2, ray_address="127.0.0.1:1"), tmp_path / "run")
    with pytest.raises(ClusterUnreachable, match=r"ray_address 127\.0\.0\.1:1: no Ray cluster answers"):
        trainer.train()
    assert not (tmp_path / "run" / "config.yaml").exists()  # refused before the run is written


def test_envs_are_split_evenly_and_completely() -> None:
    assert split_envs(4, 2) == [(0, 2), (2, 2)]
    assert split_envs(5, 2) == [(0, 3), (3, 2)]
    assert split_envs(3, 3) == [(0, 1), (1, 1), (2, 1)]


# ---------------------------------------------------------------------------------- the worker (no Ray)
def test_a_worker_with_every_env_collects_the_local_buffer(tmp_path: Path) -> None:
    """The worker runs the trainer's own collection: same envs, seeds and noise → the same numbers."""
    config = _config()
    local = Trainer(config, tmp_path / "local")
    setup = WorkerSetup(dataclasses.replace(config, rollout_workers=0), index=0, first_env=0,
                        reset_seed=config.seed, generation=0)
    worker = RolloutWorker(setup)
    worker.acting.rng = np.random.default_rng(config.seed)  # the local run's action-noise stream
    try:
        obs_stats = local.obs_normalizer.rms.state_dict()
        reward_stats = {**local.reward_scaler.rms.state_dict(), "returns": local.reward_scaler.returns.copy()}
        rollout = worker.collect(policy_weights(local.agent), obs_stats, reward_stats)
        obs_raw = local.envs.reset(seed=config.seed)[0]
        obs_raw, *_ = local._collect(obs_raw, np.zeros(4), np.zeros(4, dtype=np.int64))
        for name in STORED_FIELDS:
            np.testing.assert_allclose(rollout.columns[name], getattr(local.buffer, name).numpy(), rtol=1e-6,
                                       atol=1e-6, err_msg=name)
        local_last = local.acting.value(local._normalize(obs_raw, update=False))
        np.testing.assert_allclose(rollout.last_values, local_last, rtol=1e-6, atol=1e-6)
        assert rollout.obs_moments.size == local.obs_normalizer.rms.count == 128 * 4
        np.testing.assert_allclose(rollout.reward_returns, local.reward_scaler.returns)
        assert len(rollout.episode_returns) == local.episodes > 0
        assert rollout.episode_returns[-20:] == list(local.episode_returns)  # the trainer keeps 20
    finally:
        worker.close()
        local.close()


def test_merging_workers_new_moments_gives_the_statistics_of_all_observations() -> None:
    """The learner's rule: start statistics + each worker's new moments = stats of everything seen."""
    rng = np.random.default_rng(0)
    seen_before = rng.normal(3.0, 2.0, size=(500, 3))
    learner = RunningMeanStd((3,))
    learner.update(seen_before)
    per_worker = []
    for shift in (0.0, 5.0):  # two workers seeing different parts of the state space
        tracked = TrackedMoments((3,))
        tracked.restart(learner.state_dict())
        batches = [rng.normal(shift, 1.0 + shift, size=(4, 3)) for _ in range(50)]
        for batch in batches:  # step by step, as the collection updates it
            tracked.update(batch)
        per_worker.append((tracked.new, np.concatenate(batches)))
    for new, _ in per_worker:
        learner.update_from_moments(new.mean, new.var, new.count)
    everything = np.concatenate([seen_before, *(data for _, data in per_worker)])
    np.testing.assert_allclose(learner.mean, everything.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(learner.var, everything.var(axis=0), rtol=1e-10)
    assert learner.count == len(everything)


# ---------------------------------------------------------------------------------- real Ray actors
@pytest.fixture(scope="module")
def ray_instance():
    pytest.importorskip("ray")
    from robot_rl.distributed.cluster import connect

    ray = connect(None, num_cpus=2)
    yield ray
    ray.shutdown()


def test_two_workers_give_the_local_batch_shapes(ray_instance, tmp_path: Path) -> None:
    config = _config(rollout_workers=2)
    trainer = Trainer(config, tmp_path / "run")
    local = Trainer(_config(), tmp_path / "local")
    pool = RolloutPool.start(trainer)
    try:
        assert len(set(pool.pids)) == 2 and os.getpid() not in pool.pids
        buffer, last_values = pool.collect(trainer)
        for name in STORED_FIELDS:
            ours, theirs = getattr(buffer, name), getattr(local.buffer, name)
            assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, name
        assert buffer is trainer.buffer and buffer.full
        assert last_values.shape == (4,) and last_values.dtype == torch.float32
        assert trainer.step == 128 * 4
        assert trainer.obs_normalizer.rms.count == 128 * 4  # every worker's observations merged
        assert trainer.episodes > 20 and len(trainer.episode_returns) == 20  # the pendulum falls early
        assert torch.isfinite(buffer.obs).all() and buffer.obs.abs().sum() > 0
        # the two halves come from different noise streams: not one worker's data twice
        assert not torch.equal(buffer.actions[:, :2], buffer.actions[:, 2:])
        metrics = trainer.agent.update(buffer, last_values)
        assert np.isfinite(metrics["policy_loss"])
    finally:
        pool.close()
        trainer.close()
        local.close()


def test_workers_the_cluster_cannot_place_are_one_error_not_a_hang(ray_instance, tmp_path: Path,
                                                                   monkeypatch) -> None:
    from robot_rl.distributed import rollout

    monkeypatch.setattr(rollout, "START_TIMEOUT_S", 5.0)
    trainer = Trainer(_config(rollout_workers=3), tmp_path / "run")  # 3 CPUs asked of a 2-CPU instance
    try:
        with pytest.raises(RobotRLError, match=r"3 rollout workers did not start within 5 s; each takes"):
            RolloutPool.start(trainer)
    finally:
        trainer.close()
    deadline = time.monotonic() + 30
    while ray_instance.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray_instance.available_resources().get("CPU", 0) == 2  # the ones that started were ended


def _train_killing(trainer: Trainer, update: int, slots: list[int]) -> tuple[dict, list[int]]:
    """Train, SIGKILLing the actors of `slots` as soon as `update`'s rollout is in flight."""
    killed: list[int] = []

    def kill() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pool = trainer.rollout_pool
            if pool is not None and pool.in_flight == update:
                for slot in slots:  # the actor's process, as the OOM killer or a crash would
                    os.kill(pool.pids[slot], signal.SIGKILL)
                    killed.append(pool.pids[slot])
                return
            time.sleep(0.001)

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    result = trainer.train()
    killer.join(timeout=5)
    assert killed, f"the test never saw update {update} in flight"
    return result, killed


def _progress(run: Path) -> tuple[list[int], dict[str, str]]:
    """(the step of every row, the last row) of progress.csv."""
    rows = (run / "progress.csv").read_text().splitlines()
    last = dict(zip(rows[0].split(","), rows[-1].split(","), strict=True))
    return [int(r.split(",")[0]) for r in rows[1:]], last


KILL_CONFIG = {"rollout_workers": 2, "total_steps": 8192,  # 4 updates of 4 envs × 512 steps
               "ppo": {"num_steps": 512, "epochs": 1, "minibatch_size": 512}}


def test_a_worker_killed_mid_iteration_is_replaced_and_the_run_finishes(ray_instance, tmp_path: Path,
                                                                         capsys) -> None:
    trainer = Trainer(_config(**KILL_CONFIG), tmp_path / "run")
    result, killed = _train_killing(trainer, update=2, slots=[1])
    out = capsys.readouterr().out
    assert f"worker 1 (pid {killed[0]}) died during update 2" in out, out
    assert "(1024 samples) are not in this update; restarted as pid" in out, out
    assert "update 2 uses 2 of 4 envs' columns (1024 samples)" in out, out
    steps, last = _progress(tmp_path / "run")
    assert int(last["worker_restarts"]) == 1 and int(last["lost_samples"]) == 1024
    assert steps[:3] == [2048, 3072, 5120]  # update 2 counted only the surviving worker's samples
    assert steps[-1] >= 8192 and len(steps) == 5  # one more update makes up the loss
    assert result["step"] == steps[-1] and np.isfinite(result["mean_return"])
    assert (tmp_path / "run" / "eval.json").is_file()


def test_when_every_worker_dies_the_iteration_is_collected_again(ray_instance, tmp_path: Path,
                                                                 capsys) -> None:
    trainer = Trainer(_config(**KILL_CONFIG), tmp_path / "run")
    result, killed = _train_killing(trainer, update=2, slots=[0, 1])
    out = capsys.readouterr().out
    for slot, pid in enumerate(killed):
        assert f"worker {slot} (pid {pid}) died during update 2" in out, out
    assert "every worker died during update 2; collecting it again" in out, out
    steps, last = _progress(tmp_path / "run")
    assert int(last["worker_restarts"]) == 2 and int(last["lost_samples"]) == 2048
    assert steps == [2048, 4096, 6144, 8192]  # update 2 is whole: the new workers collected it
    assert result["step"] == 8192


def test_a_sweep_reserves_its_trials_rollout_workers(ray_instance, tmp_path: Path) -> None:
    """Tune refuses actors a trial did not reserve: each trial's placement group holds 1 + N CPUs, and a
    trial needing more CPUs than the local instance has is one error before anything is written."""
    from robot_rl.distributed.sweep import check_local_cpus, trial_resources

    assert trial_resources({"trial": {"rollout_workers": 2}}).required_resources == {"CPU": 3.0}
    assert trial_resources({"trial": {"rollout_workers": 0}}).required_resources == {"CPU": 1.0}
    check_local_cpus(ray_instance, 2)
    with pytest.raises(ConfigError) as err:
        check_local_cpus(ray_instance, 3)
    assert "a trial takes 3 CPUs" in str(err.value) and "has 2; give --num-cpus 3" in str(err.value)
    launch = tmp_path / "ip.yaml"
    launch.write_text(yaml.safe_dump({**BASE, "rollout_workers": 1, "total_steps": 1024}))
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "robot_rl.cli", "sweep", str(launch), "--grid",
               "ppo.learning_rate=[1.0e-3]", "--seeds", "1", "--out", str(out), "--num-cpus", "2", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["finished"] == 1
    trial_log = next((out / "runs").glob("*/trial.log")).read_text()
    assert "rollout workers: 1 Ray actors" in trial_log, trial_log


@pytest.mark.learning
def test_two_workers_learn_inverted_pendulum_like_the_local_trainer(ray_instance, tmp_path: Path) -> None:
    results = {}
    for workers in (0, 2):
        config = load_train_config(ROOT / "launch" / "invertedpendulum_ppo.yaml",
                                   [*QUIET, "total_steps=16384", f"rollout_workers={workers}"])
        trainer = Trainer(config, tmp_path / f"run{workers}")
        before = trainer.evaluate(5)["mean_return"]
        after = trainer.train()["mean_return"]
        results[workers] = (before, after)
    (local_before, local_after), (dist_before, dist_after) = results[0], results[2]
    assert local_after >= 3 * local_before and dist_after >= 3 * dist_before, results
    assert dist_after >= 0.5 * local_after, results


def test_sigterm_stops_a_distributed_run_with_a_checkpoint_and_no_ray_process_left(tmp_path: Path) -> None:
    """Ray's core worker installs its own SIGTERM handler (log and die); the trainer's must win: a final
    checkpoint, exit 128 + SIGTERM, no Ray process left. (`--resume` then is the ordinary resume with new
    workers: test_train_signals covers it.)"""
    pytest.importorskip("ray")
    run, total = tmp_path / "run", 8192
    sets = ["log.progress_bar=false", "log.tensorboard=false", "log.plot=false", "eval.episodes=1",
            f"total_steps={total}", "log.checkpoint_every_steps=0", "num_envs=2", "ppo.num_steps=128",
            "ppo.epochs=1", "rollout_workers=2"]
    args = [a for s in sets for a in ("--set", s)]
    cli = [sys.executable, "-m", "robot_rl.cli", "train"]
    trainer = subprocess.Popen([*cli, str(ROOT / "launch" / "invertedpendulum_ppo.yaml"), "--out", str(run),
                                *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    processes: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        progress = run / "progress.csv"
        while (not progress.is_file() or len(progress.read_text().splitlines()) < 3) \
                and trainer.poll() is None and time.monotonic() < deadline:
            processes |= descendants(trainer.pid)
            time.sleep(0.05)
        assert trainer.poll() is None, trainer.communicate()
        processes |= descendants(trainer.pid)
        assert len(processes) >= 4, processes  # Ray's own processes and the 2 actors
        trainer.send_signal(signal.SIGTERM)
        out, err = trainer.communicate(timeout=120)
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
    assert trainer.returncode == 128 + signal.SIGTERM, (out, err)
    assert "stopped by SIGTERM" in err and "SIGTERM received" not in err, err
    saved = list_checkpoints(run)
    assert len(saved) == 1 and 0 < saved[0][0] < total, saved
    deadline = time.monotonic() + 30
    while [p for p in processes if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in processes if alive(p)], f"processes left behind: {processes}"
