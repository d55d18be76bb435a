"""Lightning callbacks of the training CLI."""

from __future__ import annotations

import datetime
import platform
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import lightning as L
import torch

from .checkpoint import net_state, save_codec
from .module import ReconModule


def plain_summary(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if summary is None else {k: v for k, v in summary.items() if k != "per_volume"}


class ExportCodec(L.Callback):
    """Keeps the codec tensors of the best validation SSIM and writes them with a card when fit ends.

    Args:
        dirpath: export folder (default: ``<log dir>/codec``).
        dtype: storage dtype of the exported tensors (``float32`` or ``float16``).
    """

    def __init__(self, dirpath: str | None = None, dtype: str = "float32") -> None:
        self.dirpath = dirpath
        self.dtype = getattr(torch, dtype)
        self.best: float = float("-inf")
        self.best_state: dict[str, torch.Tensor] | None = None
        self.card: dict[str, Any] = {"metrics": {}}
        self.net_config: dict[str, Any] = {}
        self._t0 = time.time()

    def on_fit_start(self, trainer: L.Trainer, pl_module: ReconModule) -> None:
        self._t0 = time.time()

    def on_validation_end(self, trainer: L.Trainer, pl_module: ReconModule) -> None:
        if trainer.sanity_checking or "val" not in pl_module.last_metrics:
            return
        ssim = float(pl_module.last_metrics["val"]["SSIM"])
        if ssim > self.best:
            self.best, self.best_state = ssim, net_state(pl_module.net)
            self.card["metrics"]["val"] = {
                **plain_summary(pl_module.last_metrics["val"]),
                "epoch": trainer.current_epoch,
            }

    def export_dir(self, trainer: L.Trainer) -> Path:
        return Path(self.dirpath) if self.dirpath else Path(trainer.log_dir or ".") / "codec"

    def on_fit_end(self, trainer: L.Trainer, pl_module: ReconModule) -> None:
        if self.best_state is not None:  # evaluate and export the best codec, not the last one
            pl_module.net.load_state_dict(self.best_state, strict=False)
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

    def __init__(self, every_n_steps: int = 10, stream: TextIO | None = None) -> None:
        self.every_n_steps = max(1, int(every_n_steps))
        self.stream = stream
        self._t0 = time.perf_counter()
        self._last = (0, self._t0)

    def _print(self, text: str) -> None:
        print(text, file=self.stream if self.stream is not None else sys.stderr, flush=True)

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
