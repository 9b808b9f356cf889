"""DQN learns (marked `learning`; speed is bench/dqn_cartpole.py's): CartPole-v1 to a greedy return of
200 within 30k steps; the book grid's
optimal policy (as value iteration finds it); and the image pipeline (Nature CNN on stacked Atari
frames) runs end to end where ale-py is installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robot_rl.dqn_trainer import DQNTrainer
from robot_rl.launch import load_train_config

LAUNCH = Path(__file__).resolve().parents[1] / "launch"
QUIET = ["log.progress_bar=false", "log.tensorboard=false", "log.plot=false"]


@pytest.mark.learning
def test_cartpole_reaches_200_within_30k_steps(tmp_path):
    config = load_train_config(LAUNCH / "cartpole_dqn.yaml", [
        "total_steps=30000", "eval.every_steps=0", "eval.episodes=10", "log.checkpoint_every_steps=0",
        "dqn.save_replay=false", *QUIET])
    trainer = DQNTrainer(config, tmp_path / "run")
    evaluations: list[tuple[int, float]] = []

    def every_2k(t: DQNTrainer) -> bool:  # greedy evaluation, 10 episodes, after every 2k steps
        if t.step >= 2000 * (len(evaluations) + 1):
            evaluations.append((t.step, t.evaluate(10)["mean_return"]))
        return bool(evaluations) and evaluations[-1][1] >= 200

    trainer.train(callback=every_2k)
    assert evaluations[-1][1] >= 200, evaluations
    assert trainer.step <= 30_000, trainer.step


@pytest.mark.learning
def test_grid_book_greedy_policy_is_value_iterations_optimal_policy(tmp_path):
    from robot_rl.sim.gridworld import grid_mdp
    from robot_rl.tabular import value_iteration

    config = load_train_config(LAUNCH / "grid_book_dqn.yaml", ["eval.every_steps=0", "eval.episodes=20",
                                                                 *QUIET])
    trainer = DQNTrainer(config, tmp_path / "run")
    trainer.train()
    mdp = grid_mdp("book")  # noise 0.2, γ 0.9, as the task
    optimal = value_iteration(mdp)
    q_star = (mdp.probs * (mdp.rewards + mdp.gamma * optimal.values[mdp.next_states])).sum(-1)[:, :4]
    learned = trainer.acting.q(np.eye(mdp.num_states, dtype=np.float32))
    top2 = np.sort(q_star, axis=1)[:, -2:]
    clear = [s for s in range(mdp.num_states)  # cells that move, whose best action leads by > 0.02
             if mdp.valid[s, :4].any() and top2[s, 1] - top2[s, 0] > 0.02]
    assert len(clear) == 7  # the other two moving cells are near-ties (gaps 0.011 and 0.010)
    assert [int(np.argmax(learned[s])) for s in clear] == [int(optimal.policy[s]) for s in clear]


def test_atari_nature_cnn_smoke(tmp_path):
    pytest.importorskip("ale_py", reason="optional: pip install ale-py (its wheel ships the ROMs)")
    config = load_train_config(LAUNCH / "atari_pong_dqn.yaml", [
        "total_steps=300", "eval.episodes=1", "log.checkpoint_every_steps=0", "dqn.buffer_size=300",
        "dqn.learning_starts=200", "dqn.batch_size=8", "dqn.target_update_interval=50",
        "dqn.log_every_steps=100", *QUIET])
    trainer = DQNTrainer(config, tmp_path / "run")
    assert trainer.replay.obs.dtype == np.uint8 and trainer.replay.obs.shape[1] == 4 * 84 * 84
    result = trainer.train()
    assert trainer.agent.updates_done == 26  # one per 4-step phase from step 200 to 300
    assert np.isfinite(trainer.metrics["loss"])
    assert result["step"] == 300 and -21 <= result["mean_return"] <= 21  # a Pong score
    stored = trainer.replay.get(np.arange(len(trainer.replay)))
    assert stored.obs.max() > stored.obs.min()  # real frames, not blanks
    frames, later = stored.obs[10].reshape(4, 84, 84), stored.obs[11].reshape(4, 84, 84)
    np.testing.assert_array_equal(frames[1:], later[:-1])  # a stack of the last 4 frames: shifted by one
