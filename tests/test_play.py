"""`robot-rl play` and evaluation videos: real rendering (EGL, Mesa's software rasteriser), real H.264
files read back through ffmpeg. Without the system packages the renderer tests cannot run: CI installs
them (.ci/run), and a machine without them is told so in one line (tested here by switching rendering
off with MUJOCO_GL=disable, MuJoCo's own switch)."""

from __future__ import annotations

import ctypes.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robot_rl.cli import main
from robot_rl.overlay import draw_text
from robot_rl.video import read_video_frames, video_info

ROOT = Path(__file__).resolve().parents[1]


def _play(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["play", *args]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Exit code 2 and one line on stderr; that line."""
    assert main(["play", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_twenty_frame_video_of_a_zoo_bundle_is_a_valid_h264_mp4(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "hopper.mp4"
    summary = _play(capsys, "zoo:Hopper-v5_ppo", "--video", str(out), "--max-steps", "19",
                    "--width", "320", "--height", "240")
    assert summary["frames"] == 20 and summary["lengths"] == [19]  # the reset's frame and one per step
    assert out.read_bytes()[4:8] == b"ftyp"  # an MP4 container
    info = video_info(out)
    assert info["codec"].startswith("h264")
    assert (info["width"], info["height"], info["frames"]) == (320, 240, 20)
    assert info["fps"] == pytest.approx(125.0)  # one frame per control period (8 ms): real time
    frames = read_video_frames(out)
    assert frames.shape == (20, 240, 320, 3)
    assert all(frame.var() > 0 for frame in frames)  # not blank
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 1.0  # the hopper moved
    assert not list(tmp_path.glob("*.part.mp4"))


def test_play_several_episodes_into_one_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "two.mp4"
    summary = _play(capsys, "zoo:InvertedPendulum-v5_ppo", "--video", str(out), "--episodes", "2",
                    "--max-steps", "10")
    assert summary["lengths"] == [10, 10] and summary["frames"] == 22
    assert video_info(out)["frames"] == 22
    assert (video_info(out)["width"], video_info(out)["height"]) == (480, 480)


def test_play_under_the_training_randomization_of_a_bundle(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    nominal = _play(capsys, "zoo:Hopper-v5_ppo", "--video", str(tmp_path / "a.mp4"), "--max-steps", "60")
    delayed = _play(capsys, "zoo:Hopper-v5_ppo", "--video", str(tmp_path / "b.mp4"), "--max-steps", "60",
                    "--randomize")
    assert delayed["returns"] != nominal["returns"]  # the manifest's 0-4 ms actuation delay acted
    on_engine = _play(capsys, "zoo:Hopper-v5_ppo", "--video", str(tmp_path / "e.mp4"), "--max-steps", "60",
                      "--randomize", "--simulator", "engine")
    np.testing.assert_allclose(on_engine["returns"], delayed["returns"], rtol=1e-6)  # the same draws
    assert "trained without domain randomization" in _refused(
        capsys, "zoo:InvertedPendulum-v5_ppo", "--video", str(tmp_path / "c.mp4"), "--randomize")


def test_play_refuses_bad_options_naming_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "x.mp4")
    assert "'nope' is not a camera of this model; valid: track" in _refused(
        capsys, "zoo:Hopper-v5_ppo", "--video", out, "--camera", "nope", "--max-steps", "2")
    assert "width: must be an even number" in _refused(capsys, "zoo:Hopper-v5_ppo", "--video", out,
                                                      "--width", "321")
    assert "must end in .mp4" in _refused(capsys, "zoo:Hopper-v5_ppo", "--video", str(tmp_path / "x.avi"))
    assert "--episodes must be >= 1" in _refused(capsys, "zoo:Hopper-v5_ppo", "--episodes", "0")
    assert not list(tmp_path.iterdir())


def test_a_named_camera_gives_another_view(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    default, named = tmp_path / "default.mp4", tmp_path / "track.mp4"
    _play(capsys, "zoo:Hopper-v5_ppo", "--video", str(default), "--max-steps", "1", "--no-overlay")
    _play(capsys, "zoo:Hopper-v5_ppo", "--video", str(named), "--max-steps", "1", "--no-overlay",
          "--camera", "track")
    a, b = read_video_frames(default)[0].astype(int), read_video_frames(named)[0].astype(int)
    assert np.abs(a - b).mean() > 5.0


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robot_rl.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})


def test_without_a_renderer_play_says_in_one_line_what_to_install(tmp_path: Path) -> None:
    out = tmp_path / "x.mp4"
    result = _cli("play", "zoo:Hopper-v5_ppo", "--video", str(out), MUJOCO_GL="disable")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri" in lines[0]
    assert not out.exists()


@pytest.mark.skipif(ctypes.util.find_library("OSMesa") is not None, reason="libOSMesa is installed here")
def test_a_missing_renderer_library_is_named_before_mujoco_fails_to_import(tmp_path: Path) -> None:
    # MUJOCO_GL=osmesa without libosmesa6: MuJoCo's own import would die with an AttributeError deep in
    # PyOpenGL; play checks the library first.
    result = _cli("play", "zoo:Hopper-v5_ppo", "--video", str(tmp_path / "x.mp4"), MUJOCO_GL="osmesa")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "apt-get install libosmesa6" in result.stderr


def test_without_a_display_play_asks_for_a_video_file() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-m", "robot_rl.cli", "play", "zoo:InvertedPendulum-v5_ppo"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2
    assert "no display" in result.stderr and "--video out.mp4" in result.stderr


def test_overlay_draws_only_in_its_corner() -> None:
    frame = np.full((240, 320, 3), 90, dtype=np.uint8)
    drawn = draw_text(frame, ["Hopper-v5", "episode 0  step 12", "return 31.5"])
    changed = np.argwhere((drawn != frame).any(axis=2))
    assert len(changed) > 200  # there is text
    assert changed[:, 0].max() < 80 and changed[:, 1].max() < 200  # top-left only
    assert (frame == 90).all()  # the input is not modified


def _frames_of(task: str, steps: int = 5) -> np.ndarray:
    from robot_rl.sim import get_spec, make_env
    from robot_rl.sim.rendering import FrameRenderer

    spec = get_spec(task)
    env = make_env(task, seed=0, render_mode="rgb_array")
    env.reset(seed=0)
    renderer = FrameRenderer(env, native_size=True)
    action = np.zeros(1, dtype=np.int64) if spec.action.kind == "discrete" else np.zeros(spec.act_dim)
    try:
        for _ in range(steps):
            env.step(action)
        return renderer.render()
    finally:
        renderer.close()
        env.close()


def test_dm_control_tasks_render_through_their_own_camera() -> None:
    frame = _frames_of("dmc:cartpole-swingup")
    assert frame.shape == (480, 480, 3) and frame.var() > 0


def test_classic_control_tasks_show_their_own_frames() -> None:
    frame = _frames_of("CartPole-v1")
    assert frame.shape == (400, 600, 3) and frame.var() > 0


def test_atari_tasks_show_their_own_frames() -> None:
    pytest.importorskip("ale_py")
    frame = _frames_of("atari:pong")
    assert frame.shape == (210, 160, 3) and frame.var() > 0


def test_eval_video_during_training_films_each_evaluations_first_episode(tmp_path: Path) -> None:
    from robot_rl.launch import load_train_config
    from robot_rl.trainer import Trainer

    config = load_train_config(ROOT / "launch" / "invertedpendulum_ppo.yaml",
                               ["total_steps=2048", "eval.every_steps=1024",
                                "eval.episodes=2", "eval.video=true", "log.progress_bar=false",
                                "log.tensorboard=false", "log.plot=false"])
    result = Trainer(config, tmp_path).train()
    videos = sorted(p.name for p in (tmp_path / "videos").iterdir())
    assert videos == ["eval_step000001024.mp4", "eval_step000002048.mp4"]
    final = video_info(tmp_path / "videos" / "eval_step000002048.mp4")
    assert final["frames"] == result["lengths"][0] + 1  # the final evaluation's first episode, whole


def test_training_without_a_renderer_warns_once_and_trains_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from robot_rl import recording
    from robot_rl.launch import load_train_config
    from robot_rl.trainer import Trainer

    monkeypatch.setenv("MUJOCO_GL", "disable")
    monkeypatch.setattr(recording, "_WARNED", set())
    config = load_train_config(ROOT / "launch" / "invertedpendulum_ppo.yaml",
                               ["total_steps=2048", "eval.every_steps=1024",
                                "eval.episodes=1", "eval.video=true", "log.progress_bar=false",
                                "log.tensorboard=false", "log.plot=false"])
    Trainer(config, tmp_path).train()
    assert (tmp_path / "eval.json").is_file()
    assert not list((tmp_path / "videos").glob("*.mp4"))
    warnings = [line for line in capsys.readouterr().err.splitlines() if "no evaluation videos" in line]
    assert len(warnings) == 1 and "MUJOCO_GL=disable" in warnings[0]  # once, not at every evaluation


def test_eval_video_of_a_task_without_frames_warns_and_trains_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from robot_rl import recording
    from robot_rl.dqn_trainer import DQNTrainer
    from robot_rl.launch import load_train_config

    monkeypatch.setattr(recording, "_WARNED", set())
    config = load_train_config(ROOT / "launch" / "grid_book_dqn.yaml",
                               ["total_steps=600", "eval.every_steps=300", "eval.episodes=2",
                                "eval.video=true", "log.progress_bar=false", "log.tensorboard=false",
                                "log.plot=false"])
    DQNTrainer(config, tmp_path).train()
    assert (tmp_path / "eval.json").is_file() and not (tmp_path / "videos").exists()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "no evaluation videos" in line]
    assert len(warnings) == 1 and "has no frames to film" in warnings[0]


def test_overlay_shows_what_the_task_reports_of_success() -> None:
    from robot_rl.overlay import episode_lines

    assert episode_lines("Hopper-v5", 1, 30, 12.345) == ["Hopper-v5", "episode 1  step 30", "return 12.3"]
    assert episode_lines("cube", 0, 5, 1.0, {"success": True})[-1] == "success yes"
    assert episode_lines("cube", 0, 5, 1.0, {"is_success": 0})[-1] == "success no"
    assert episode_lines("cube", 0, 5, 1.0, {"consecutive_successes": np.int64(3)})[-1] == "successes 3"


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs a display: xvfb-run (Debian xvfb)")
def test_without_video_play_shows_a_window_where_a_display_exists() -> None:
    result = subprocess.run(["xvfb-run", "-a", sys.executable, "-m", "robot_rl.cli", "play",
                             "zoo:InvertedPendulum-v5_ppo", "--max-steps", "10"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["frames"] == 11 and "video" not in summary


def test_every_engine_task_is_filmed_from_gymnasiums_own_view() -> None:
    """An engine world (one world of the batched engine, as `play --simulator engine` steps it) reset
    with the seed of Gymnasium's env is in the same state and is drawn from the same camera."""
    from robot_rl.evaluation import make_eval_env
    from robot_rl.sim.registry import engine_task_names
    from robot_rl.sim.rendering import FrameRenderer, RenderSettings

    settings = RenderSettings(width=160, height=120)
    for task in engine_task_names():
        frames = []
        for simulator in ("gymnasium", "engine"):
            env = make_eval_env(task, simulator, seed=4)
            try:
                env.reset(seed=4)
                for _ in range(3):
                    env.step(np.full(env.unwrapped.task_spec.act_dim, 0.5))
                with FrameRenderer(env, settings) as renderer:
                    frames.append(renderer.render().astype(int))
            finally:
                env.close()
        assert frames[1].var() > 0, task
        assert np.abs(frames[0] - frames[1]).mean() < 0.5, task


def test_a_run_trained_on_the_batched_engine_plays_and_films_there(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """launch/hopper_ppo.yaml as it is (vectorization: batched): its evaluation videos, and `play` on the
    engine it trained on, the same episode as on Gymnasium's env (the conformance suite's 1e-6 a step)."""
    from robot_rl.launch import read_run_config

    run = tmp_path / "run"
    quiet = ["total_steps=2048", "eval.episodes=1", "eval.video=true", "log.progress_bar=false",
             "log.tensorboard=false", "log.plot=false"]
    assert main(["train", str(ROOT / "launch" / "hopper_ppo.yaml"), "--out", str(run),
                 *[arg for item in quiet for arg in ("--set", item)]]) == 0
    capsys.readouterr()
    assert read_run_config(run).vectorization == "batched"
    evaluation = json.loads((run / "eval.json").read_text())
    video = video_info(run / "videos" / "eval_step000002048.mp4")
    assert video["codec"].startswith("h264") and video["frames"] == evaluation["lengths"][0] + 1

    small = ["--width", "160", "--height", "128"]
    engine = _play(capsys, str(run), "--video", str(tmp_path / "engine.mp4"), *small)
    gym = _play(capsys, str(run), "--video", str(tmp_path / "gym.mp4"), *small, "--simulator", "gymnasium")
    assert engine["simulator"] == "engine" and gym["simulator"] == "gymnasium"
    assert engine["lengths"] == gym["lengths"] == evaluation["lengths"]  # the evaluation's episode
    np.testing.assert_allclose(engine["returns"], evaluation["returns"], rtol=1e-6)
    np.testing.assert_allclose(gym["returns"], evaluation["returns"], rtol=1e-6)
    frames = read_video_frames(tmp_path / "engine.mp4")
    assert frames.shape == (engine["frames"], 128, 160, 3) and engine["frames"] == engine["lengths"][0] + 1
    assert all(f.var() > 0 for f in frames)
    reference = read_video_frames(tmp_path / "gym.mp4")
    assert np.abs(frames.astype(int) - reference.astype(int)).mean() < 1.0  # the same picture


def test_the_simulator_is_checked_and_named() -> None:
    from robot_rl.errors import ConfigError
    from robot_rl.evaluation import resolve_simulator
    from robot_rl.policy_source import load_policy_source

    assert load_policy_source("zoo:Hopper-v5_ppo").simulator == "gymnasium"  # trained with sync
    with pytest.raises(ConfigError, match=r"'CartPole-v1' is not one of them \(InvertedPendulum-v5, "):
        resolve_simulator("CartPole-v1", "engine")
    with pytest.raises(ConfigError, match="'mujoco' is not valid; choose one of: gymnasium, engine"):
        resolve_simulator("Hopper-v5", "mujoco")
