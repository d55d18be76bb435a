"""The reconstruction model: k-space encoder -> frozen backbone -> image decoder."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..physics import (
    FINAL_SOLVE_GRID,
    coil_basis,
    compress_coils,
    data_consistency,
    espirit_sens,
    expand_coils,
    kspace_noise_variance,
    map_misfit,
    object_mask,
    restore_noise_floor,
    rss,
    sample_noise_variance,
    sens_expand,
    sens_reduce,
    sense_toward_prior,
    zero_outside_maps,
)
from .backbones import BackboneName, FrozenBackbone, build_backbone
from .decoder import ImageDecoder
from .encoder import KSpaceEncoder

TOKEN_ORDERS = ("twice", "raster", "bidirectional")
FINAL_SOLVE_MAPS = ("learned", "espirit")


class ReconModel(nn.Module):
    """Trainable codecs around a frozen backbone. All learned methods share the forward signature
    ``(masked_kspace [B,C,H,W,2], mask [B,1,1,W,1] bool, num_low_frequencies) -> image [B,H,W]``.

    Args:
        backbone: a name of :data:`~mrirecon.codecs.backbones.BACKBONE_REGISTRY` (``nirvana``, ``gated-deltanet``,
            ``transformer``, ``none``).
        backbone_config: ``tiny``, ``1.3B`` or a config.json path.
        backbone_weights: directory with official weights, or None for the seeded random init.
        backbone_seed: seed of the random initialisation.
        backbone_dtype: ``float32`` or ``bfloat16`` (the 1.3B config on a GPU).
        trigger: Trigger mode of the backbone (``token``, ``off``, ``scan``).
        token_order: how a causal backbone lets every output see the whole image: ``twice`` (the
            sequence fed twice, the second copy read), ``raster`` (once), ``bidirectional`` (raster and
            reversed raster, averaged).
        patch_size, stem_chans, pos_features, token_dim: tokenisation (token_dim: the codecs' token width,
            projected to and from the backbone width).
        sens_chans, sens_pools: the coil-sensitivity U-Net.
        num_cascades, chans, pools: refinement cascades of the decoder.
        virtual_coils: compress the coils to this many virtual coils first (0: keep every coil), so the cost
            does not grow with the coil count; :func:`~mrirecon.physics.coil_basis`.
        final_solve_iterations, final_solve_weight, final_solve_maps: with iterations > 0, the decoded image is
            pulled to the measured data at the end: a SENSE solve toward the network's image (weight w, not learned;
            :func:`~mrirecon.physics.sense_toward_prior`), then the measured lines of every physical coil put back.
            ``learned`` maps: the coil images become S x (trainable through the solve; added untrained it paints
            fold-over ghosts where the learned maps are poor, results/default_v9). ``espirit`` maps (sigpy, from
            the virtual coils' centre on a coarse grid, zero where the eigenvalue is below ``final_solve_crop``, no
            gradient): the coil images are corrected along the maps, + S (x - x_net). On in the shipped default
            (untrained, espirit, crop 0.9, with the per-scan weight below; results/default_v13); iterations 0
            turns it off whatever the other final_solve_* args say.
        final_solve_trainable: the measured lines are not put back and the solve's weight follows the scan's noise:
            w = a sigma^2 / P (the MAP weight if the network's error power is P / a), sigma^2 the k-space noise
            variance estimated from the outer readout frequencies (:func:`~mrirecon.physics.kspace_noise_variance`),
            P the mean power of the network's image, a learned (stored as ``final_solve_log_weight``, starting at
            ``final_solve_weight``, at :data:`LR_SCALES` times the learning rate). Low-SNR scans thus keep more of
            the network's denoised image, high-SNR ones more of the measured data.
        final_solve_noise_exponent, final_solve_misfit_exponent: with ``final_solve_trainable``, the weight is
            w = a (sigma^2 / P)^e_noise m^e_misfit, m the share of the calibration data the ESPIRiT maps do not
            explain (:func:`~mrirecon.physics.map_misfit`): where the maps are wrong, the data are trusted less.
            The defaults (1, 0) are the plain noise-aware weight; results/default_v13 fits them per scan.
        final_solve_support: with ``espirit`` maps, the coil images are set to zero outside the maps' support
            (the object as the cropped calibration finds it; :func:`~mrirecon.physics.zero_outside_maps`): the
            solve cannot correct the network's fold-over residue there; the noise floor then fills it
            (results/default_v20). Only in calls where the floor is on: without it the zeros would sit far below
            the target's noise. Meant for ``final_solve_trainable`` (otherwise the measured lines put back
            afterwards bring part of it back).
        final_solve_object_threshold, final_solve_object_margin: with ``espirit`` maps and a threshold > 0, the
            solve's correction x - x_net is kept only on the object (:func:`~mrirecon.physics.object_mask` of the
            network's image: above this share of its 99th percentile, holes filled, grown by the margin in
            pixels); off it the network's image stays. Where the object fills the field of view, the maps' support
            covers the background too, and the solve put fold-over ghosts of the object's edges there. The solve
            itself still sees every pixel, so the object gets the same correction as without the mask
            (results/default_v22; masking the maps instead pushed the unmatched data onto the object,
            results/default_v21).
        noise_floor: lift the RSS image where it lies below this share of the fully sampled scan's noise floor
            (:func:`~mrirecon.physics.restore_noise_floor`; 0 off): the network predicts the unmeasured lines
            without noise, so its background can sit below that of the fastMRI target, the RSS image of the noisy
            fully sampled scan (results/default_v19).
        noise_floor_level: ``rms`` fills to the noise's power C sigma^2, ``mean`` to the square of its RSS
            magnitude's mean, as the target's background averages it (lower where the coils' noise is correlated;
            :func:`~mrirecon.physics.rss_noise_mean_ratio`, results/default_v22).
        noise_floor_source: where the floor's noise power is read. ``kspace``: the outer readout frequencies of
            the measured lines (:func:`~mrirecon.physics.kspace_noise_variance`). ``readout_margin``: the rows of
            a readout-oversampled scan that the crop to the target removes
            (:func:`~mrirecon.physics.readout_margin_noise`), passed in as ``noise_samples`` by
            :meth:`mrirecon.api.Reconstructor.reconstruct_kspace`, which sees the data before that crop; ``kspace``
            where it has none (results/default_v23).
        final_solve_noise_source: where the solve's weight reads sigma^2: ``kspace`` (the outer readout frequencies
            of all measured lines of the virtual coils, where object edges leave signal) or ``readout_margin`` (the
            same ``noise_samples`` as the floor, compressed to the virtual coils).
    """

    LR_SCALES = {"final_solve_log_weight": 100.0}  # Adam moves a parameter about lr per step; w must move faster
    FRESH_TENSORS = ("final_solve_log_weight",)  # a codec trained without them loads; they keep their init value

    def __init__(
        self,
        backbone: BackboneName = "nirvana",
        backbone_config: str = "tiny",
        backbone_weights: str | None = None,
        backbone_seed: int = 0,
        backbone_dtype: str = "float32",
        trigger: str = "token",
        token_order: str = "twice",
        patch_size: int = 16,
        stem_chans: int = 32,
        pos_features: int = 16,
        sens_chans: int = 8,
        sens_pools: int = 4,
        num_cascades: int = 4,
        chans: int = 18,
        pools: int = 4,
        token_dim: int = 256,
        virtual_coils: int = 0,
        final_solve_iterations: int = 0,
        final_solve_weight: float = 0.1,
        final_solve_maps: str = "learned",
        final_solve_trainable: bool = False,
        final_solve_crop: float = 0.0,
        final_solve_noise_exponent: float = 1.0,
        final_solve_misfit_exponent: float = 0.0,
        final_solve_support: bool = False,
        final_solve_object_threshold: float = 0.0,
        final_solve_object_margin: int = 8,
        noise_floor: float = 0.0,
        noise_floor_level: str = "rms",
        noise_floor_source: str = "kspace",
        final_solve_noise_source: str = "kspace",
    ) -> None:
        super().__init__()
        if noise_floor < 0:
            raise ValueError(f"noise_floor must be >= 0, got {noise_floor}")
        self.noise_floor = noise_floor
        if noise_floor_level not in ("rms", "mean"):
            raise ValueError(f"noise_floor_level must be 'rms' or 'mean', got {noise_floor_level!r}")
        self.noise_floor_level = noise_floor_level
        sources = {"noise_floor_source": noise_floor_source, "final_solve_noise_source": final_solve_noise_source}
        for name, source in sources.items():
            if source not in ("kspace", "readout_margin"):
                raise ValueError(f"{name} must be 'kspace' or 'readout_margin', got {source!r}")
        self.noise_floor_source = noise_floor_source
        self.final_solve_noise_source = final_solve_noise_source
        self.virtual_coils = virtual_coils
        if final_solve_iterations < 0 or final_solve_weight <= 0:
            raise ValueError("final_solve_iterations must be >= 0 and final_solve_weight > 0")
        if final_solve_maps not in FINAL_SOLVE_MAPS:
            raise ValueError(f"final_solve_maps must be one of {FINAL_SOLVE_MAPS}, got {final_solve_maps!r}")
        self.final_solve_iterations = final_solve_iterations
        self.final_solve_weight = final_solve_weight
        self.final_solve_maps = final_solve_maps
        self.final_solve_trainable = final_solve_trainable
        self.final_solve_crop = final_solve_crop
        self.final_solve_exponents = (final_solve_noise_exponent, final_solve_misfit_exponent)
        self.final_solve_support = final_solve_support
        self.final_solve_object = (final_solve_object_threshold, final_solve_object_margin)
        if final_solve_trainable:  # kept with iterations 0 (the solve off), so a trained codec still loads
            self.final_solve_log_weight = nn.Parameter(torch.tensor(math.log(final_solve_weight)))
        if token_order not in TOKEN_ORDERS:
            raise ValueError(f"token_order must be one of {TOKEN_ORDERS}, got {token_order!r}")
        self.token_order = token_order
        self.backbone: FrozenBackbone = build_backbone(
            backbone, backbone_config, backbone_weights, backbone_seed, trigger, dtype=backbone_dtype
        )
        D = self.backbone.hidden_size
        self.encoder = KSpaceEncoder(D, patch_size, stem_chans, sens_chans, sens_pools, pos_features, token_dim)
        self.decoder = ImageDecoder(D, patch_size, stem_chans, num_cascades, chans, pools, token_dim)

    def run_backbone(self, tokens: Tensor, **kw: Any) -> Tensor:
        """tokens [B,N,D] -> hidden [B,N,D] in the chosen token order."""
        N = tokens.shape[1]
        dtype = next((p.dtype for p in self.backbone.parameters()), tokens.dtype)
        run = lambda x: self.backbone(x.to(dtype), **kw).to(tokens.dtype)  # noqa: E731
        if self.token_order == "raster":
            return run(tokens)
        if self.token_order == "twice":
            return run(torch.cat([tokens, tokens], dim=1))[:, N:]
        both = run(torch.cat([tokens, tokens.flip(1)], dim=0))
        return 0.5 * (both[: tokens.shape[0]] + both[tokens.shape[0] :].flip(1))

    def forward(
        self,
        masked_kspace: Tensor,
        mask: Tensor,
        num_low_frequencies: Tensor | int | None = None,
        trigger: str | None = None,
        trigger_offsets: Tensor | None = None,
        return_kspace: bool = False,
        espirit_maps: Tensor | None = None,
        noise_floor: float | None = None,
        noise_samples: Tensor | None = None,
    ) -> Tensor:
        """trigger: override the Trigger mode; trigger_offsets [num_trigger_layers, 4, r]: scan-level offsets
        to the Trigger's coefficients (test-time adaptation); return_kspace: the final coil k-space
        [B,C,H,W,2] instead of the RSS image [B,H,W]; espirit_maps [B,V,H,W,2]: the ESPIRiT maps of the virtual
        coils for the ``espirit`` final solve, computed ahead (by the data loader's workers in training) instead
        of here (:func:`~mrirecon.data.transforms.WithEspiritMaps`); noise_floor: this call's share instead of the
        codec's (0 off); noise_samples complex [B,C,N]: the scan's noise
        (:func:`~mrirecon.physics.readout_margin_noise`), read by the floor and the solve where
        ``noise_floor_source`` or ``final_solve_noise_source`` is ``readout_margin``."""
        measured, basis = masked_kspace, None
        if self.virtual_coils and masked_kspace.shape[1] > self.virtual_coils:
            basis = coil_basis(masked_kspace, self.virtual_coils)
            masked_kspace = compress_coils(masked_kspace, basis)
        enc = self.encoder(masked_kspace, mask, num_low_frequencies)
        hidden = self.run_backbone(enc.tokens, trigger=trigger, trigger_offsets=trigger_offsets)
        kspace = self.decoder(hidden, enc, masked_kspace, mask)
        share = self.noise_floor if noise_floor is None else noise_floor
        if self.final_solve_iterations:  # solved on the virtual coils, made consistent on the physical ones
            support = self.final_solve_support and share > 0  # zeros outside the object only where the floor fills
            solve_noise = noise_samples if self.final_solve_noise_source == "readout_margin" else None
            if solve_noise is not None and basis is not None:
                solve_noise = torch.einsum("bcv,bcn->bvn", basis.conj(), solve_noise.to(basis.dtype))
            kspace = self.final_solve(
                kspace, enc.sens_maps, masked_kspace, mask, num_low_frequencies, espirit_maps, support, solve_noise
            )
            kspace = expand_coils(kspace, basis) if basis is not None else kspace
            if not self.final_solve_trainable:
                kspace = data_consistency(kspace, measured, mask)
        elif return_kspace and basis is not None:
            kspace = expand_coils(kspace, basis)
        if return_kspace:
            return kspace
        image = rss(kspace, coil_dim=1)
        if not share:
            return image
        floor_noise = noise_samples if self.noise_floor_source == "readout_margin" else None
        return restore_noise_floor(image, measured, share, level=self.noise_floor_level, noise_samples=floor_noise)

    def final_solve(
        self,
        kspace: Tensor,
        sens: Tensor,
        measured: Tensor,
        mask: Tensor,
        num_low_frequencies: Tensor | int | None,
        espirit_maps: Tensor | None = None,
        support: bool = False,
        noise_samples: Tensor | None = None,
    ) -> Tensor:
        """Coil k-space [B,C,H,W,2] -> the coil k-space after x = argmin ||A x - y||^2 + w ||x - x_net||^2, x_net
        the coil combination of ``kspace`` with the maps (the learned ``sens`` [B,C,H,W,2] or ESPIRiT's);
        float32 (complex FFTs) under autocast. ``support``: ESPIRiT's coil images zero outside the maps;
        ``noise_samples`` complex [B,C,N]: the weight's sigma^2 is read off them instead of ``measured``."""
        with torch.autocast(kspace.device.type, enabled=False):
            kspace, measured, sens = kspace.float(), measured.float(), sens.float()
            espirit = self.final_solve_maps == "espirit"
            if espirit:
                if espirit_maps is None:
                    espirit_maps = espirit_sens(measured, num_low_frequencies, self.final_solve_crop, FINAL_SOLVE_GRID)
                sens = espirit_maps.float()
            prior = sens_reduce(kspace, sens)
            weight = self.final_solve_weight
            if self.final_solve_trainable:
                power = prior.detach().square().sum(-1).mean(dim=(1, 2, 3)).clamp_min(1e-30)
                e_noise, e_misfit = self.final_solve_exponents
                if noise_samples is None:
                    sigma2 = kspace_noise_variance(measured)
                else:
                    sigma2 = sample_noise_variance(noise_samples)
                scale = (sigma2 / power).pow(e_noise)
                if e_misfit:
                    scale = scale * map_misfit(measured, sens, num_low_frequencies).clamp_min(1e-6).pow(e_misfit)
                weight = self.final_solve_log_weight.exp() * scale.view(-1, 1, 1, 1, 1)
            x = sense_toward_prior(measured, sens, mask, prior, weight, self.final_solve_iterations)
            if not espirit:
                return sens_expand(x, sens)
            correction = x - prior
            threshold, margin = self.final_solve_object
            if threshold > 0:
                correction = correction * object_mask(prior, threshold, margin)
            kspace = kspace + sens_expand(correction, sens)
            return zero_outside_maps(kspace, sens) if support else kspace

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """The codecs' tensors only (the frozen backbone is referenced, never stored)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}
