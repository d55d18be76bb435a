"""fastmri's U-Net, sensitivity network and cascade block (same weights and state-dict keys), free of host
synchronisation, host-to-device copies and data-dependent Python branches: CUDA graphs capture them and
torch.compile traces each as one graph."""

from __future__ import annotations

import fastmri
import torch
import torch.nn.functional as F
from fastmri.models.unet import Unet
from fastmri.models.varnet import NormUnet, SensitivityModel, VarNetBlock
from torch import Tensor


class GraphSafeUnet(Unet):
    """fastmri's ``Unet`` deciding the skip-connection padding from shapes alone. fastmri tests a host tensor
    (``torch.sum(torch.tensor(padding)) != 0``), which splits a compiled U-Net into a graph per level."""

    def forward(self, image: Tensor) -> Tensor:
        skips, out = [], image
        for layer in self.down_sample_layers:
            out = layer(out)
            skips.append(out)
            out = F.avg_pool2d(out, kernel_size=2, stride=2, padding=0)
        out = self.conv(out)
        for up, conv in zip(self.up_transpose_conv, self.up_conv, strict=True):
            skip = skips.pop()
            out = up(out)
            pad_w, pad_h = int(out.shape[-1] != skip.shape[-1]), int(out.shape[-2] != skip.shape[-2])
            if pad_w or pad_h:  # odd sizes: reflect-pad right/bottom, as fastmri does
                out = F.pad(out, [0, pad_w, 0, pad_h], "reflect")
            out = conv(torch.cat([out, skip], dim=1))
        return out


def graph_safe(norm_unet: NormUnet) -> NormUnet:
    """In place: ``norm_unet``'s U-Net becomes a :class:`GraphSafeUnet` (a subclass with no state of its own,
    so the class swap keeps weights, keys and the random-number stream of the model's initialisation)."""
    if type(norm_unet.unet) is Unet:
        norm_unet.unet.__class__ = GraphSafeUnet
    return norm_unet


class CentreSensitivityModel(SensitivityModel):
    """fastmri's ``SensitivityModel`` (same weights and state-dict keys), taking a per-sample ACS width.

    fastmri keeps the k-space centre with a Python loop over the batch that reads each width back to the
    host, which breaks CUDA-graph capture and splits ``torch.compile`` graphs, and takes one width per batch.
    Here the centre columns are kept by comparing column indices with per-sample bounds on the device.

    num_low_frequencies: int, tensor [B] (or one element) or None; a width of 0 or None is read off the mask
    as fastmri does (the symmetric run of sampled columns around the centre).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        graph_safe(self.norm_unet)

    def forward(self, masked_kspace: Tensor, mask: Tensor, num_low_frequencies: Tensor | int | None = None) -> Tensor:
        if self.mask_center:
            keep = self.centre_columns(mask, num_low_frequencies, masked_kspace.shape[-2])
            masked_kspace = masked_kspace * keep.to(masked_kspace.dtype)
        images, batch = self.chans_to_batch_dim(fastmri.ifft2c(masked_kspace))
        return self.divide_root_sum_of_squares(self.batch_chans_to_chan_dim(self.norm_unet(images), batch))

    def centre_columns(self, mask: Tensor, num_low_frequencies: Tensor | int | None, width: int) -> Tensor:
        """-> bool mask [B,1,1,W,1] that keeps the ACS columns of each sample."""
        B = mask.shape[0]
        _, from_mask = self.get_pad_and_num_low_freqs(mask, None)  # [B]
        if isinstance(num_low_frequencies, Tensor):
            n = num_low_frequencies.to(device=mask.device, dtype=torch.long).reshape(-1).expand(B)
        else:  # filled on the device: no host-to-device copy
            n = torch.full((B,), int(num_low_frequencies or 0), dtype=torch.long, device=mask.device)
        n = torch.where(n > 0, n, from_mask)
        lo = (width - n + 1) // 2
        cols = torch.arange(width, device=mask.device)
        keep = (cols >= lo[:, None]) & (cols < (lo + n)[:, None])  # [B, W]
        return keep.view(B, 1, 1, width, 1)


class CascadeBlock(VarNetBlock):
    """fastmri's ``VarNetBlock`` (soft data consistency + U-Net refinement; same weights and keys) without the
    host-made zero tensor that fastmri copies to the device on every call, which CUDA-graph capture forbids.

    current_kspace, ref_kspace [B,C,H,W,2], mask [B,1,1,W,1] bool, sens_maps [B,C,H,W,2] -> kspace [B,C,H,W,2].
    """

    def __init__(self, model: NormUnet) -> None:
        super().__init__(graph_safe(model))

    def forward(self, current_kspace: Tensor, ref_kspace: Tensor, mask: Tensor, sens_maps: Tensor) -> Tensor:
        soft_dc = torch.where(mask, current_kspace - ref_kspace, 0.0) * self.dc_weight
        model_term = self.sens_expand(self.model(self.sens_reduce(current_kspace, sens_maps)), sens_maps)
        return current_kspace - soft_dc - model_term
