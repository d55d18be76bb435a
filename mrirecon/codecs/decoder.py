"""Image decoder: backbone hidden states -> an image consistent with the measured k-space.

hidden [B,N,D] -> LayerNorm -> token_dim -> per-token transposed patch projection -> [B,F,H,W]
-> conv head on [features, x0] -> complex residual; x1 = x0 + residual (back to scanner scale)
-> coil k-space through S, measured lines put back (hard data consistency)
-> a few refinement cascades (fastmri's VarNetBlock: soft DC + NormUnet) -> coil k-space [B,C,H,W,2]
"""

from __future__ import annotations

import torch
from fastmri.models.varnet import NormUnet
from torch import Tensor, nn

from mrirecon.physics import data_consistency, sens_expand

from .encoder import Encoded
from .graph_safe import CascadeBlock, graph_safe


class FloatNormUnet(NormUnet):
    """fastmri's NormUnet with a float32 output, so that under bf16 autocast the cascades' complex FFTs
    (fastmri's helpers need float32) still run; the U-Net convolutions themselves run in bf16. Its U-Net is
    :class:`~mrirecon.codecs.graph_safe.GraphSafeUnet`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        graph_safe(self)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x).float()


class ImageDecoder(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        patch_size: int = 16,
        stem_chans: int = 32,
        num_cascades: int = 4,
        chans: int = 18,
        pools: int = 4,
        token_dim: int = 256,
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden_size)
        self.project = nn.Linear(hidden_size, token_dim)
        self.from_tokens = nn.ConvTranspose2d(token_dim, stem_chans, patch_size, stride=patch_size)
        self.head = nn.Sequential(
            nn.Conv2d(stem_chans + 2, stem_chans, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(stem_chans, 2, 3, padding=1),
        )
        nn.init.zeros_(self.head[-1].weight)  # start from x0: the residual begins at zero
        nn.init.zeros_(self.head[-1].bias)
        self.cascades = nn.ModuleList(CascadeBlock(FloatNormUnet(chans, pools)) for _ in range(num_cascades))

    def image(self, hidden: Tensor, enc: Encoded) -> Tensor:
        """The decoded complex image before data consistency, at scanner scale. -> [B,1,H,W,2]."""
        B = hidden.shape[0]
        gh, gw = enc.grid
        H, W = enc.size
        tokens = self.project(self.norm(hidden))  # [B,N,token_dim]
        feats = self.from_tokens(tokens.transpose(1, 2).reshape(B, -1, gh, gw))[..., :H, :W]
        x0 = enc.image[:, 0].permute(0, 3, 1, 2)  # [B,2,H,W]
        residual = self.head(torch.cat([feats, x0.to(feats.dtype)], dim=1)).float()
        return ((x0 + residual).permute(0, 2, 3, 1) * enc.scale[:, 0]).unsqueeze(1)

    def forward(self, hidden: Tensor, enc: Encoded, masked_kspace: Tensor, mask: Tensor) -> Tensor:
        """-> the final coil k-space [B,C,H,W,2] (the coils of ``masked_kspace``)."""
        x1 = self.image(hidden, enc)
        kspace = data_consistency(sens_expand(x1, enc.sens_maps), masked_kspace, mask)
        for block in self.cascades:
            kspace = block(kspace, masked_kspace, mask, enc.sens_maps)
        return kspace
