"""The `pybullet` backend: the same robot in a second simulator, for the sim-to-sim check.

The task's engine world (one world of `robot_rl.sim.engine`, as the MuJoCo backend uses it) is kept
for everything but the physics: its reset (with its reset noise, so both simulators start from the
same state), its reward and termination rules, and the state fields (`qpos`, `qvel`, ...) the policy
observes. Its physics is replaced by PyBullet's, through the engine's `physics` hook: the world's model
is loaded in PyBullet with MuJoCo's compiled parameters carried across
(`robot_rl.sim.pybullet_twin.PyBulletTwin`), stepped with the same timestep and frame skip, and after
every control period PyBullet's state is written back into the world's `mjData` in MuJoCo's layout
(then `mj_forward`, so positions of bodies, sites and contact forces follow). The same policy thus runs
unchanged, and `robot-rl sim2sim` can compare the two returns.

Only the tasks on the engine (the Gymnasium MuJoCo tasks, whose models load in PyBullet) are
supported; see `robot_rl.sim.pybullet_twin` for what is carried across and what is not.
"""

from __future__ import annotations

from typing import Any

from robot_rl.hardware.mujoco_robot import MujocoRobot, make_simulated
from robot_rl.hardware.robot import HardwareError, RobotState
from robot_rl.spec import TaskSpec


class PyBulletRobot(MujocoRobot):
    """`task`'s robot simulated by PyBullet (`twin`), observed and rewarded through its MuJoCo env."""

    backend = "pybullet"

    def __init__(self, task: str, seed: int = 0, realtime: bool = True) -> None:
        super().__init__(task, seed=seed, realtime=realtime)
        self.twin: Any = None

    def _attach_dm_control(self) -> None:
        raise HardwareError(f"{self.task}: the pybullet backend runs the MuJoCo engine's tasks only "
                            f"(the Gymnasium MuJoCo tasks)")

    def _world_physics(self) -> Any:
        return self._physics_step

    def _attach_world(self, world: Any) -> None:
        from robot_rl.sim.engine.task import mjcf_path
        from robot_rl.sim.pybullet_twin import PyBulletTwin

        self.twin = PyBulletTwin(world.model, mjcf_path(self._engine.task))

    def _physics_step(self, world: Any, ctrl: Any, n_frames: int) -> None:
        """One control period in PyBullet, written back into the world's mjData."""
        import mujoco

        model, data = world.model, world.data
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
