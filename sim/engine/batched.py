"""`BatchedEngine`: N worlds of one task, stepped together on a thread pool.

Each world has its own `MjModel` copy (so it can carry its own randomized physical parameters), its
own `MjData` and its own generator, seeded `seed + i` exactly as the Gymnasium-stepped sub-env i would
be. One `step(actions)` maps the `(N, act_dim)` actions through the spec onto controls, advances every
world by the task's physics steps, then computes observations, rewards, terminations and truncations
with numpy over all worlds. Only the worlds whose episode ended are visited again, to reset them.

The physics of a training engine runs in MuJoCo's own batch (`batch_stepper.BatchStepper`: one C call
steps every world on `threads` native threads, and the fields the task reads come back as `(N, ...)`
arrays, with no Python per world). One robot's plant (`autoreset=False`) and a twin simulator's
physics step each world's MjData from a pool of Python threads instead (`mj_step` releases the GIL):
each thread steps a contiguous chunk of worlds and copies the observed fields into the shared rows.

A world is stepped exactly as Gymnasium's `MujocoEnv.do_simulation` steps its data (`mj_step` over the
period, `mj_rnePostConstraint` where a field needs it) and reset exactly as its `reset` resets it
(`mj_resetData`, the task's draw, `mj_forward`): the conformance tests hold world i equal to sub-env i.

Physics failures: a step after which MuJoCo raised a bad-qpos/qvel/qacc/ctrl warning (it reset the
state itself), or whose observation is not finite, ends that world's episode (terminated, reward 0,
non-finite observation entries zeroed, `info["final_info"]["physics_failure"][i]` True, as a sync
sub-env's info reaches the vector env); the other worlds go on.

Pushes (`randomize.push`, sim/randomization/push.py): before a control period's physics, each world
whose push is due gets the drawn velocity added to its base's, in its state (the batch's qvel row, or
its MjData on the per-world path: a `physics` twin must take its state from there to feel it); the
step's `info["push"]` `(N, 3)` (mask `_push`) holds what was added, `final_info["pushes"]` the count.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium
import mujoco
import numpy as np
from gymnasium.utils import seeding

from robot_rl.errors import ConfigError
from robot_rl.spec import TaskSpec, action_to_robot

from ..randomization.hold import HoldSchedule
from ..randomization.push import PushSchedule
from .batch_stepper import BatchStepper, batch_available
from .islands import skip_island_discovery
from .observation import BatchObservationBuilder
from .task import (
    FIELD_SIZES,
    MODEL_FIELDS,
    POST_CONSTRAINT_FIELDS,
    EngineTask,
    StepBatch,
    build_spec,
    load_model,
    privileged_spec,
)

StepResult = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]
"""obs `(N, obs_dim)`, reward `(N,)`, terminated `(N,)`, truncated `(N,)`, info."""

# Warnings after which MuJoCo has reset the state itself: the step is a physics failure.
FAILURE_WARNINGS = np.array([int(getattr(mujoco.mjtWarning, f"mjWARN_{w}")) for w in
                             ("BADQPOS", "BADQVEL", "BADQACC", "BADCTRL")])


def default_threads() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class World:
    """One world: the declared interface the hardware backends use (`model`, `data`), and its generator."""

    __slots__ = ("_data", "_index", "_stepper", "delay_steps", "held_ctrl", "model", "randomization", "rng")

    def __init__(self, model: mujoco.MjModel, held_ctrl: np.ndarray | None = None) -> None:
        self.model = model
        self._data = mujoco.MjData(model)
        self._stepper: BatchStepper | None = None
        self._index = 0
        self.rng: np.random.Generator | None = None
        self.held_ctrl = np.zeros(model.nu) if held_ctrl is None else held_ctrl
        """The previous control period's command, applied during the actuation delay."""
        self.delay_steps = 0
        """Physics steps at the start of each control period during which `held_ctrl` still acts."""
        self.randomization: dict[str, Any] = {}
        """The values the randomizer drew for this episode (empty without randomization)."""

    @property
    def data(self) -> mujoco.MjData:
        """The world's `MjData`, current (stepped in MuJoCo's batch, it is brought up to date on reading,
        and what a caller writes into it is the world's state at the next step)."""
        stepper = self._stepper
        if stepper is not None:
            stepper.pull(self._index, self._data)
            stepper.handed_out(self._index)
        return self._data

    @property
    def raw_data(self) -> mujoco.MjData:
        """The `MjData` as it is, without bringing it up to date (the engine's own use)."""
        return self._data


def _mj_period(w: World, ctrl: np.ndarray, nstep: int) -> None:
    """One control period of MuJoCo's physics; during the actuation delay the previous command acts."""
    m, d, delay = w.model, w.raw_data, w.delay_steps
    if delay:
        d.ctrl[:] = w.held_ctrl
        mujoco.mj_step(m, d, delay)
        w.held_ctrl[:] = ctrl
    if nstep > delay:
        d.ctrl[:] = ctrl
        mujoco.mj_step(m, d, nstep - delay)


class _InfoBatch:
    """Gymnasium's own batching of per-env info dicts (`VectorEnv._add_info`: an array per key plus its
    `_key` mask, nested dicts recursively), so engine infos have the shape sync's have."""

    _add_info = gymnasium.vector.VectorEnv._add_info

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs

    def add(self, infos: dict[str, Any], env_info: dict[str, Any], i: int) -> dict[str, Any]:
        return self._add_info(infos, env_info, i)  # type: ignore[misc]  # duck-typed: reads num_envs


def _check_count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{key}: must be a positive integer, got {value!r}")
    return int(value)


class BatchedEngine:
    """`num_envs` worlds of `task`; `reset` and `step` over all of them, numpy arrays in and out.

    `threads`: pool threads stepping the physics (default: the cores this process may use; at most
    `num_envs`). `randomize`: a `sim.randomization.RandomizationConfig`; where active, the
    `Randomizer` of that module (or `randomizer_cls`, same constructor and methods) draws each world's
    perturbations at its episode start and perturbs actions and observations. `autoreset=False` (one
    robot's plant, hardware/): an ended world keeps its final state until the next `reset`.
    `physics(world, ctrl, nstep)`: replaces MuJoCo's stepping of a world for one control period (a
    twin simulator that writes its state back into `world.data`, then `mj_forward`); reset, outcome
    and observation stay the engine's. `privileged`: names of the task's privileged terms
    (`EngineTask.privileged`) built every step into `info["privileged"]` `(N, privileged_dim)` (after
    an autoreset, the new episodes' rows; the ended ones' in `info["final_privileged"]`, an object array
    under the mask `_final_privileged`, as `final_obs`): the critic's extra input, never the policy's.
    """

    def __init__(self, task: EngineTask, num_envs: int, seed: int | None = None, threads: int | None = None,
                 max_episode_steps: int | None = None, randomize: Any = None,
                 randomizer_cls: Callable[..., Any] | None = None, autoreset: bool = True,
                 physics: Callable[[World, np.ndarray, int], None] | None = None,
                 privileged: tuple[str, ...] = ()) -> None:
        self.num_envs = n = _check_count(num_envs, "num_envs")
        threads = default_threads() if threads is None else _check_count(threads, "threads")
        self.threads = min(threads, n)
        self.max_episode_steps = task.max_episode_steps if max_episode_steps is None else \
            _check_count(max_episode_steps, "max_episode_steps")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ConfigError(f"seed: must be an integer, got {seed!r}")
        self.task = task
        self.nominal = load_model(task)
        skip_island_discovery(self.nominal)  # the same numbers, less work: sim/engine/islands.py
        self.spec: TaskSpec = build_spec(task, self.nominal)
        self.physics_dt = self.spec.physics_dt
        self.randomizer = self._randomizer(randomize, randomizer_cls)
        self.privileged_spec = (privileged_spec(task, self.nominal, self.spec, privileged)
                                if privileged else None)
        """The privileged terms' spec (its observation: those terms), or None."""
        # Everything above can fail on bad input; nothing has been started yet.

        self._held = np.zeros((n, self.nominal.nu))
        self.worlds = [World(copy.copy(self.nominal), self._held[i]) for i in range(n)]
        self._delays = np.zeros(n, dtype=np.int64)
        self.init_qpos = self.nominal.qpos0.copy()
        self.init_qvel = np.zeros(self.nominal.nv)
        goals = set(self.spec.goal_fields)
        fields = [f for f in self.spec.state_fields if f not in goals and f in FIELD_SIZES]
        fields += [f for f in task.outcome_fields if f not in fields]
        extra = {} if self.privileged_spec is None else self.privileged_spec.state_fields
        fields += [f for f in extra if f in FIELD_SIZES and f not in fields]
        self._fields = tuple(fields)
        probe = self.worlds[0].raw_data
        self._now = {f: np.zeros((n, *getattr(probe, f).shape)) for f in self._fields}
        self._flat = {f: a.reshape(n, -1) for f, a in self._now.items()}  # views, for the observation
        self._goals = {g: np.zeros((n, self.spec.state_fields[g])) for g in goals}
        self._warnings = np.zeros((n, len(probe.warning.number)), dtype=np.int64)  # MuJoCo's counters
        self._body_mass = np.tile(self.nominal.body_mass, (n, 1))
        self._post_constraint = bool(POST_CONSTRAINT_FIELDS & set(self._fields))
        # Per world: (destination row, mjData array) pairs, copied after every step and reset.
        self._copies = [[(self._now[f][i], getattr(w.raw_data, f)) for f in self._fields]
                        + [(self._warnings[i], w.raw_data.warning.number)] for i, w in enumerate(self.worlds)]
        self._builder = BatchObservationBuilder(self.spec, n)
        self._model_fields = {f: np.zeros((n, size)) for f, size in extra.items() if f in MODEL_FIELDS}
        """Model field -> `(N, size)`: each world's physical parameters a privileged term reads."""
        self._privileged = None if self.privileged_spec is None else \
            BatchObservationBuilder(self.privileged_spec, n)
        self._state = None if task.state is None else task.state(n, self.nominal)
        """The task's per-world state (EngineTask.state), or None."""
        self._steps = np.zeros(n, dtype=np.int64)
        self._ctrl = np.zeros((n, self.nominal.nu))
        self._seed = seed
        self._step_rng = np.random.default_rng(None if seed is None else [int(seed), 0x5EED])
        bounds = np.linspace(0, n, self.threads + 1).astype(int).tolist()
        self._chunks = list(itertools.pairwise(bounds))
        self._reset_needed = True
        self.autoreset = bool(autoreset)
        self._physics = physics
        self._push_schedule = PushSchedule(n, self.spec.control_period)
        self._hold_schedule = HoldSchedule(n, self.spec.control_period)
        """When each world is next held (used only while the randomizer has a hold term)."""
        """When each world is next pushed (used only while the randomizer has a push term)."""
        # MuJoCo's own batch steps the worlds of a training engine (no Python per world); one robot's plant
        # (autoreset off) and a twin's physics keep stepping each world's MjData directly.
        self._stepper: BatchStepper | None = None
        if physics is None and self.autoreset and batch_available():
            self._stepper = BatchStepper(self.nominal, [w.model for w in self.worlds], self.threads,
                                         self._fields, self._held, self._post_constraint)
            for i, w in enumerate(self.worlds):
                w._stepper, w._index = self._stepper, i
        self._pool = ThreadPoolExecutor(self.threads, "engine") \
            if self.threads > 1 and self._stepper is None else None

    # ------------------------------------------------------------------ setup
    def _randomizer(self, randomize: Any, cls: Callable[..., Any] | None) -> Any:
        if randomize is None or not getattr(randomize, "active", False):
            return None
        if cls is None:
            try:
                from ..randomization import Randomizer
            except ImportError:
                raise ConfigError("randomize: the batched engine draws its perturbations through "
                                  "sim.randomization.Randomizer, which this install does not have; use "
                                  "vectorization: sync, or no randomize: section") from None
            # the real one also checks what the task can take (a delay longer than a control period)
            return Randomizer(randomize, self.nominal, self.physics_dt,
                              physics_steps=self.task.frame_skip, task_id=self.task.name)
        return cls(randomize, self.nominal, self.physics_dt)

    # ------------------------------------------------------------------ episodes
    def _reset_world(self, i: int, seed: int | None) -> None:
        """Start a new episode in world i, as Gymnasium's `MujocoEnv.reset` starts one."""
        w = self.worlds[i]
        if seed is not None or w.rng is None:
            w.rng, _ = seeding.np_random(seed)
        m, d = w.model, w.raw_data
        mujoco.mj_resetData(m, d)
        qpos, qvel = self.task.reset(w.rng, self.init_qpos, self.init_qvel)
        d.qpos[:] = qpos
        d.qvel[:] = qvel
        w.randomization = {}
        w.delay_steps = 0
        if self.randomizer is not None:
            w.randomization = self.randomizer.reset_world(m, d, w.rng)
            w.delay_steps = min(int(w.randomization.get("actuation_delay_steps", 0)), self.task.frame_skip)
            if self.randomizer.pushes is not None:
                self._push_schedule.start_episode(i, self.randomizer.pushes, seed)
            if self.randomizer.holds is not None:
                self._hold_schedule.start_episode(i, self.randomizer.holds, seed)
        w.held_ctrl[:] = 0.0  # actuators start unpowered
        mujoco.mj_forward(m, d)
        for dst, src in self._copies[i]:
            dst[...] = src
        for g, get in self.task.goals.items():
            self._goals[g][i] = np.asarray(get(m, d)).reshape(-1)
        if self._state is not None:
            self._state.reset_world(i, m, d, w.rng, self._goals)
        self._body_mass[i] = m.body_mass
        for f, rows in self._model_fields.items():
            rows[i] = MODEL_FIELDS[f](m)
        self._steps[i] = 0
        self._delays[i] = w.delay_steps
        if self._stepper is not None:  # the batch steps on from this state (and this world's model)
            self._stepper.push(i, m, d)
            if self.randomizer is not None:
                self._stepper.model_changed()

    @property
    def task_state(self) -> Any:
        """The task's per-world state (`EngineTask.state`: hold counters, goals ...), or None."""
        return self._state

    def world_state(self, i: int) -> dict[str, np.ndarray]:
        """World i's state fields and goals, flat copies (field -> `(size,)`): what a robot measures."""
        state = {f: self._flat[f][i].copy() for f in self.spec.state_fields if f in self._flat}
        state.update({g: v[i].copy() for g, v in self._goals.items()})
        if self._state is not None:
            own = self._state.fields
            state.update({f: v[i].copy() for f, v in own.items() if f in self.spec.state_fields})
        return state

    def _fields_now(self) -> dict[str, np.ndarray]:
        """Every state field an observation term may read: mjData's, the goals, the task state's."""
        extra = {} if self._state is None else self._state.fields
        return {**self._flat, **self._goals, **extra}

    def _observe(self) -> np.ndarray:
        return self._builder.build(self._fields_now())

    @property
    def privileged_dim(self) -> int:
        """Width of `info["privileged"]` (0 without privileged terms)."""
        return 0 if self.privileged_spec is None else self.privileged_spec.obs_dim

    def _observe_privileged(self, rows: np.ndarray | None = None) -> np.ndarray | None:
        """The privileged terms `(N, privileged_dim)` (or of `rows`), without observation noise."""
        if self._privileged is None:
            return None
        return self._privileged.build({**self._fields_now(), **self._model_fields}, rows=rows)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every world (world i seeded seed+i; without a seed, the engine's seed on the first reset
        only). Returns obs `(N, obs_dim)` and info."""
        if seed is None:
            seed, self._seed = self._seed, None
        else:
            self._step_rng = np.random.default_rng([int(seed), 0x5EED])
        self._seed = None
        for i in range(self.num_envs):
            self._reset_world(i, None if seed is None else int(seed) + i)
        self._builder.reset(np.ones(self.num_envs, dtype=bool))
        obs = self._observe()
        if self.randomizer is not None:
            obs = self.randomizer.perturb_observations(obs, self._step_rng)
        self._reset_needed = False
        info = self._reset_info()
        if self._privileged is not None:
            self._privileged.reset(np.ones(self.num_envs, dtype=bool))
            info["privileged"] = self._observe_privileged()
        return obs, info

    def _reset_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {}
        if self.randomizer is not None:
            for i, w in enumerate(self.worlds):
                info = _InfoBatch(self.num_envs).add(info, {"randomization": w.randomization}, i)
        return info

    # ------------------------------------------------------------------ stepping
    def _advance(self, lo: int, hi: int) -> None:
        """Step worlds lo..hi-1 by one control period (runs on a pool thread; mj_step frees the GIL)."""
        nstep, ctrl, post = self.task.frame_skip, self._ctrl, self._post_constraint
        physics = self._physics or _mj_period
        for i in range(lo, hi):
            w = self.worlds[i]
            m, d = w.model, w.raw_data
            physics(w, ctrl[i], nstep)
            if post:
                mujoco.mj_rnePostConstraint(m, d)
            for dst, src in self._copies[i]:
                dst[...] = src

    def _run_batch(self, stepper: BatchStepper) -> None:
        """Every world's control period in MuJoCo's batch, then the observed fields into the rows."""
        stepper.step(self._ctrl, self._delays, self.task.frame_skip, self.worlds)
        for f, rows in stepper.bound.items():
            self._now[f][...] = rows

    def _run(self) -> None:
        if self._pool is None:
            self._advance(0, self.num_envs)
            return
        for future in [self._pool.submit(self._advance, lo, hi) for lo, hi in self._chunks]:
            future.result()

    def step(self, actions: Any) -> StepResult:
        """One control period of every world. `actions` `(N, act_dim)` in [-1, 1].

        Returns obs `(N, obs_dim)` (rows of ended episodes: the next episode's first observation),
        reward `(N,)` float64, terminated and truncated `(N,)` bool, and info (sim/vector.py's contract).
        """
        a = self._checked(actions, "actions")
        if self.randomizer is not None:
            a = self.randomizer.perturb_actions(a, self._step_rng)
        self._ctrl[...] = action_to_robot(self.spec, a) if self._state is None else self._state.controls(a)
        return self._step()

    def step_controls(self, ctrl: Any) -> StepResult:
        """`step` with the controls `(N, nu)` in robot units, applied as given (a robot backend's command,
        already clamped to the actuators' ctrlrange; no action noise)."""
        self._ctrl[...] = self._checked(ctrl, "controls")
        return self._step()

    def _checked(self, values: Any, what: str) -> np.ndarray:
        if self._reset_needed:
            raise RuntimeError("step() before reset(): call reset() first")
        a = np.asarray(values, dtype=np.float64)
        if a.shape != (self.num_envs, self.spec.act_dim):
            raise ValueError(f"{what} have shape {a.shape}; expected ({self.num_envs}, {self.spec.act_dim})")
        return a

    def _push_worlds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Add its push to the base velocity of each world due one before this control period (in its
        state: the batch's row or its MjData); the pushes `(N, 3)` (x, y, yaw) and which worlds were
        pushed `(N,)`, or None if none was due."""
        push = None if self.randomizer is None else self.randomizer.pushes
        if push is None:
            return None
        due = self._push_schedule.due(self._steps)
        if due.size == 0:
            return None
        kicks = np.zeros((self.num_envs, 3))
        for i in due.tolist():
            kicks[i] = self._push_schedule.fire(i, push)
            data = self.worlds[i].raw_data
            if self._stepper is not None:
                self._stepper.add_qvel(i, data, push.dofs, kicks[i])
            else:
                data.qvel[push.dofs] += kicks[i]
        pushed = np.zeros(self.num_envs, dtype=bool)
        pushed[due] = True
        return kicks, pushed

    def _hold_worlds(self) -> np.ndarray | None:
        """Replace the controls of each world held during this control period by its safe ones (position
        servos at their joints' measured positions, other actuators zero); the held worlds `(N,)`, or
        None without a hold term."""
        hold = None if self.randomizer is None else self.randomizer.holds
        if hold is None:
            return None
        held = self._hold_schedule.held(self._steps, hold)
        rows = self._now.get("qpos")
        for i in np.flatnonzero(held).tolist():
            qpos = rows[i] if rows is not None else self.worlds[i].data.qpos
            self._ctrl[i] = hold.safe(qpos)
        return held

    def _step(self) -> StepResult:
        pushed = self._push_worlds()
        held = self._hold_worlds()
        before = {f: a.copy() for f, a in self._now.items()}
        counters = self._warnings if self._stepper is None else self._stepper.warnings
        warnings_before = counters[:, FAILURE_WARNINGS]  # a copy (fancy indexing)
        if self._stepper is None:
            self._run()
        else:
            self._run_batch(self._stepper)
        batch = StepBatch(now=self._now, before=before, ctrl=self._ctrl, dt=self.spec.control_period,
                          body_mass=self._body_mass)
        if self._state is None:
            reward, terminated = self.task.outcome(batch)
        else:  # a task with per-world state (hold-and-advance goals, relative targets)
            reward, terminated = self._state.outcome(batch, self._goals)
        reward = np.asarray(reward, dtype=np.float64).copy()
        terminated = np.asarray(terminated, dtype=bool).copy()
        obs = self._observe()
        privileged = self._observe_privileged()
        warned = (counters[:, FAILURE_WARNINGS] > warnings_before).any(axis=1)
        failed = warned | ~np.isfinite(obs).all(axis=1)
        info: dict[str, Any] = {}
        if failed.any():
            terminated |= failed
            reward[failed] = 0.0  # computed across MuJoCo's own reset of the state: meaningless
            obs[failed] = np.nan_to_num(obs[failed], nan=0.0, posinf=0.0, neginf=0.0)
        if self.randomizer is not None:
            obs = self.randomizer.perturb_observations(obs, self._step_rng)
        self._steps += 1
        truncated = self._steps >= self.max_episode_steps
        done = terminated | truncated
        if privileged is not None:
            privileged = np.nan_to_num(privileged, nan=0.0, posinf=0.0, neginf=0.0)
        if done.any() and self.autoreset:
            info = self._autoreset(obs, done, failed, info, privileged)
        elif failed.any():
            info.update(physics_failure=failed.copy(), _physics_failure=failed.copy())
        if pushed is not None:
            info.update(push=pushed[0], _push=pushed[1])
        if held is not None:
            info.update(held=held, _held=np.ones(self.num_envs, dtype=bool))
        if privileged is not None:
            info["privileged"] = privileged
        return obs, reward, terminated, truncated, info

    def _autoreset(self, obs: np.ndarray, done: np.ndarray, failed: np.ndarray,
                   info: dict[str, Any], privileged: np.ndarray | None = None) -> dict[str, Any]:
        """SAME_STEP autoreset of the ended worlds: their rows of `obs` become the new episodes' first
        observations; the real final ones go to info["final_obs"]."""
        idx = np.flatnonzero(done)
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i in idx:
            final_obs[i] = obs[i].copy()
        batch, final_info = _InfoBatch(self.num_envs), dict[str, Any]()
        for i in idx:  # what a sync sub-env's last step reports, batched as sync batches it
            ended: dict[str, Any] = {"physics_failure": True} if failed[i] else {}
            if self.randomizer is not None:
                ended["randomization"] = self.worlds[i].randomization
                if self.randomizer.pushes is not None:
                    ended["pushes"] = int(self._push_schedule.count[i])
                if self.randomizer.holds is not None:
                    ended["held_periods"] = int(self._hold_schedule.count[i])
            if self._state is not None:  # e.g. the successes of a hold-and-advance task
                ended.update(self._state.episode_info(int(i)))
            final_info = batch.add(final_info, ended, int(i))
        for i in idx:
            self._reset_world(int(i), None)
            if self.randomizer is not None:  # the new episode's draws, as sync's reset info reaches it
                info = batch.add(info, {"randomization": self.worlds[i].randomization}, int(i))
        self._builder.reset(done)
        fresh = self._builder.build(self._fields_now(), rows=idx)
        if self.randomizer is not None:
            fresh = self.randomizer.perturb_observations(fresh, self._step_rng)
        obs[idx] = fresh
        info.update(final_obs=final_obs, _final_obs=done.copy(), final_info=final_info,
                    _final_info=done.copy())
        if privileged is not None and self._privileged is not None:  # the same for the critic's terms
            final_privileged = np.full(self.num_envs, None, dtype=object)
            for i in idx:
                final_privileged[i] = privileged[i].copy()
            self._privileged.reset(done)
            privileged[idx] = self._observe_privileged(rows=idx)
            info.update(final_privileged=final_privileged, _final_privileged=done.copy())
        return info

    # ------------------------------------------------------------------ the end
    def close(self) -> None:
        """Stop the pool threads, or MuJoCo's batch and its threads, leaving each world's `data` current
        (idempotent)."""
        stepper, self._stepper = self._stepper, None
        if stepper is not None:
            for i, w in enumerate(self.worlds):
                stepper.pull(i, w.raw_data)
                w._stepper = None
            stepper.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False)
