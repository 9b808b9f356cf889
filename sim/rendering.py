"""Headless frames of a task env: MuJoCo tasks through an offscreen OpenGL context of our own, the other
tasks (Atari, classic control) through their own `render()`.

The OpenGL backend is chosen here, when a `FrameRenderer` is made, never on import: `MUJOCO_GL`
(`egl`, the default, with Mesa's software rasteriser where there is no GPU; `osmesa`; `glfw` with a
display) or `disable`. A machine without one gets `RendererUnavailable`, one line naming the Debian
packages to install; training never needs a renderer.

Speed on two CPU cores (Mesa llvmpipe, 480×480, BENCHMARKS.md): shadows cost ~5×, reflections little,
4× multisampling ~2×. `RenderSettings()` turns all three off: a 1000-step Hopper video in ~20 s.
"""

from __future__ import annotations

import ctypes.util
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_rl.config import check
from robot_rl.errors import ConfigError, RobotRLError

SYSTEM_PACKAGES = {"egl": "libegl1 libegl-mesa0 libgl1-mesa-dri", "osmesa": "libosmesa6"}
_DISABLED = ("disable", "disabled", "off", "false", "0")


class RendererUnavailable(RobotRLError):
    """No OpenGL backend for MuJoCo on this machine (or rendering switched off with MUJOCO_GL)."""


@dataclass(frozen=True)
class RenderSettings:
    """What the offscreen renderer draws; the defaults are the fast ones (see the module docstring)."""

    width: int = 480
    height: int = 480
    shadows: bool = False
    reflections: bool = False
    multisamples: int = 0
    """Anti-aliasing samples per pixel (MuJoCo's `vis.quality.offsamples`, 4 in a model by default);
    0 = none: ~2x faster in software rendering, slightly jagged edges."""
    skybox: bool = True
    """Draw the model's sky; off, the background is black and a frame costs ~25% less CPU."""
    camera: str | None = None
    """A camera of the model by name; None = the task's own view (Gymnasium's default camera, tracking
    the body it names; camera 0 of a dm_control model)."""

    def __post_init__(self) -> None:
        for key in ("width", "height"):
            value = getattr(self, key)
            check(isinstance(value, int) and 2 <= value <= 4096 and value % 2 == 0, key,
                  f"must be an even number of pixels in [2, 4096] (H.264 needs even sizes), got {value!r}")
        check(self.multisamples in (0, 2, 4, 8, 16), "multisamples", "must be one of 0, 2, 4, 8, 16")


def gl_backend() -> str:
    """The backend `MUJOCO_GL` asks for: egl (also when unset), osmesa, glfw/glx, or `disable`."""
    value = os.environ.get("MUJOCO_GL", "").strip().lower()
    if value in _DISABLED:
        return "disable"
    if value in ("", "egl", "enable", "enabled", "on", "true", "1"):
        return "egl"
    if value in ("osmesa", "glfw", "glx"):
        return value
    raise ConfigError(f"MUJOCO_GL={value!r} is not valid; choose one of: egl, osmesa, glfw, disable")


def _missing(backend: str, why: str) -> RendererUnavailable:
    packages = SYSTEM_PACKAGES.get(backend, SYSTEM_PACKAGES["egl"])
    return RendererUnavailable(f"no OpenGL renderer for MuJoCo (MUJOCO_GL={backend}: {why}); install one "
                               f"with `apt-get install {packages}` (Debian/Ubuntu) and MUJOCO_GL=egl")


# The shared library each backend loads; without it MuJoCo's own import fails (not with a clear error).
_LIBRARIES = {"egl": "EGL", "osmesa": "OSMesa", "glfw": "glfw", "glx": "GL"}


def check_renderer() -> str:
    """The backend to use, checked before MuJoCo is imported: `RendererUnavailable` (one line saying
    what to install) if it is switched off or its library is missing. Cheap: imports nothing."""
    backend = gl_backend()
    if backend == "disable":
        raise _missing(backend, "rendering is switched off")
    library = _LIBRARIES[backend]
    if ctypes.util.find_library(library) is None and not (backend == "glfw" and _has_pyglfw()):
        raise _missing(backend, f"lib{library} not found")
    return backend


def frame_render_mode(task_id: str) -> str | None:
    """How to make the task's env so that `FrameRenderer` can film it: None for a MuJoCo task (drawn
    here), "rgb_array" for a task that draws its own frames; a ConfigError for one without frames."""
    from .registry import resolve

    family = resolve(task_id).__name__
    if family == "_grid":
        raise ConfigError(f"task {task_id!r} has no frames to film (a grid world prints text)")
    return "rgb_array" if family in ("_classic_control", "_atari") else None


def _has_pyglfw() -> bool:
    import importlib.util

    return importlib.util.find_spec("glfw") is not None  # the glfw wheel ships its own library


def gl_context(width: int, height: int) -> Any:
    """A current offscreen OpenGL context of the chosen backend; `RendererUnavailable` if there is none."""
    backend = check_renderer()
    try:
        if backend == "egl":
            from mujoco.egl import GLContext
        elif backend == "osmesa":
            from mujoco.osmesa import GLContext
        else:
            from mujoco.glfw import GLContext
        context = GLContext(width, height)
        context.make_current()
    except Exception as err:  # a missing library surfaces as ImportError, OSError or a GL/EGL error
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _missing(backend, text[:160]) from None
    return context


def mujoco_handles(env: Any) -> tuple[Any, Any] | None:
    """(MjModel, MjData) of a MuJoCo task env, or None for a task that is not MuJoCo.

    Gymnasium's MuJoCo tasks keep them on `simulator`, dm_control tasks on `dm_env.physics`, and an
    engine world (`sim.engine.world_env`) declares `model` and `data` itself.
    """
    base = env.unwrapped
    dm_env = getattr(base, "dm_env", None)
    if dm_env is not None:
        return dm_env.physics.model.ptr, dm_env.physics.data.ptr
    for holder in (getattr(base, "simulator", None), base):
        model, data = getattr(holder, "model", None), getattr(holder, "data", None)
        if model is not None and data is not None and type(model).__name__ == "MjModel":
            return model, data
    return None


def _default_camera(env: Any, model: Any, data: Any, camera: Any) -> None:
    """The task's own view: Gymnasium's `default_camera_config`, tracking the body it names, or else the
    robot's free-moving root body; a dm_control model's first camera; else a view of the whole model."""
    import mujoco

    base = env.unwrapped
    renderer = getattr(getattr(base, "simulator", None), "mujoco_renderer", None)
    config = getattr(renderer, "default_cam_config", None)
    if renderer is None and getattr(base, "dm_env", None) is None:  # an engine world: Gymnasium's view
        config = gymnasium_camera_config(getattr(getattr(base, "task_spec", None), "name", ""))
    if config is not None or getattr(base, "dm_env", None) is None or model.ncam == 0:
        camera.type = mujoco.mjtCamera.mjCAMERA_FREE  # Gymnasium's own start: then its config
        camera.lookat[:] = np.median(data.geom_xpos, axis=0)
        camera.distance = model.stat.extent
        for key, value in (config or {}).items():
            if isinstance(value, np.ndarray):
                getattr(camera, key)[:] = value
            else:
                setattr(camera, key, value)
        track = (config or {}).get("trackbodyid", _root_body(model))
        if track > 0:
            camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
            camera.trackbodyid = track
        return
    camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
    camera.fixedcamid = 0


def gymnasium_camera_config(task_id: str) -> dict[str, Any] | None:
    """The camera config Gymnasium's env of `task_id` films with when made with default arguments
    (its `default_camera_config` parameter's default), or None: the engine's ports of its MuJoCo tasks
    are filmed from Gymnasium's own view."""
    import importlib
    import inspect

    import gymnasium

    try:
        entry = gymnasium.spec(task_id).entry_point
    except gymnasium.error.Error:
        return None
    if not isinstance(entry, str):
        return None
    module, _, name = entry.partition(":")
    parameter = inspect.signature(getattr(importlib.import_module(module), name).__init__).parameters.get(
        "default_camera_config")
    default = None if parameter is None else parameter.default
    return dict(default) if isinstance(default, dict) else None


def _root_body(model: Any) -> int:
    """Body 1 if it is a free-moving root (a free joint, or a planar root of three or more joints: it
    walks out of a fixed view), else 0 (the world: a fixed view, e.g. of a cart-pole)."""
    import mujoco

    if model.nbody < 2 or model.body_parentid[1] != 0 or model.body_jntnum[1] == 0:
        return 0
    first = model.body_jntadr[1]
    free = model.jnt_type[first] == mujoco.mjtJoint.mjJNT_FREE
    return 1 if free or model.body_jntnum[1] >= 3 else 0


class FrameRenderer:
    """RGB frames `(height, width, 3)` uint8 of one env, rendered offscreen; `close()` frees the context.

    For a non-MuJoCo task the env must have been made with `render_mode="rgb_array"`; its frames are
    resized to the settings' size (nearest pixel), or with `native_size` kept at their own size (cut to
    even sizes for H.264).
    """

    def __init__(self, env: Any, settings: RenderSettings | None = None, native_size: bool = False) -> None:
        self.env = env
        self.settings = settings or RenderSettings()
        self.native_size = native_size
        self._handles = mujoco_handles(env)
        self._context: Any = None
        if self._handles is not None:
            self._setup_mujoco(*self._handles)
        elif getattr(env, "render_mode", None) != "rgb_array":
            raise ConfigError("this task has no MuJoCo model and was not made with render_mode='rgb_array'; "
                              "it has no frames to show (grid worlds print text: robot-rl tabular)")

    def _setup_mujoco(self, model: Any, data: Any) -> None:
        import mujoco

        s = self.settings
        self._context = gl_context(s.width, s.height)
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), s.width)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), s.height)
        model.vis.quality.offsamples = s.multisamples
        self._mjr = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._mjr)
        self._scene = mujoco.MjvScene(model, maxgeom=10_000)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = s.shadows
        self._scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = s.reflections
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = s.skybox
        self._option = mujoco.MjvOption()
        self._perturb = mujoco.MjvPerturb()
        self._camera = mujoco.MjvCamera()
        self._camera_placed = False
        if s.camera is not None:
            cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, s.camera)
            if cam < 0:
                names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
                valid = ", ".join(n for n in names if n) or "none (leave --camera out for the task's view)"
                raise ConfigError(f"camera: {s.camera!r} is not a camera of this model; valid: {valid}")
            self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
            self._camera.fixedcamid = cam
        self._viewport = mujoco.MjrRect(0, 0, s.width, s.height)
        self._rgb = np.empty((s.height, s.width, 3), dtype=np.uint8)

    def render(self) -> np.ndarray:
        """The current frame, a new `(height, width, 3)` uint8 array."""
        if self._handles is None:
            frame = np.asarray(self.env.render(), dtype=np.uint8)
            if self.native_size:
                return frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2]
            return _resize(frame, self.settings)
        import mujoco

        model, data = self._handles
        if self.settings.camera is None and not self._camera_placed:  # at the first frame, as Gymnasium
            _default_camera(self.env, model, data, self._camera)
            self._camera_placed = True
        self._context.make_current()
        mujoco.mjv_updateScene(model, data, self._option, self._perturb, self._camera,
                               mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        mujoco.mjr_render(self._viewport, self._scene, self._mjr)
        mujoco.mjr_readPixels(self._rgb, None, self._viewport, self._mjr)
        return np.flipud(self._rgb).copy()

    def close(self) -> None:
        if self._context is not None:
            self._mjr.free()
            self._context.free()
            self._context = None

    def __enter__(self) -> FrameRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _resize(frame: np.ndarray, settings: RenderSettings) -> np.ndarray:
    """Nearest-pixel resize of an `(h, w, 3)` frame to the settings' size."""
    h, w = frame.shape[:2]
    if (h, w) == (settings.height, settings.width):
        return frame
    rows = (np.arange(settings.height) * h // settings.height).clip(0, h - 1)
    cols = (np.arange(settings.width) * w // settings.width).clip(0, w - 1)
    return frame[rows][:, cols]
