"""The batched engine against the Gymnasium-stepped path, for every task the registry runs on the engine.

`make(task, N, seed=s, vectorization="batched")` must give world i the trajectory of
`vectorization="sync"`'s sub-env i (seeded s+i, stepping Gymnasium's own env): the same reset states
(qpos, qvel), observations, rewards, terminated/truncated flags, final observations and physics
failures, to 1e-6, over 2 000 steps of random actions that cross episode ends (terminations, time
limits, and a NaN action that takes the physics-failure path). The list of tasks comes from the registry.
"""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl import sim
from robot_rl.sim.registry import engine_task_names

STEPS = 2000
N = 3
TOL = 1e-6
ENGINE_TASKS = engine_task_names()


def test_the_registry_runs_the_gymnasium_v5_tasks_on_the_engine():
    assert set(ENGINE_TASKS) == {"InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Hopper-v5",
                                 "HalfCheetah-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5", "Reacher-v5",
                                 "Swimmer-v5", "Pusher-v5", "cube:rotate-z", "cube:reorient",
                                 "quadruped-walk"}
    assert set(ENGINE_TASKS) <= set(sim.task_names())


def _states_match(batched, sync, i: int) -> None:
    world = batched.worlds[i].data
    env = sync.envs[i].unwrapped
    gym = env.simulator.data if hasattr(env, "simulator") else env.data  # a cube task's env: one world
    np.testing.assert_allclose(world.qpos, gym.qpos, rtol=0, atol=TOL)
    np.testing.assert_allclose(world.qvel, gym.qvel, rtol=0, atol=TOL)


@pytest.mark.parametrize("task", ENGINE_TASKS)
def test_world_i_is_sync_sub_env_i(task):
    seed = 101
    batched = sim.make(task, N, seed=seed, vectorization="batched", threads=2)
    sync = sim.make(task, N, seed=seed, vectorization="sync")
    try:
        assert batched.task_spec == sync.task_spec
        obs_b, _ = batched.reset()
        obs_s, _ = sync.reset()
        np.testing.assert_allclose(obs_b, obs_s, rtol=0, atol=TOL)
        for i in range(N):
            _states_match(batched, sync, i)
        rng = np.random.default_rng(seed)
        ends = {"terminated": 0, "truncated": 0, "physics_failure": 0}
        nan_steps = {STEPS // 3, 2 * STEPS // 3}
        for t in range(STEPS):
            actions = rng.uniform(-1.0, 1.0, size=(N, batched.task_spec.act_dim)).astype(np.float32)
            if t in nan_steps:
                actions[t % N, 0] = np.nan  # the contract's physics-failure path, in one world
            obs_b, rew_b, term_b, trunc_b, info_b = batched.step(actions)
            obs_s, rew_s, term_s, trunc_s, info_s = sync.step(actions)
            np.testing.assert_allclose(obs_b, obs_s, rtol=0, atol=TOL, err_msg=f"step {t}")
            np.testing.assert_allclose(rew_b, rew_s, rtol=0, atol=TOL, err_msg=f"step {t}")
            np.testing.assert_array_equal(term_b, term_s, err_msg=f"step {t}")
            np.testing.assert_array_equal(trunc_b, trunc_s, err_msg=f"step {t}")
            failed_b = info_b.get("final_info", {}).get("physics_failure", np.zeros(N, bool))
            failed_s = info_s.get("final_info", {}).get("physics_failure", np.zeros(N, bool))
            np.testing.assert_array_equal(failed_b, failed_s, err_msg=f"step {t}")
            done = term_s | trunc_s
            np.testing.assert_array_equal(info_b.get("_final_obs", np.zeros(N, bool)), done)
            for i in np.flatnonzero(done):
                np.testing.assert_allclose(info_b["final_obs"][i], info_s["final_obs"][i], rtol=0, atol=TOL)
                _states_match(batched, sync, i)  # the new episode's reset state
            ends["terminated"] += int(term_s.sum())
            ends["truncated"] += int(trunc_s.sum())
            ends["physics_failure"] += int(failed_s.sum())
        for i in range(N):
            _states_match(batched, sync, i)
        assert ends["physics_failure"] == len(nan_steps)  # both NaN actions were caught, in both paths
        assert ends["terminated"] + ends["truncated"] > len(nan_steps)  # autoresets beyond those
    finally:
        batched.close()
        sync.close()


@pytest.mark.parametrize("task", ["Hopper-v5", "Reacher-v5"])
def test_reset_with_a_seed_reseeds_every_world_as_sync_does(task):
    batched = sim.make(task, N, seed=3, vectorization="batched", threads=1)
    sync = sim.make(task, N, seed=3, vectorization="sync")
    try:
        batched.reset()
        sync.reset()
        actions = np.zeros((N, batched.task_spec.act_dim), dtype=np.float32)
        for _ in range(5):
            batched.step(actions)
            sync.step(actions)
        obs_b, _ = batched.reset(seed=42)
        obs_s, _ = sync.reset(seed=42)
        np.testing.assert_allclose(obs_b, obs_s, rtol=0, atol=TOL)
        assert not np.allclose(obs_b[0], obs_b[1])  # worlds are seeded apart (42, 43, 44)
    finally:
        batched.close()
        sync.close()
