"""Training and evaluation CLI: ``python -m mrirecon.fit {fit,validate,test,predict} --config codecs/tiny.yaml``.

LightningCLI over :class:`mrirecon.module.ReconModule` (any network, given by ``model.net.class_path``)
and :class:`mrirecon.data.datamodule.FastMRIDataModule`. After ``fit`` the best codec (by validation
SSIM) is exported as ``codec.safetensors`` + ``card.json`` and scored on the test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.cli import LightningCLI

from .callbacks import ExportCodec, plain_summary
from .data.datamodule import FastMRIDataModule
from .module import ReconModule


class ReconCLI(LightningCLI):
    """LightningCLI that exports the codec after ``fit`` and then tests it."""

    def before_fit(self) -> None:
        cfg = self.config[self.subcommand]
        for cb in self.trainer.callbacks:
            if isinstance(cb, ExportCodec):
                cb.net_config = cfg.model.net.as_dict()
                cb.card["data"] = cfg.data.as_dict()

    def after_fit(self) -> None:
        export = next((cb for cb in self.trainer.callbacks if isinstance(cb, ExportCodec)), None)
        if self.trainer.interrupted or export is None:
            return
        self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)
        test = self.model.last_metrics.get("test")
        if test:
            export.card["metrics"]["test"] = plain_summary(test)
            export.write(self.trainer, self.model)
            if self.trainer.is_global_zero:
                _print_table(test, export.export_dir(self.trainer))


def _print_table(summary: dict[str, Any], where: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Test split, {summary['volumes']} volumes (fastMRI protocol)")
    for col in ("volume", "SSIM", "PSNR", "NMSE"):
        table.add_column(col)
    for name, m in summary["per_volume"].items():
        table.add_row(name, f"{m['SSIM']:.4f}", f"{m['PSNR']:.2f}", f"{m['NMSE']:.4f}")
    table.add_row("mean", f"{summary['SSIM']:.4f}", f"{summary['PSNR']:.2f}", f"{summary['NMSE']:.4f}", style="bold")
    Console().print(table)
    Console().print(f"codec exported to {where}")


def main(args: list[str] | None = None) -> ReconCLI:
    torch.set_float32_matmul_precision("high")
    return ReconCLI(
        ReconModule,
        FastMRIDataModule,
        args=args,
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":
    main()
