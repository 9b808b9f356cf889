"""The hyperparameter schemas of every algorithm, one frozen dataclass each, whose defaults reproduce
our benchmarks (each algorithm's file says which).

They live apart from the agents because they import neither torch nor numpy: a launch file is checked
completely (every key, type and value) on a computer without the `train` extra, so a typo is found on
the robot before the missing torch is. Each agent module re-exports its config
(`from robot_rl.agents.ppo import PPOConfig` keeps working).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from robot_rl.config import check


@dataclass(frozen=True)
class PPOConfig:
    num_steps: int = 2048
    """Rollout length per environment between updates."""
    epochs: int = 10
    minibatch_size: int = 64
    learning_rate: float = 3e-4
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over training."""
    gamma: float = 0.99
    gae_lambda: float = 0.95
    objective: Literal["clip", "kl_penalty"] = "clip"
    clip_range: float = 0.2
    """ε of the clipped ratio."""
    kl_beta: float = 1.0
    """Initial β of the KL-penalty objective."""
    kl_target: float = 0.01
    """d_targ of the KL-penalty objective's β adaptation."""
    clip_value_loss: bool = True
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    """κ, the entropy bonus."""
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    """Stop the epochs early once the approximate KL exceeds this; None = never."""
    normalize_advantages: bool = True

    def __post_init__(self) -> None:
        check(self.num_steps >= 1, "num_steps", "must be >= 1")
        check(self.epochs >= 1, "epochs", "must be >= 1")
        check(self.minibatch_size >= 1, "minibatch_size", "must be >= 1")
        check(self.learning_rate > 0, "learning_rate", "must be > 0")
        check(0 < self.gamma <= 1, "gamma", "must be in (0, 1]")
        check(0 <= self.gae_lambda <= 1, "gae_lambda", "must be in [0, 1]")
        check(self.clip_range > 0, "clip_range", "must be > 0")
        check(self.kl_beta > 0 and self.kl_target > 0, "kl_beta", "kl_beta and kl_target must be > 0")
        check(self.max_grad_norm > 0, "max_grad_norm", "must be > 0")
        check(self.target_kl is None or self.target_kl > 0, "target_kl", "must be > 0 or null")


@dataclass(frozen=True)
class TRPOConfig:
    num_steps: int = 1024
    """Rollout length per environment between updates."""
    gamma: float = 0.99
    gae_lambda: float = 0.95
    max_kl: float = 0.01
    """δ, the trust region: the bound on the mean KL(π_old ‖ π_new) (sb3's target_kl)."""
    cg_max_steps: int = 25
    """Conjugate-gradient iterations for s ≈ F⁻¹ g."""
    cg_damping: float = 0.1
    """Added to the Fisher matrix's diagonal (F + damping·I): keeps CG well posed."""
    line_search_shrinking_factor: float = 0.8
    """f: the line search tries θ_old + f^i β s."""
    line_search_max_iter: int = 10
    normalize_advantages: bool = True
    critic_learning_rate: float = 1e-3
    n_critic_updates: int = 20
    """Epochs of Adam minibatch regression of V(s) on the GAE returns per rollout."""
    critic_minibatch_size: int = 128

    def __post_init__(self) -> None:
        check(self.num_steps >= 1, "num_steps", "must be >= 1")
        check(0 < self.gamma <= 1, "gamma", "must be in (0, 1]")
        check(0 <= self.gae_lambda <= 1, "gae_lambda", "must be in [0, 1]")
        check(self.max_kl > 0, "max_kl", "must be > 0")
        check(self.cg_max_steps >= 1, "cg_max_steps", "must be >= 1")
        check(self.cg_damping >= 0, "cg_damping", "must be >= 0")
        check(0 < self.line_search_shrinking_factor < 1, "line_search_shrinking_factor", "must be in (0, 1)")
        check(self.line_search_max_iter >= 1, "line_search_max_iter", "must be >= 1")
        check(self.critic_learning_rate > 0, "critic_learning_rate", "must be > 0")
        check(self.n_critic_updates >= 1, "n_critic_updates", "must be >= 1")
        check(self.critic_minibatch_size >= 1, "critic_minibatch_size", "must be >= 1")


@dataclass(frozen=True)
class ReinforceConfig:
    num_steps: int = 2000
    """Rollout length per environment between updates (a few episode lengths: see the tail rule)."""
    gamma: float = 0.99
    learning_rate: float = 1e-4
    """α of the per-step SGD update θ ← θ + α A_t ∇log π(a_t|s_t). Every step moves the policy, so
    the steps late in a rollout are scored under a policy that has already moved: α much above 1e-4
    lets the log-std collapse and the updates blow up (3e-4 diverged on InvertedPendulum)."""
    normalize_advantages: bool = True
    """Standardise A_t over the rollout before the per-step pass. A fixed α then works whatever the
    reward scale; it subtracts a constant baseline (the batch mean), so it is the usual practical
    variance reduction, not part of the 1992 algorithm (false gives the textbook update)."""
    max_grad_norm: float | None = None
    """Clip each per-step gradient to this norm; None = the textbook update."""
    baseline: bool = True
    """Subtract a learned state-value baseline b(s_t) (the critic)."""
    discount_weighting: bool = False
    """Multiply step t's update by γ^t, t counted from the episode's start (see the module docstring)."""
    critic_learning_rate: float = 1e-3
    critic_epochs: int = 10
    """Passes of Adam minibatch regression of b(s_t) on G_t per rollout."""
    critic_minibatch_size: int = 64

    def __post_init__(self) -> None:
        check(self.num_steps >= 1, "num_steps", "must be >= 1")
        check(0 < self.gamma <= 1, "gamma", "must be in (0, 1]")
        check(self.learning_rate > 0, "learning_rate", "must be > 0")
        check(self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm", "must be > 0 or null")
        check(self.critic_learning_rate > 0, "critic_learning_rate", "must be > 0")
        check(self.critic_epochs >= 1, "critic_epochs", "must be >= 1")
        check(self.critic_minibatch_size >= 1, "critic_minibatch_size", "must be >= 1")


# ---------------------------------------------------------------------------------- the algorithm


@dataclass(frozen=True)
class VPGConfig:
    num_steps: int = 1000
    """Rollout length per environment between updates (one gradient step each)."""
    gamma: float = 0.99
    learning_rate: float = 5e-3
    """Adam step size of the policy."""
    baseline: bool = True
    """Subtract a learned state-value baseline b(s_t) (the critic)."""
    reward_to_go: bool = True
    """Weight ∇log π(a_t|s_t) by G_t (true) or by the whole trajectory's return R(τ) (false)."""
    normalize_advantages: bool = True
    """Standardise the weights Ψ_t − b(s_t) over the batch."""
    critic_learning_rate: float = 5e-3
    critic_epochs: int = 5
    """Passes of the baseline regression per batch."""
    critic_minibatch_size: int | None = None
    """Minibatch size of the baseline regression; None = the whole batch (one step per pass)."""

    def __post_init__(self) -> None:
        check(self.num_steps >= 1, "num_steps", "must be >= 1")
        check(0 < self.gamma <= 1, "gamma", "must be in (0, 1]")
        check(self.learning_rate > 0, "learning_rate", "must be > 0")
        check(self.critic_learning_rate > 0, "critic_learning_rate", "must be > 0")
        check(self.critic_epochs >= 1, "critic_epochs", "must be >= 1")
        check(self.critic_minibatch_size is None or self.critic_minibatch_size >= 1,
              "critic_minibatch_size", "must be >= 1 or null")


@dataclass(frozen=True)
class DQNConfig:
    learning_rate: float = 2.3e-3
    buffer_size: int = 100_000
    """Replay capacity in transitions (the oldest are overwritten)."""
    batch_size: int = 64
    learning_starts: int = 1000
    """Environment steps of uniformly random actions before the first update."""
    gamma: float = 0.99
    train_freq: int = 256
    """Vector-env steps collected between two training phases (× num_envs transitions)."""
    gradient_steps: int = 128
    """Gradient steps per training phase; -1: one per transition collected in the phase."""
    target_update_interval: int = 10
    """Environment steps between target-network updates."""
    tau: float = 1.0
    """Target update θ⁻ ← τθ + (1 − τ)θ⁻: 1 copies (a hard update), < 1 is Polyak averaging."""
    double_dqn: bool = False
    """Double DQN target: the online network picks a', the target network values it."""
    loss: Literal["mse", "huber"] = "mse"
    huber_delta: float = 1.0
    """Where the Huber loss turns from quadratic to linear (TD error units)."""
    max_grad_norm: float | None = 10.0
    """Clip the gradient's global norm to this; null: no clipping."""
    epsilon_start: float = 1.0
    epsilon_end: float = 0.04
    epsilon_schedule: Literal["linear", "exponential"] = "linear"
    """ε from start to end over `exploration_fraction` of total_steps: linearly, or geometrically
    (ε_t = ε_start·(ε_end/ε_start)^(t/T), the same factor per step); then ε_end."""
    exploration_fraction: float = 0.16
    network: Literal["mlp", "nature_cnn"] = "mlp"
    """mlp: `policy.hidden`/`policy.activation` on vector observations; nature_cnn: Mnih et al.'s
    convolutional network on stacked 84×84 frames (pixels 0..255, stored as uint8)."""
    prioritized: bool = False
    """Proportional prioritized replay (sum tree) instead of uniform sampling."""
    priority_alpha: float = 0.6
    priority_beta_start: float = 0.4
    """Importance-weight exponent β at step 0, annealed linearly to 1 at total_steps."""
    priority_eps: float = 1e-6
    log_every_steps: int = 1000
    """Environment steps between two progress rows."""
    save_replay: bool = True
    """Keep the replay buffer in checkpoints, so a resumed run continues exactly."""

    def __post_init__(self) -> None:
        check(self.learning_rate > 0, "learning_rate", "must be > 0")
        check(self.buffer_size >= 1, "buffer_size", "must be >= 1")
        check(self.batch_size >= 1, "batch_size", "must be >= 1")
        check(self.buffer_size >= self.batch_size, "buffer_size",
              f"{self.buffer_size} is smaller than batch_size {self.batch_size}; the replay buffer must "
              f"hold at least one batch")
        check(self.learning_starts >= 0, "learning_starts", "must be >= 0")
        check(0 < self.gamma <= 1, "gamma", "must be in (0, 1]")
        check(self.train_freq >= 1, "train_freq", "must be >= 1")
        check(self.gradient_steps >= 1 or self.gradient_steps == -1, "gradient_steps", "must be >= 1 or -1")
        check(self.target_update_interval >= 1, "target_update_interval", "must be >= 1")
        check(0 < self.tau <= 1, "tau", "must be in (0, 1]")
        check(self.huber_delta > 0, "huber_delta", "must be > 0")
        check(self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm", "must be > 0 or null")
        for key in ("epsilon_start", "epsilon_end"):
            value = getattr(self, key)
            check(0.0 <= value <= 1.0, key, f"{value} is outside [0, 1]; ε is a probability")
        check(self.epsilon_schedule != "exponential" or self.epsilon_end > 0, "epsilon_end",
              "must be > 0 for the exponential schedule (it decays by a constant factor)")
        check(0 < self.exploration_fraction <= 1, "exploration_fraction", "must be in (0, 1]")
        check(0 <= self.priority_alpha <= 1, "priority_alpha", "must be in [0, 1]")
        check(0 <= self.priority_beta_start <= 1, "priority_beta_start", "must be in [0, 1]")
        check(self.priority_eps > 0, "priority_eps", "must be > 0")
        check(self.log_every_steps >= 1, "log_every_steps", "must be >= 1")


# --------------------------------------------------------------------------------------------------
# Schedules
