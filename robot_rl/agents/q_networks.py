"""The Q-networks of DQN: Q(s, ·) with one output per discrete action, an MLP on vectors or Mnih et al.
(2015)'s convolutional network on stacked frames."""

from __future__ import annotations

from torch import Tensor, nn

from robot_rl.networks import ExportedMLP, export_mlp, mlp


class QNetwork(nn.Module):
    """Q(s, ·): observations `(batch, obs_dim)` → Q-values `(batch, num_actions)`, an MLP.

    Initialised as torch's `nn.Linear` is (uniform, ±1/√fan_in), as SB3's and CleanRL's DQN are, not
    orthogonally as the policy-gradient networks: on CartPole (RL Zoo settings, 5 seeds) it reached a
    greedy 500 in a median of 18k steps, against 32k steps and one miss in 50k with orthogonal weights.
    """

    def __init__(self, obs_dim: int, num_actions: int, hidden: tuple[int, ...], activation: str) -> None:
        super().__init__()
        self.activation = activation
        self.net = mlp(obs_dim, hidden, num_actions, activation)
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()  # torch's default initialisation (see above)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs)

    def export_layers(self) -> ExportedMLP:
        return export_mlp(self.net, self.activation)


class NatureCNN(nn.Module):
    """Mnih et al. (2015)'s network: 84×84 frames `(batch, C·84·84)` pixels 0..255 → `(batch, n)`.

    conv 32×8×8 stride 4, conv 64×4×4 stride 2, conv 64×3×3 stride 1, linear 512, linear n; ReLU.
    """

    SIZE = 84

    def __init__(self, obs_dim: int, num_actions: int) -> None:
        super().__init__()
        frame = self.SIZE * self.SIZE
        if obs_dim % frame:
            raise ValueError(f"nature_cnn needs stacked {self.SIZE}×{self.SIZE} frames; obs_dim {obs_dim} "
                             f"is not a multiple of {frame}")
        self.channels = obs_dim // frame
        self.net = nn.Sequential(
            nn.Conv2d(self.channels, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten(),
            nn.Linear(64 * 7 * 7, 512), nn.ReLU(), nn.Linear(512, num_actions))

    def forward(self, obs: Tensor) -> Tensor:
        x = obs.reshape(-1, self.channels, self.SIZE, self.SIZE).float() / 255.0
        return self.net(x)
