"""GAE and Monte-Carlo returns against a hand-worked example; the rollout buffer's bookkeeping."""

import numpy as np
import pytest
import torch

from robot_rl.rollout import RolloutBuffer, compute_gae, discounted_returns

GAMMA, LAM = 0.9, 0.8
X = 99.0  # a value that must never be read: bootstrap slots of steps that were not truncated

# 5 steps (rows) × 2 envs (columns).
# env 0: truncated at t=1 (time limit; V(real final obs) = 2.0), otherwise running; V(last obs) = 0.8.
# env 1: terminated at t=2; a new episode starts at t=3; V(last obs) = 0.5.
REWARDS = torch.tensor([[1.0, 0.0], [2.0, 1.0], [0.0, 1.0], [1.0, 2.0], [3.0, 1.0]])
VALUES = torch.tensor([[0.5, 0.3], [1.0, 0.7], [0.2, 1.5], [0.4, 0.1], [0.6, 0.9]])
TERMINATED = torch.tensor([[0, 0], [0, 0], [0, 1], [0, 0], [0, 0]], dtype=torch.bool)
TRUNCATED = torch.tensor([[0, 0], [1, 0], [0, 0], [0, 0], [0, 0]], dtype=torch.bool)
BOOTSTRAP = torch.tensor([[X, X], [2.0, X], [X, X], [X, X], [X, X]])
LAST = torch.tensor([0.8, 0.5])

# One-step TD errors δ_t = r_t + γ·next − V(s_t), worked by hand:
DELTAS = torch.tensor([
    [1 + 0.9 * 1.0 - 0.5, 0 + 0.9 * 0.7 - 0.3],  # t=0: next = V(s_1) for both
    [2 + 0.9 * 2.0 - 1.0, 1 + 0.9 * 1.5 - 0.7],  # t=1: env 0 truncated → bootstrap 2.0
    [0 + 0.9 * 0.4 - 0.2, 1 + 0.0 - 1.5],  # t=2: env 1 terminated → no bootstrap
    [1 + 0.9 * 0.6 - 0.4, 2 + 0.9 * 0.9 - 0.1],  # t=3
    [3 + 0.9 * 0.8 - 0.6, 1 + 0.9 * 0.5 - 0.9],  # t=4: next = last_values
])  # = [[1.4, 0.33], [2.8, 1.65], [0.16, -0.5], [1.14, 2.71], [3.12, 0.55]]

# A_t = δ_t + γλ·A_{t+1} inside an episode (γλ = 0.72), A_t = δ_t at an episode's last step:
#   env 0: A4 = 3.12; A3 = 1.14 + 0.72·3.12 = 3.3864; A2 = 0.16 + 0.72·3.3864 = 2.598208;
#          A1 = 2.8 (truncated: nothing flows in from t=2); A0 = 1.4 + 0.72·2.8 = 3.416
#   env 1: A4 = 0.55; A3 = 2.71 + 0.72·0.55 = 3.106; A2 = −0.5 (terminated);
#          A1 = 1.65 + 0.72·(−0.5) = 1.29; A0 = 0.33 + 0.72·1.29 = 1.2588
ADVANTAGES = torch.tensor([[3.416, 1.2588], [2.8, 1.29], [2.598208, -0.5], [3.3864, 3.106], [3.12, 0.55]])

# Monte-Carlo returns G_t = r_t + γ·G_{t+1}, same boundary rules:
#   env 0: G4 = 3 + 0.9·0.8 = 3.72; G3 = 1 + 0.9·3.72 = 4.348; G2 = 0.9·4.348 = 3.9132;
#          G1 = 2 + 0.9·2.0 = 3.8 (truncated: bootstrap); G0 = 1 + 0.9·3.8 = 4.42
#   env 1: G4 = 1 + 0.9·0.5 = 1.45; G3 = 2 + 0.9·1.45 = 3.305; G2 = 1 (terminated);
#          G1 = 1 + 0.9·1 = 1.9; G0 = 0.9·1.9 = 1.71
MC_RETURNS = torch.tensor([[4.42, 1.71], [3.8, 1.9], [3.9132, 1.0], [4.348, 3.305], [3.72, 1.45]])


def test_gae_hand_worked_example_with_a_truncation_and_a_termination() -> None:
    torch.testing.assert_close(DELTAS, torch.tensor([[1.4, 0.33], [2.8, 1.65], [0.16, -0.5], [1.14, 2.71],
                                                     [3.12, 0.55]]))
    advantages, returns = compute_gae(REWARDS, VALUES, TERMINATED, TRUNCATED, BOOTSTRAP, LAST, GAMMA, LAM)
    torch.testing.assert_close(advantages, ADVANTAGES)
    torch.testing.assert_close(returns, ADVANTAGES + VALUES)


def test_gae_lambda_one_is_monte_carlo_minus_values_and_lambda_zero_is_td_error() -> None:
    mc = discounted_returns(REWARDS, TERMINATED, TRUNCATED, BOOTSTRAP, LAST, GAMMA)
    torch.testing.assert_close(mc, MC_RETURNS)
    adv_one, ret_one = compute_gae(REWARDS, VALUES, TERMINATED, TRUNCATED, BOOTSTRAP, LAST, GAMMA, 1.0)
    torch.testing.assert_close(adv_one, MC_RETURNS - VALUES)
    torch.testing.assert_close(ret_one, MC_RETURNS)
    adv_zero, _ = compute_gae(REWARDS, VALUES, TERMINATED, TRUNCATED, BOOTSTRAP, LAST, GAMMA, 0.0)
    torch.testing.assert_close(adv_zero, DELTAS)


def test_float_flags_and_last_step_boundaries() -> None:
    # Flags given as 0/1 floats work the same as bools.
    adv, _ = compute_gae(REWARDS, VALUES, TERMINATED.float(), TRUNCATED.float(), BOOTSTRAP, LAST, GAMMA, LAM)
    torch.testing.assert_close(adv, ADVANTAGES)
    # A truncation on the rollout's last step bootstraps from the final obs, not from last_values;
    # a step both terminated and truncated does not bootstrap at all.
    r, v = torch.tensor([[1.0, 1.0, 1.0]]), torch.tensor([[0.5, 0.5, 0.5]])
    term = torch.tensor([[False, False, True]])
    trunc = torch.tensor([[True, False, True]])
    boot, last = torch.tensor([[4.0, X, X]]), torch.tensor([-7.0, 2.0, -7.0])
    adv, _ = compute_gae(r, v, term, trunc, boot, last, GAMMA, LAM)
    torch.testing.assert_close(adv, torch.tensor([[1 + 0.9 * 4.0 - 0.5, 1 + 0.9 * 2.0 - 0.5, 1 - 0.5]]))
    g = discounted_returns(r, term, trunc, boot, last, GAMMA)
    torch.testing.assert_close(g, torch.tensor([[1 + 0.9 * 4.0, 1 + 0.9 * 2.0, 1.0]]))


def test_gae_does_not_backpropagate_into_values() -> None:
    values = VALUES.clone().requires_grad_(True)
    advantages, returns = compute_gae(REWARDS, values, TERMINATED, TRUNCATED, BOOTSTRAP, LAST, GAMMA, LAM)
    assert not advantages.requires_grad and not returns.requires_grad


def _filled_buffer() -> RolloutBuffer:
    buf = RolloutBuffer(num_steps=5, num_envs=2, obs_dim=3, act_dim=2)
    for t in range(5):
        ids = np.array([2 * t, 2 * t + 1], dtype=np.float64)  # one id per (step, env) sample
        buf.add(obs=np.stack([ids, ids, ids], axis=1), actions=torch.stack([torch.tensor(ids)] * 2, 1),
                log_probs=-ids, rewards=REWARDS[t].numpy(), values=VALUES[t],
                terminated=TERMINATED[t].numpy(), truncated=TRUNCATED[t],
                bootstrap_values=BOOTSTRAP[t] if TRUNCATED[t].any() else None)
    return buf


def test_buffer_stores_steps_and_computes_the_same_gae() -> None:
    buf = _filled_buffer()
    assert buf.full and buf.obs.shape == (5, 2, 3) and buf.obs.dtype == torch.float32
    with pytest.raises(IndexError):
        buf.add(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros(2), np.zeros(2), np.zeros(2),
                np.zeros(2, bool), np.zeros(2, bool))
    # a step without truncation stores zeros in its bootstrap slot
    assert torch.all(buf.bootstrap_values[0] == 0.0) and buf.bootstrap_values[1, 0] == 2.0
    buf.compute_returns(LAST.numpy(), GAMMA, LAM)
    torch.testing.assert_close(buf.advantages, ADVANTAGES)
    torch.testing.assert_close(buf.returns, ADVANTAGES + VALUES)
    buf.reset()
    assert buf.step == 0 and not buf.full


@pytest.mark.parametrize("batch_size", [2, 3, 10, 64])
def test_minibatches_cover_every_sample_once_with_rows_kept_together(batch_size: int) -> None:
    buf = _filled_buffer()
    buf.compute_returns(LAST, GAMMA, LAM)
    batches = list(buf.minibatches(batch_size, torch.Generator().manual_seed(0)))
    assert len(batches) == max(1, 10 // batch_size)
    sizes = [len(b.obs) for b in batches]
    assert max(sizes) - min(sizes) <= 1
    ids = torch.cat([b.obs[:, 0] for b in batches])
    assert sorted(ids.tolist()) == list(range(10))
    flat_adv, flat_values = ADVANTAGES.reshape(-1), VALUES.reshape(-1)
    for b in batches:
        idx = b.obs[:, 0].long()
        torch.testing.assert_close(b.actions, b.obs[:, :2])
        torch.testing.assert_close(b.log_probs, -b.obs[:, 0])
        torch.testing.assert_close(b.advantages, flat_adv[idx])
        torch.testing.assert_close(b.values, flat_values[idx])
        torch.testing.assert_close(b.returns, flat_adv[idx] + flat_values[idx])
    again = list(buf.minibatches(batch_size, torch.Generator().manual_seed(0)))
    assert all(torch.equal(a.obs, b.obs) for a, b in zip(batches, again, strict=True))
