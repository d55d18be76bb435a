"""fastmri's U-Net, sensitivity network and cascade block (same weights and state-dict keys), free of host
synchronisation, host-to-device copies and data-dependent Python branches: CUDA graphs capture them and
torch.compile traces each as one graph."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from fastmri.models.unet import Unet
from fastmri.models.varnet import NormUnet, SensitivityModel, VarNetBlock
from torch import Tensor, nn

from mrirecon.physics import centre_lines, ifft2c, sens_expand, sens_reduce, soft_data_consistency


class GraphSafeUnet(Unet):
    """fastmri's ``Unet`` deciding the skip-connection padding from shapes alone. fastmri tests a host tensor
    (``torch.sum(torch.tensor(padding)) != 0``), which splits a compiled U-Net into a graph per level.

    With ``channel_multiple`` > 1 (see :func:`pad_unet_channels`), eval-mode calls compute the same function
    with every convolution's input and output channels zero-padded to that multiple: cuDNN's bf16 NHWC kernels
    want multiples of 8 and otherwise pad each input themselves or take slow generic kernels. The padded
    weights are made from the parameters in every call, so the state dict is unchanged. The padding channels
    stay exactly zero: their weights are zero, InstanceNorm maps an all-zero channel to 0 / sqrt(0 + eps) = 0,
    LeakyReLU(0) = 0 and reflect padding and average pooling keep zeros.
    """

    channel_multiple: int = 1

    def forward(self, image: Tensor) -> Tensor:
        """image [B, in_chans, H, W] -> [B, out_chans, H, W]."""
        m = 1 if self.training else self.channel_multiple  # the padded path leaves dropout out: eval only

        def run(module: nn.Module, x: Tensor, segments: list[int]) -> Tensor:
            return module(x) if m == 1 else _padded_layers(module, x, segments, m)

        out = image if m == 1 else _pad_channels(image, 1, [self.in_chans], m)
        skips = []
        for layer in self.down_sample_layers:
            out = run(layer, out, [layer.in_chans])
            skips.append((out, layer.out_chans))
            out = F.avg_pool2d(out, kernel_size=2, stride=2, padding=0)
        out = run(self.conv, out, [self.conv.in_chans])
        for up, conv in zip(self.up_transpose_conv, self.up_conv, strict=True):
            skip, skip_chans = skips.pop()
            out = run(up, out, [up.in_chans])
            pad_w, pad_h = int(out.shape[-1] != skip.shape[-1]), int(out.shape[-2] != skip.shape[-2])
            if pad_w or pad_h:  # odd sizes: reflect-pad right/bottom, as fastmri does
                out = F.pad(out, [0, pad_w, 0, pad_h], "reflect")
            out = run(conv, torch.cat([out, skip], dim=1), [up.out_chans, skip_chans])
        return out if m == 1 else out[:, : self.out_chans]


def pad_unet_channels(module: nn.Module, multiple: int = 8) -> int:
    """In place: every :class:`GraphSafeUnet` in ``module`` runs with channels padded to ``multiple`` in eval
    mode (1 turns it off). Returns how many U-Nets were set."""
    unets = [m for m in module.modules() if isinstance(m, GraphSafeUnet)]
    for unet in unets:
        unet.channel_multiple = multiple
    return len(unets)


def _pad_channels(t: Tensor, dim: int, sizes: list[int], multiple: int) -> Tensor:
    """Split ``t`` along ``dim`` into consecutive segments of ``sizes`` and zero-pad each segment's end up to a
    multiple of ``multiple``: [..., sum(sizes), ...] -> [..., sum(ceil(s / multiple) * multiple), ...]."""
    parts = [F.pad(p, [0] * (2 * (t.dim() - dim) - 1) + [-p.shape[dim] % multiple]) for p in t.split(sizes, dim)]
    return torch.cat(parts, dim) if len(parts) > 1 else parts[0]


def _padded_layers(module: nn.Module, x: Tensor, segments: list[int], multiple: int) -> Tensor:
    """Eval-mode ``module(x)`` for fastmri's ``ConvBlock``, ``TransposeConvBlock`` or a ``Sequential`` of those
    and convolutions, on channel-padded tensors.

    x [B, C', H, W]: consecutive segments of ``segments`` real channels, each zero-padded to a multiple of
    ``multiple``. -> [B, O', H', W']: the module's O output channels, then zeros up to O' = a multiple.
    """
    for layer in module.modules():
        if next(layer.children(), None) is not None:
            continue  # a container: its leaves follow in order
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d) and layer.groups == 1 and layer.padding_mode == "zeros":
            transposed = isinstance(layer, nn.ConvTranspose2d)  # weight [in, out, k, k], else [out, in, k, k]
            w = _pad_channels(layer.weight, int(not transposed), segments, multiple)
            w = _pad_channels(w, int(transposed), [layer.out_channels], multiple)
            b = None if layer.bias is None else _pad_channels(layer.bias, 0, [layer.out_channels], multiple)
            if transposed:
                x = F.conv_transpose2d(x, w, b, layer.stride, layer.padding, layer.output_padding, 1, layer.dilation)
            else:
                x = F.conv2d(x, w, b, layer.stride, layer.padding, layer.dilation)
            segments = [layer.out_channels]
        elif isinstance(layer, nn.InstanceNorm2d) and not layer.affine and not layer.track_running_stats:
            x = F.instance_norm(x, eps=layer.eps)
        elif isinstance(layer, nn.LeakyReLU):
            x = F.leaky_relu(x, layer.negative_slope, layer.inplace)
        elif not isinstance(layer, nn.Dropout2d):  # dropout is the identity in eval mode
            raise TypeError(f"no channel-padded version of {layer}")
    return x


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
        images, batch = self.chans_to_batch_dim(ifft2c(masked_kspace))
        return self.divide_root_sum_of_squares(self.batch_chans_to_chan_dim(self.norm_unet(images), batch))

    def centre_columns(self, mask: Tensor, num_low_frequencies: Tensor | int | None, width: int) -> Tensor:
        """-> bool mask [B,1,1,W,1] that keeps the ACS columns of each sample."""
        B = mask.shape[0]
        _, from_mask = self.get_pad_and_num_low_freqs(mask, None)  # [B]
        if isinstance(num_low_frequencies, Tensor):
            n = num_low_frequencies.to(device=mask.device, dtype=torch.long).reshape(-1).expand(B)
        else:  # filled on the device: no host-to-device copy
            n = torch.full((B,), int(num_low_frequencies or 0), dtype=torch.long, device=mask.device)
        return centre_lines(width, torch.where(n > 0, n, from_mask)).view(B, 1, 1, width, 1)


class CascadeBlock(VarNetBlock):
    """fastmri's ``VarNetBlock`` (soft data consistency + U-Net refinement; same weights and keys) without the
    host-made zero tensor that fastmri copies to the device on every call, which CUDA-graph capture forbids.

    current_kspace, ref_kspace [B,C,H,W,2], mask [B,1,1,W,1] bool, sens_maps [B,C,H,W,2] -> kspace [B,C,H,W,2].
    """

    def __init__(self, model: NormUnet) -> None:
        super().__init__(graph_safe(model))

    def forward(self, current_kspace: Tensor, ref_kspace: Tensor, mask: Tensor, sens_maps: Tensor) -> Tensor:
        soft_dc = soft_data_consistency(current_kspace, ref_kspace, mask, self.dc_weight)
        model_term = sens_expand(self.model(sens_reduce(current_kspace, sens_maps)), sens_maps)
        return current_kspace - soft_dc - model_term
