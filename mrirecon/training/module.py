"""The Lightning module that trains any learned method (ours, U-Net, E2E-VarNet) with one loop.

Batches are fastmri ``VarNetSample``s. Loss: 1 - SSIM (fastMRI's, data range = the volume maximum)
plus a small L1 term on max-normalised images. Validation and test score whole volumes with the
fastMRI protocol (:class:`mrirecon.metrics.VolumeMetrics`).
"""

from __future__ import annotations

import inspect
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from fastmri.losses import SSIMLoss
from torch import Tensor, nn

from ..adapt.selfsup import as_mask, heldout_error, split_lines
from ..metrics import VolumeMetrics, center_crop_to, summarize
from ..physics import crop_readout
from .schedule import warmup_cosine, warmup_cosine_by_time


def crop_to(image: Tensor, shape: tuple[int, int]) -> Tensor:
    """Centre-crop [..., H, W] to ``shape`` (no-op where the image is smaller)."""
    return center_crop_to(image, (min(shape[0], image.shape[-2]), min(shape[1], image.shape[-1])))


class ReconModule(L.LightningModule):
    """Args:
    net: the reconstruction network (``forward(masked_kspace, mask, num_low_frequencies) -> [B,H,W]``).
    lr, weight_decay: AdamW; the rate warms up linearly for ``warmup_fraction`` of the steps, then
        follows a cosine to ``lr * final_lr_ratio`` (:mod:`mrirecon.training.schedule`).
    l1_weight: weight of the L1 term next to 1 - SSIM.
    schedule_seconds: when > 0, warm-up and cosine follow the elapsed training time over this many seconds
        instead of the step count (for runs bounded by ``trainer.max_time``, whose step count is unknown).
    ssl_weight: weight of the self-supervised term (0: off): each training batch is also reconstructed from
        a random part of its measured lines and scored on the held-out rest (``ssl_holdout`` of the
        non-centre lines), the objective that test-time adaptation minimises (:mod:`mrirecon.adapt.selfsup`).
        Needs a network that returns k-space (ours).
    init_codec: a codec folder whose weights the network starts from (same architecture and backbone).
    """

    def __init__(
        self,
        net: nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        l1_weight: float = 0.1,
        warmup_fraction: float = 0.05,
        final_lr_ratio: float = 0.05,
        log_images: bool = True,
        schedule_seconds: float = 0.0,
        ssl_weight: float = 0.0,
        ssl_holdout: float = 0.2,
        init_codec: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        if ssl_weight > 0 and "return_kspace" not in inspect.signature(net.forward).parameters:
            raise ValueError(f"ssl_weight needs a network that returns k-space (ours); {type(net).__name__} does not")
        if init_codec:
            from ..codecs.checkpoint import load_codec

            trained, _ = load_codec(init_codec)
            missing, unexpected = self.net.load_state_dict(trained.state_dict(), strict=False)
            fresh = getattr(self.net, "FRESH_TENSORS", ())
            if [k for k in missing if k not in fresh] or unexpected:
                raise ValueError(f"{init_codec}: missing {missing[:5]} / unexpected {unexpected[:5]} tensors")
        self.ssim_loss = SSIMLoss()
        self.strict_loading = False  # checkpoints hold the codecs only; the frozen backbone is rebuilt
        self._metrics = {"val": VolumeMetrics(), "test": VolumeMetrics()}
        self.last_metrics: dict[str, dict[str, Any]] = {}

    # -------------------------------------------------------------- forward / loss
    def forward(self, batch: Any) -> Tensor:
        """The reconstruction of a batch, cropped to the target size. -> [B,h,w]."""
        # The readout is fully sampled: its field of view is cut to the target's rows first (exact).
        kspace = crop_readout(batch.masked_kspace, batch.target.shape[-2])
        ahead = {"espirit_maps": batch.espirit_maps} if hasattr(batch, "espirit_maps") else {}
        out = self.net(kspace, batch.mask, batch.num_low_frequencies, **ahead)
        return crop_to(out, tuple(batch.target.shape[-2:]))

    def loss(self, output: Tensor, batch: Any) -> Tensor:
        maxval = batch.max_value.to(output.dtype).clamp_min(1e-12)
        ssim = self.ssim_loss(output.float().unsqueeze(1), batch.target.float().unsqueeze(1), maxval.float())
        l1 = F.l1_loss(output / maxval[:, None, None], batch.target / maxval[:, None, None])
        return ssim + self.hparams.l1_weight * l1

    def selfsup_loss(self, batch: Any) -> Tensor:
        """The held-out-line error of the reconstruction from the other measured lines (batch mean)."""
        kspace = crop_readout(batch.masked_kspace, batch.target.shape[-2])
        lines = batch.mask[:, 0, 0, :, 0].bool()
        inp, held = split_lines(lines, batch.num_low_frequencies, (self.hparams.ssl_holdout,))
        pred = self.net(kspace * as_mask(inp), as_mask(inp), batch.num_low_frequencies, return_kspace=True)
        return heldout_error(pred.float(), kspace.float(), held).mean()

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        B = batch.target.shape[0]
        loss = self.loss(self(batch), batch)
        self.log("train_loss", loss, prog_bar=True, batch_size=B)
        if self.hparams.ssl_weight > 0:
            ssl = self.selfsup_loss(batch)
            self.log("train_ssl", ssl, batch_size=B)
            loss = loss + self.hparams.ssl_weight * ssl
        return loss

    # -------------------------------------------------------------- evaluation
    def _eval_step(self, split: str, batch: Any, batch_idx: int) -> None:
        output = self(batch)
        has_target = bool((batch.max_value > 0).all())
        if has_target:
            self.log(f"{split}_loss", self.loss(output, batch), batch_size=output.shape[0], sync_dist=True)
            self._metrics[split].push(list(batch.fname), batch.slice_num, output.float(), batch.target.float())
        if split == "val" and batch_idx == 0 and self.hparams.log_images:
            self._log_images(output, batch)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step("val", batch, batch_idx)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step("test", batch, batch_idx)

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        return {"fname": list(batch.fname), "slice_num": batch.slice_num.cpu(), "output": self(batch).float().cpu()}

    def _epoch_end(self, split: str) -> None:
        per_volume = self._metrics[split].per_volume()
        self._metrics[split].reset()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[dict] = [None] * torch.distributed.get_world_size()  # type: ignore[list-item]
            torch.distributed.all_gather_object(gathered, per_volume)
            # Distributed fix: first process wins. A volume is scored by exactly one owning process,
            # except where there are fewer volumes than processes and a spare process re-runs a copy
            # (see FastMRIDataModule's volume sampler); the owner has the lower rank.
            per_volume = {}
            for part in gathered:
                for name, metrics in part.items():
                    per_volume.setdefault(name, metrics)
        if not per_volume:
            return
        summary = summarize(per_volume)
        self.last_metrics[split] = {**summary, "per_volume": per_volume}
        for name in ("SSIM", "PSNR", "NMSE"):
            self.log(f"{split}_{name.lower()}", float(summary[name]), prog_bar=name == "SSIM")

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test")

    def _log_images(self, output: Tensor, batch: Any) -> None:
        from lightning.pytorch.loggers import TensorBoardLogger

        maxval = batch.max_value[0].clamp_min(1e-12)
        recon, target = output[0] / maxval, batch.target[0] / maxval
        panel = torch.cat([recon, target, (recon - target).abs() * 5], dim=-1).clamp(0, 1)
        for logger in self.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("val/recon_target_error5x", panel[None].float(), self.global_step)

    # -------------------------------------------------------------- optimisation
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        scales = getattr(self.net, "LR_SCALES", {})
        groups: dict[float, list[nn.Parameter]] = {}
        for name, p in self.net.named_parameters():
            if p.requires_grad:
                groups.setdefault(scales.get(name, 1.0), []).append(p)
        opt = torch.optim.AdamW(
            [{"params": ps, "lr": hp.lr * scale} for scale, ps in groups.items()],
            lr=hp.lr,
            weight_decay=hp.weight_decay,
        )
        if hp.schedule_seconds > 0:
            sched = warmup_cosine_by_time(opt, float(hp.schedule_seconds), hp.warmup_fraction, hp.final_lr_ratio)
        else:
            total = max(1, int(self.trainer.estimated_stepping_batches))
            sched = warmup_cosine(opt, total, hp.warmup_fraction, hp.final_lr_ratio)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop the frozen backbone from Lightning checkpoints; keep its reference instead."""
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("net.backbone.")]:
            del state[key]
        backbone = getattr(self.net, "backbone", None)
        checkpoint["backbone_reference"] = getattr(backbone, "reference", None)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        backbone = getattr(self.net, "backbone", None)
        saved, current = checkpoint.get("backbone_reference"), getattr(backbone, "reference", None)
        if saved and current and saved.get("sha256") != current.get("sha256"):
            raise ValueError(
                f"checkpoint was trained with backbone {saved.get('name')} ({saved.get('weights')}, "
                f"sha256 {saved.get('sha256')}) but this model has {current.get('weights')} ({current.get('sha256')})"
            )
        missing = {k for k in self.state_dict() if not k.startswith("net.backbone.")} - set(checkpoint["state_dict"])
        if missing:
            raise ValueError(f"checkpoint lacks codec tensors: {', '.join(sorted(missing)[:5])}")
