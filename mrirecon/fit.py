"""Training and evaluation CLI: ``python -m mrirecon.fit {fit,validate,test,predict} --config codecs/tiny.yaml``.

LightningCLI over :class:`mrirecon.module.ReconModule` (any network, given by ``model.net.class_path``)
and :class:`mrirecon.data.datamodule.FastMRIDataModule`. After ``fit`` the best codec (by validation
SSIM) is exported as ``codec.safetensors`` + ``card.json`` and scored on the test split.

``--ckpt_path`` takes a local file only (no URL) and is always loaded with ``weights_only=True``
(``--weights_only false`` is refused); every ``class_path`` in its hyper-parameters must name a class
of this package, checked before anything is imported.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.cli import LightningCLI

from .callbacks import ExportCodec, plain_summary
from .checkpoint import UnsafeCheckpointError, check_class_path
from .data.datamodule import FastMRIDataModule
from .module import ReconModule

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def _class_paths(obj: Any) -> list[str]:
    """Every ``class_path`` / ``_class_path`` value nested in a hyper-parameter tree."""
    found: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("class_path", "_class_path") and isinstance(value, str):
                found.append(value)
            found.extend(_class_paths(value))
    elif isinstance(obj, list | tuple):
        for value in obj:
            found.extend(_class_paths(value))
    return found


def check_checkpoint(ckpt_path: str | Path | None, weights_only: bool | None) -> None:
    """Refuse URLs, ``weights_only=False`` and foreign class paths for a Lightning ``--ckpt_path``.

    Loads the file with ``torch.load(weights_only=True)`` (no arbitrary unpickling) to read its
    hyper-parameters. Names like ``last``/``best`` (resolved by Lightning) pass through."""
    if weights_only is False:
        raise UnsafeCheckpointError("--weights_only false is refused: checkpoints are loaded as plain tensors only")
    if ckpt_path is None:
        return
    text = str(ckpt_path)
    if _URL.match(text):
        raise UnsafeCheckpointError(f"--ckpt_path {text}: URLs are refused; download the file and pass its path")
    if not Path(text).is_file():
        return
    try:
        ckpt = torch.load(text, weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, ... for foreign content
        raise UnsafeCheckpointError(f"{text}: not a plain-tensor Lightning checkpoint ({err})") from None
    hparams = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    for class_path in _class_paths(hparams):
        check_class_path(class_path, text)


class ReconCLI(LightningCLI):
    """LightningCLI that exports the codec after ``fit`` and then tests it."""

    def _parse_ckpt_path(self) -> None:
        subcommand = self.config.get("subcommand")
        if subcommand:
            cfg = self.config[subcommand]
            try:
                check_checkpoint(cfg.get("ckpt_path"), cfg.get("weights_only"))
            except UnsafeCheckpointError as err:
                raise SystemExit(f"error: {err}") from None
            if "weights_only" in cfg:
                cfg["weights_only"] = True
        super()._parse_ckpt_path()

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
