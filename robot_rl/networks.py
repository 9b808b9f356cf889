"""Actor and critic MLPs shared by the policy-gradient agents, with orthogonal initialisation.

Orthogonal weights (gain √2 on hidden layers) and zero biases are the initialisation PPO's reported
results depend on (Engstrom et al. 2020, "Implementation Matters"; Andrychowicz et al. 2021). The
actor's output layer gets gain 0.01 so the initial mean action is ≈ 0 whatever the observation, and
the critic's gets 1.0.

A deployed robot runs these networks with numpy alone, so `export_layers` hands out the plain weight
arrays and the activation name: each layer computes `y = x @ W.T + b` (W is `(out_dim, in_dim)`, as
torch stores it), with the activation after every layer but the last.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robot_rl.distributions import DiagGaussian, SquashedDiagGaussian
from robot_rl.errors import ConfigError

#: Activation names accepted by `mlp` (and written into policy bundles).
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}

HIDDEN_GAIN = math.sqrt(2.0)


@dataclass(frozen=True)
class ExportedMLP:
    """An MLP as plain arrays: `layers[i] = (W (out, in), b (out,))`, float32; `activation` by name."""

    layers: list[tuple[np.ndarray, np.ndarray]]
    activation: str


def activation_module(name: str) -> nn.Module:
    """The torch module for an activation name; a ConfigError lists the valid names."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation: {name!r} is not valid; choose one of: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: str = "tanh",
        output_gain: float = 1.0, orthogonal: bool = True) -> nn.Sequential:
    """Linear → act → … → Linear, orthogonally initialised (√2 hidden, `output_gain` last), zero biases.

    Input `(batch, in_dim)`, output `(batch, out_dim)`; no activation after the last layer.
    `orthogonal=False` keeps torch's default initialisation (what the RL Zoo's tuned MuJoCo PPO uses).
    """
    activation_module(activation)  # validate before building anything
    sizes = [in_dim, *hidden, out_dim]
    modules: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        last = i == len(sizes) - 2
        layer = nn.Linear(n_in, n_out)
        if orthogonal:
            nn.init.orthogonal_(layer.weight, gain=output_gain if last else HIDDEN_GAIN)
            nn.init.zeros_(layer.bias)
        modules.append(layer)
        if not last:
            modules.append(activation_module(activation))
    return nn.Sequential(*modules)


def export_mlp(net: nn.Sequential, activation: str) -> ExportedMLP:
    """Copy the Linear layers of `net` (built by `mlp`) to numpy float32 arrays."""
    layers = [(m.weight.detach().cpu().numpy().astype(np.float32, copy=True),
               m.bias.detach().cpu().numpy().astype(np.float32, copy=True))
              for m in net if isinstance(m, nn.Linear)]
    return ExportedMLP(layers=layers, activation=activation)


def flatten_parameters(params: list[nn.Parameter]) -> nn.Parameter:
    """Re-home `params` and their gradients as views of one flat tensor each; return it (grad set).

    An optimiser over the one flat parameter does in a single kernel what it did per tensor: on the
    CPU, Adam's step and the gradient-norm clip over the ~13 small tensors of an actor and a critic
    cost ~150 µs and ~130 µs of per-tensor overhead per minibatch. Autograd accumulates into the
    existing gradient views in place, so gradients must be zeroed (`grad.zero_()`), never set to None;
    `load_state_dict` copies into the views and keeps them.
    """
    with torch.no_grad():
        flat = torch.cat([p.detach().reshape(-1) for p in params])
    grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat[offset:offset + n].view_as(p)
        p.grad = grad[offset:offset + n].view_as(p)
        offset += n
    flat_param = nn.Parameter(flat, requires_grad=False)  # updated by the optimiser only
    flat_param.grad = grad
    return flat_param


def flatten_optimizer_state(saved: dict[str, Any]) -> dict[str, Any]:
    """An optimiser state dict over several tensors → the same over their `flatten_parameters` tensor.

    Checkpoints written before the parameters were flattened hold per-tensor Adam moments; they are
    concatenated in parameter order (the order `flatten_parameters` lays the tensors out in), so such
    a run loads, exports and resumes. A state dict over one tensor comes back unchanged.
    """
    (group,) = saved["param_groups"]
    ids = group["params"]
    if len(ids) == 1:
        return saved
    per = [saved["state"][i] for i in ids if i in saved["state"]]
    state: dict[int, Any] = {}
    if per:
        if len(per) != len(ids):
            raise ValueError("optimizer state covers only some of the parameters; cannot flatten it")
        state[0] = {key: (torch.as_tensor(per[0][key]).clone() if key == "step"
                          else torch.cat([s[key].reshape(-1) for s in per])) for key in per[0]}
    return {"state": state, "param_groups": [{**group, "params": [0]}]}


class GaussianActor(nn.Module):
    """π(a|s) = N(mlp(s), diag(exp(log_std)²)), optionally tanh-squashed; log-std is state-independent.

    The state-independent log-std (a learned `(act_dim,)` parameter) is the PPO/TRPO standard for
    continuous control: exploration noise decays as the policy learns, independent of the state.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (64, 64),
                 activation: str = "tanh", log_std_init: float = 0.0, squash: bool = False,
                 ortho_init: bool = True, log_std_min: float | None = None) -> None:
        super().__init__()
        self.activation = activation
        self.squash = squash
        self.log_std_min = log_std_min
        """A floor on the log-std (None: none); below it the parameter gets no gradient."""
        self.mean_net = mlp(obs_dim, hidden, act_dim, activation, output_gain=0.01, orthogonal=ortho_init)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def forward(self, obs: Tensor) -> DiagGaussian | SquashedDiagGaussian:
        """The action distribution for observations `(batch, obs_dim)`."""
        mean = self.mean_net(obs)
        log_std = self.noise_log_std()
        if self.squash:
            return SquashedDiagGaussian(mean, log_std)
        return DiagGaussian(mean, log_std)

    def noise_log_std(self) -> Tensor:
        """The log-std actions are drawn with: the parameter, floored at `log_std_min` where set."""
        return self.log_std if self.log_std_min is None else self.log_std.clamp(min=self.log_std_min)

    @torch.no_grad()
    def act(self, obs: Tensor | np.ndarray, deterministic: bool = False) -> Tensor:
        """Actions `(batch, act_dim)` for observations `(batch, obs_dim)`: the mode, or a sample."""
        dist = self(torch.as_tensor(obs, dtype=torch.float32))
        return dist.mode() if deterministic else dist.sample()

    def export_layers(self) -> ExportedMLP:
        """The mean network as numpy arrays (log-std and squashing are `self.log_std`, `self.squash`)."""
        return export_mlp(self.mean_net, self.activation)


class Critic(nn.Module):
    """V(s) = mlp(s) with output gain 1.0: observations `(batch, obs_dim)` → values `(batch,)`."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...] = (64, 64), activation: str = "tanh",
                 ortho_init: bool = True) -> None:
        super().__init__()
        self.activation = activation
        self.net = mlp(obs_dim, hidden, 1, activation, output_gain=1.0, orthogonal=ortho_init)

    def forward(self, obs: Tensor) -> Tensor:
        """Values `(batch,)`."""
        return self.net(obs).squeeze(-1)

    def export_layers(self) -> ExportedMLP:
        """The value network as numpy arrays."""
        return export_mlp(self.net, self.activation)
