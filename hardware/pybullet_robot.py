"""The `pybullet` backend: the same robot in a second simulator, for the sim-to-sim check.

The task's Gymnasium MuJoCo environment is kept for everything but the physics: its reset (with its
reset noise, so both simulators start from the same state), its reward and termination rules, and the
state fields (`qpos`, `qvel`, ...) the policy observes. Its physics step is replaced by PyBullet's:
the model is loaded in PyBullet with MuJoCo's compiled parameters carried across
(`robot_rl.sim.pybullet_twin.PyBulletTwin`), stepped with the same timestep and frame skip, and after
every control period PyBullet's state is written back into the env's `mjData` in MuJoCo's layout (then
`mj_forward`, so positions of bodies, sites and contact forces follow). The same policy thus runs
unchanged, and `robot-rl sim2sim` can compare the two returns.

Only the Gymnasium MuJoCo tasks (whose models load in PyBullet) are supported; see
`robot_rl.sim.pybullet_twin` for what is carried across and what is not.
"""

from __future__ import annotations

from typing import Any

from robot_rl.hardware.mujoco_robot import MujocoRobot, make_simulated
from robot_rl.hardware.robot import HardwareError, RobotState
from robot_rl.spec import TaskSpec


class PyBulletRobot(MujocoRobot):
    """`task`'s robot simulated by PyBullet (`twin`), observed and rewarded through its MuJoCo env."""

    backend = "pybullet"
    engine_backed = False  # replaces Gymnasium's physics step: needs the Gymnasium env

    def __init__(self, task: str, seed: int = 0, realtime: bool = True) -> None:
        super().__init__(task, seed=seed, realtime=realtime)
        self.twin: Any = None

    def _attach(self, env: Any) -> None:
        super()._attach(env)
        if not self._direct or not hasattr(self._inner.simulator, "fullpath"):
            raise HardwareError(f"{self.task}: the pybullet backend runs the Gymnasium MuJoCo tasks only")
        from robot_rl.sim.pybullet_twin import PyBulletTwin

        sim = self._inner.simulator
        self.twin = PyBulletTwin(sim.model, sim.fullpath)
        # the env's physics step, replaced on this instance only: PyBullet steps, MuJoCo observes
        sim._step_mujoco_simulation = self._physics_step

    def _physics_step(self, ctrl: Any, n_frames: int) -> None:
        import mujoco

        sim = self._inner.simulator
        model, data = sim.model, sim.data
        self.twin.step(ctrl, n_frames)
        qpos, qvel = self.twin.get_state()
        data.qpos[:] = qpos
        data.qvel[:] = qvel
        data.ctrl[:] = ctrl
        data.time += n_frames * float(model.opt.timestep)
        mujoco.mj_forward(model, data)
        mujoco.mj_rnePostConstraint(model, data)

    def _activate(self) -> RobotState:
        state = super()._activate()  # the env's reset, noise included, in mjData
        self.twin.set_state(self._data.qpos, self._data.qvel)
        return state

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            if self.twin is not None:
                self.twin.close()
                self.twin = None


def make_robot(spec: TaskSpec, options: dict[str, Any] | None = None) -> PyBulletRobot:
    """The PyBullet robot for `spec`'s task; options as for the MuJoCo backend."""
    return make_simulated(PyBulletRobot, spec, options)
