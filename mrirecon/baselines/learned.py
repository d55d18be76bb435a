"""Learned baselines (fastmri.models) behind the one forward signature every trained model shares.

``forward(masked_kspace [B, C, H, W, 2] float32, mask [B, 1, 1, W, 1] bool,
num_low_frequencies [B] tensor | int | None) -> [B, H, W]`` magnitude at full k-space size (the
caller centre-crops to the target). Any coil count and any H, W; CPU or GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from fastmri.data.transforms import normalize_instance
from fastmri.models import Unet, VarNet
from torch import Tensor, nn

from ..codecs.graph_safe import CascadeBlock, CentreSensitivityModel
from ..physics import zero_filled_rss

__all__ = ["LEARNED", "UNetBaseline", "VarNetBaseline", "zero_filled_rss"]

LowFreqs = Tensor | int | None


class VarNetBaseline(nn.Module):
    """E2E-VarNet (Sriram et al. 2020) from ``fastmri.models.VarNet``, fastMRI's default sizes.

    Learned sensitivities from the ACS (``num_low_frequencies`` centre columns, inferred from the
    mask where not given), ``num_cascades`` unrolled cascades with U-Net regularisers and soft data
    consistency; output RSS magnitude ``[B, H, W]``.
    """

    def __init__(
        self,
        num_cascades: int = 12,
        sens_chans: int = 8,
        sens_pools: int = 4,
        chans: int = 18,
        pools: int = 4,
    ) -> None:
        super().__init__()
        self.varnet = VarNet(
            num_cascades=num_cascades,
            sens_chans=sens_chans,
            sens_pools=sens_pools,
            chans=chans,
            pools=pools,
        )
        # fastmri's own sensitivity network with per-sample ACS widths and no host synchronisation
        sens = self.varnet.sens_net
        self.varnet.sens_net = CentreSensitivityModel(sens_chans, sens_pools, mask_center=sens.mask_center)
        self.varnet.cascades = nn.ModuleList(CascadeBlock(block.model) for block in self.varnet.cascades)

    def forward(self, masked_kspace: Tensor, mask: Tensor, num_low_frequencies: LowFreqs = None) -> Tensor:
        return self.varnet(masked_kspace, mask.bool(), num_low_frequencies)


class UNetBaseline(nn.Module):
    """fastMRI's image-domain U-Net baseline (Zbontar et al. 2018) on the zero-filled RSS image.

    ``[B, C, H, W, 2] k-space -> zero-filled RSS [B, H, W] -> per-image mean/std normalisation
    (clamped to +-6, as fastmri's ``UnetDataTransform``) -> Unet(1 -> 1) -> de-normalisation ->
    [B, H, W]``. The image is padded (replicate) to a multiple of ``2**num_pool_layers`` and cropped
    back, so any H, W works; the U-Net sees the full (readout-oversampled) image.
    ``mask`` and ``num_low_frequencies`` are accepted for the common signature and not used (the
    k-space is already masked).
    """

    def __init__(self, chans: int = 32, num_pool_layers: int = 4, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.num_pool_layers = num_pool_layers
        self.unet = Unet(in_chans=1, out_chans=1, chans=chans, num_pool_layers=num_pool_layers, drop_prob=drop_prob)

    def forward(self, masked_kspace: Tensor, mask: Tensor, num_low_frequencies: LowFreqs = None) -> Tensor:
        image = zero_filled_rss(masked_kspace)  # [B, H, W]
        B, H, W = image.shape
        normed, mean, std = [], [], []
        for b in range(B):  # per-image statistics, exactly fastmri's normalize_instance
            x, m, s = normalize_instance(image[b], eps=1e-11)
            normed.append(x.clamp(-6, 6))
            mean.append(m)
            std.append(s)
        x = torch.stack(normed)[:, None]  # [B, 1, H, W]
        mean_t = torch.stack(mean).view(B, 1, 1)
        std_t = torch.stack(std).view(B, 1, 1)

        multiple = 2**self.num_pool_layers
        pad_h = (-H) % multiple
        pad_w = (-W) % multiple
        if pad_h or pad_w:
            top, left = pad_h // 2, pad_w // 2
            x = F.pad(x, (left, pad_w - left, top, pad_h - top), mode="replicate")
            x = self.unet(x)[:, 0, top : top + H, left : left + W]
        else:
            x = self.unet(x)[:, 0]
        return x * (std_t + 1e-11) + mean_t


LEARNED: dict[str, type[nn.Module]] = {"varnet": VarNetBaseline, "unet": UNetBaseline}
