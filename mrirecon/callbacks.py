"""Lightning callbacks of the training CLI."""

from __future__ import annotations

import datetime
import platform
import time
from pathlib import Path
from typing import Any

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
