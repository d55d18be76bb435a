"""K-space encoder: measured multi-coil k-space -> a token sequence in the backbone's hidden space.

masked k-space [B,C,H,W,2] -> learned coil sensitivities S (fastmri's SensitivityModel, per-sample ACS widths)
-> SENSE-combined start image x0 = sum_c conj(S_c) IFFT(y_c)   [B,1,H,W,2]
-> normalised by a per-scan scale -> 2-channel conv stem -> p x p patches (token_dim) -> D channels
-> + projected 2-D Fourier position code (the backbone has no positions) -> LayerNorm -> [B,N,D]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import fastmri
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrirecon.physics import sens_reduce

from .graph_safe import CentreSensitivityModel


@dataclass
class Encoded:
    tokens: Tensor  # [B, N, D]
    image: Tensor  # x0 / scale, [B, 1, H, W, 2]
    sens_maps: Tensor  # [B, C, H, W, 2]
    scale: Tensor  # [B, 1, 1, 1, 1]
    grid: tuple[int, int]  # patches along H and W
    size: tuple[int, int]  # image size H, W (before padding to the patch grid)


def fourier_position_code(gh: int, gw: int, features: int, device: torch.device) -> Tensor:
    """Sin/cos code of the patch centres in [-1, 1]^2, ``features`` frequencies per axis. -> [gh*gw, 4F]."""
    ys = (torch.arange(gh, device=device) + 0.5) / gh * 2 - 1
    xs = (torch.arange(gw, device=device) + 0.5) / gw * 2 - 1
    freqs = math.pi * 2.0 ** torch.linspace(0, math.log2(max(gh, gw)), features, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    angles = torch.cat([yy.reshape(-1, 1) * freqs, xx.reshape(-1, 1) * freqs], dim=1)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class KSpaceEncoder(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        patch_size: int = 16,
        stem_chans: int = 32,
        sens_chans: int = 8,
        sens_pools: int = 4,
        pos_features: int = 16,
        token_dim: int = 256,
    ) -> None:
        super().__init__()
        self.patch_size, self.pos_features = patch_size, pos_features
        self.sens_net = CentreSensitivityModel(sens_chans, sens_pools, mask_center=True)
        self.stem = nn.Sequential(
            nn.Conv2d(2, stem_chans, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(stem_chans, stem_chans, 3, padding=1),
            nn.SiLU(),
        )
        self.to_tokens = nn.Conv2d(stem_chans, token_dim, patch_size, stride=patch_size)
        self.project = nn.Linear(token_dim, hidden_size)
        self.position = nn.Linear(4 * pos_features, hidden_size)
        self.norm = nn.LayerNorm(hidden_size)

    def forward(self, masked_kspace: Tensor, mask: Tensor, num_low_frequencies: Tensor | int | None) -> Encoded:
        sens = self.sens_net(masked_kspace, mask, num_low_frequencies)
        x0 = sens_reduce(masked_kspace, sens)
        # Per-scan scale: raw fastMRI units are ~1e-5..1e-3; the codecs work near unit scale.
        scale = fastmri.complex_abs(x0).flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1, 1)
        image = x0 / scale
        B, _, H, W, _ = image.shape
        p = self.patch_size
        chans = image[:, 0].permute(0, 3, 1, 2)  # [B,2,H,W]
        chans = F.pad(chans, (0, (-W) % p, 0, (-H) % p))
        feats = self.to_tokens(self.stem(chans))  # [B,token_dim,gh,gw]
        gh, gw = feats.shape[-2:]
        pos = self.position(fourier_position_code(gh, gw, self.pos_features, feats.device).to(feats.dtype))
        tokens = self.norm(self.project(feats.flatten(2).transpose(1, 2)) + pos)
        return Encoded(tokens, image, sens, scale, (gh, gw), (H, W))
