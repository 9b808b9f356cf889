"""Domain randomization as a registry of terms: per-world, per-episode perturbations of a MuJoCo task,
so that a policy trained in simulation keeps working on a robot (or another simulator) that differs
from the model.

- `RandomizationConfig` is the launch file's `randomize:` section: one field per term with its range,
  all off by default; a bad range (min > max, a negative scale, non-finite) is a ConfigError naming it,
  an unknown term one from the launch schema.
- Each term is one small class in `terms.py` (`TERMS`, by key): body_mass_scale, geom_friction_scale,
  joint_damping_scale, actuator_gain_scale, gravity_tilt, actuation_delay, initial_state_noise
  (per episode) and observation_noise, action_noise (per step). They are written over MuJoCo's model
  arrays, so every MuJoCo task takes every term with no code of its own.
- `push` (push.py) acts mid-episode: every [low, high] s a velocity added to a free base. The Randomizer
  holds it (`pushes`); the batched engine applies it between control periods, from a push generator per
  world (so it changes no other draw). Engine worlds only (a Gymnasium or dm_control env refuses it).
- `hold` (hold.py) acts mid-episode too: for [low, high] control periods every [low, high] s, a world's
  controls are the deploy's safe command (position servos at the measured joint positions, others zero)
  (the first hold of an episode optionally from its own range, `first`: where a deploy is held)
  whatever the policy asks. The Randomizer holds it (`holds`); the engine applies it to the period's
  controls, from a hold generator per world. Engine worlds only.
- `Randomizer(config, nominal, physics_dt, physics_steps)` applies them to one world: `reset_world`
  after the task's reset (draws from the world's own seeded generator, writes the model from the
  nominal values, never compounding, and returns the draws: `info["randomization"]`),
  `perturb_actions` / `perturb_observations` each step. A term a task cannot take is a ConfigError
  raised when the Randomizer is built, before any world runs.
- `apply_randomization(env, config, task_id)` puts a Randomizer on a Gymnasium-path task env
  (`make_env`, and so `sync`/`async` vectorization); the batched engine builds its own per task.

Evaluation runs the nominal model, unless `eval.randomize` asks for these perturbations there too.
"""

from .attach import apply_randomization, check_randomization
from .config import RandomizationConfig
from .randomizer import Randomizer
from .terms import TERMS

__all__ = ["TERMS", "RandomizationConfig", "Randomizer", "apply_randomization", "check_randomization"]
