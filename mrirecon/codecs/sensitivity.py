"""fastmri's sensitivity network and cascade block, free of host synchronisation and host-to-device copies
(CUDA-graph capture, unbroken torch.compile graphs)."""

from __future__ import annotations

import fastmri
import torch
from fastmri.models.varnet import SensitivityModel, VarNetBlock
from torch import Tensor


class CentreSensitivityModel(SensitivityModel):
    """fastmri's ``SensitivityModel`` (same weights and state-dict keys), taking a per-sample ACS width.

    fastmri keeps the k-space centre with a Python loop over the batch that reads each width back to the
    host, which breaks CUDA-graph capture and splits ``torch.compile`` graphs, and takes one width per batch.
    Here the centre columns are kept by comparing column indices with per-sample bounds on the device.

    num_low_frequencies: int, tensor [B] (or one element) or None; a width of 0 or None is read off the mask
    as fastmri does (the symmetric run of sampled columns around the centre).
    """

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

    def forward(self, current_kspace: Tensor, ref_kspace: Tensor, mask: Tensor, sens_maps: Tensor) -> Tensor:
        soft_dc = torch.where(mask, current_kspace - ref_kspace, 0.0) * self.dc_weight
        model_term = self.sens_expand(self.model(self.sens_reduce(current_kspace, sens_maps)), sens_maps)
        return current_kspace - soft_dc - model_term
