"""The batched MuJoCo engine: N worlds, each with its own MjModel copy, MjData and seeded generator,
stepped on a thread pool, with observations, rewards and episode ends computed over all worlds at once.

- `task.py`: `EngineTask`, the declarative definition of a task (MJCF, spec terms, outcome, reset).
- `gymnasium_tasks.py`: the Gymnasium v5 MuJoCo tasks as definitions, on Gymnasium's own XML files.
- `observation.py`: the spec's observation terms over `(N, ...)` state arrays.
- `batched.py`: `BatchedEngine`, the worlds and their stepping.
- `vector_env.py`: `BatchedVectorEnv`, the engine as a `gymnasium.vector.VectorEnv` (sim/vector.py's
  contract).

Nothing is imported here: `from robot_rl.sim.engine.batched import BatchedEngine`.
"""
