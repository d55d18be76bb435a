"""Lightning callbacks of the training CLI."""

from __future__ import annotations

import datetime
import platform
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn

from ..codecs.checkpoint import save_codec
from .module import ReconModule


def plain_summary(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if summary is None else {k: v for k, v in summary.items() if k != "per_volume"}


BEST_MONITOR, BEST_MODE = "val_ssim", "max"


def best_checkpoint(trainer: L.Trainer) -> ModelCheckpoint | None:
    """The trainer's ``ModelCheckpoint`` that keeps the highest ``val_ssim`` (the first, if several)."""
    return next(
        (cb for cb in trainer.checkpoint_callbacks if cb.monitor == BEST_MONITOR and cb.mode == BEST_MODE), None
    )


class ExportCodec(L.Callback):
    """Writes the codec of Lightning's best checkpoint (highest ``val_ssim``) with a card when fit ends.

    The best checkpoint is the ``best_model_path`` of the trainer's ``ModelCheckpoint(monitor="val_ssim",
    mode="max")`` (the fit command adds one when a recipe has none); its weights are loaded back into the
    module before the export, so the test split is scored with them too. Every checkpoint also carries
    the validation summary it was saved with, which becomes the card's ``metrics.val``.

    Args:
        dirpath: export folder (default: ``<trainer.default_root_dir>/codec``).
        dtype: storage dtype of the exported tensors (``float32`` or ``float16``).
    """

    CHECKPOINT_KEY = "export_val_metrics"

    def __init__(self, dirpath: str | None = None, dtype: str = "float32") -> None:
        self.dirpath = dirpath
        self.dtype = getattr(torch, dtype)
        self.card: dict[str, Any] = {"metrics": {}}
        self.net_config: dict[str, Any] = {}
        self._t0 = time.time()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and best_checkpoint(trainer) is None:
            raise ValueError(
                f"ExportCodec exports the best checkpoint: add a ModelCheckpoint(monitor={BEST_MONITOR!r}, "
                f"mode={BEST_MODE!r}) callback (and keep trainer.enable_checkpointing on)"
            )

    def on_fit_start(self, trainer: L.Trainer, pl_module: ReconModule) -> None:
        self._t0 = time.time()

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: ReconModule, checkpoint: dict[str, Any]) -> None:
        if "val" in pl_module.last_metrics:
            val = {**plain_summary(pl_module.last_metrics["val"]), "epoch": trainer.current_epoch}
            checkpoint[self.CHECKPOINT_KEY] = val

    def export_dir(self, trainer: L.Trainer) -> Path:
        return Path(self.dirpath) if self.dirpath else Path(trainer.default_root_dir) / "codec"

    def on_fit_end(self, trainer: L.Trainer, pl_module: ReconModule) -> None:
        best = best_checkpoint(trainer)
        path = best.best_model_path if best is not None else ""
        if path and not Path(path).is_file():  # e.g. a resumed run whose earlier checkpoint folder is gone
            rank_zero_warn(f"ExportCodec: the best checkpoint {path} is missing; exporting the last weights")
        elif path:  # without one (no validation ran) the last weights are exported
            ckpt = torch.load(path, map_location="cpu", weights_only=True)  # this run's own file
            pl_module.load_state_dict(ckpt["state_dict"], strict=False)  # the frozen backbone is not stored
            if self.CHECKPOINT_KEY in ckpt:
                self.card["metrics"]["val"] = ckpt[self.CHECKPOINT_KEY]
        self.card["training"] = {
            "epochs": trainer.current_epoch,
            "steps": trainer.global_step,
            "precision": str(trainer.precision),
            "devices": trainer.num_devices,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu",
            "seconds": round(time.time() - self._t0, 1),
            "date": datetime.date.today().isoformat(),
            "torch": torch.__version__,
            "hparams": dict(pl_module.hparams),
        }
        self.write(trainer, pl_module)

    def write(self, trainer: L.Trainer, pl_module: ReconModule) -> None:
        if trainer.is_global_zero:
            save_codec(self.export_dir(trainer), pl_module.net, self.net_config, dtype=self.dtype, **self.card)


class LineProgress(L.Callback):
    """Lightning progress for log files: every ``every_n_steps`` optimiser steps one line
    ``epoch E/N step S/T loss L, X it/s, elapsed M:SS``, plus one line per finished validation."""

    def __init__(self, every_n_steps: int = 10) -> None:
        self.every_n_steps = max(1, int(every_n_steps))
        self._t0 = time.perf_counter()
        self._last = (0, self._t0)

    def _print(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def _elapsed(self) -> str:
        seconds = int(time.perf_counter() - self._t0)
        return f"{seconds // 60}:{seconds % 60:02d}"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()
        self._last = (trainer.global_step, self._t0)
        total = trainer.estimated_stepping_batches
        self._print(f"training: {trainer.max_epochs} epochs, {total} steps; a line every {self.every_n_steps} steps")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        step = trainer.global_step
        if step == 0 or step % self.every_n_steps:
            return
        now = time.perf_counter()
        rate = (step - self._last[0]) / max(now - self._last[1], 1e-9)
        self._last = (step, now)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        loss_text = f"loss {float(loss):.4f}, " if loss is not None else ""
        self._print(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} step {step}/{trainer.estimated_stepping_batches} "
            f"{loss_text}{rate:.2f} it/s, elapsed {self._elapsed()}"
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val")}
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
        self._print(f"validation after epoch {trainer.current_epoch + 1}: {shown or 'done'}, elapsed {self._elapsed()}")
