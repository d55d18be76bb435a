"""The ``fit`` command: ``python -m mrirecon.fit {fit,validate,test,predict} --config codecs/base.yaml
--config codecs/tiny.yaml`` (a base recipe, then a model overlay; later files override earlier ones).

LightningCLI over :class:`mrirecon.training.module.ReconModule` (any network, given by ``model.net.class_path``)
and :class:`mrirecon.data.datamodule.FastMRIDataModule`. After ``fit`` the codec of Lightning's best checkpoint
(by validation SSIM) is exported as ``codec.safetensors`` + ``card.json`` and scored on the test split, then
the test split is scored once per acceleration with the evaluation harness, zero-filled beside the codec (the
table the README's numbers come from).

Output that is not a terminal (``make fit > log 2>&1``) gets one progress line every
``log_every_n_steps`` steps instead of the rich bar. The loggers of one run share one version folder.

``--ckpt_path`` takes a local file only (no URL) and is always loaded with ``weights_only=True``
(``--weights_only false`` is refused); every ``class_path`` in its hyper-parameters must name a class
of this package, checked before anything is imported.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities.warnings import PossibleUserWarning

from ..codecs.checkpoint import UnsafeCheckpointError, check_class_path
from ..data.datamodule import FastMRIDataModule
from ..progress import is_terminal
from .callbacks import BEST_MODE, BEST_MONITOR, ExportCodec, plain_summary
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

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        trainer = cfg.get("trainer")
        if trainer is None:
            return
        use_line_progress(trainer, is_terminal(sys.stderr))
        share_logger_version(trainer)
        add_best_checkpoint(trainer)

    def before_fit(self) -> None:
        cfg = self.config[self.subcommand]
        backbone = getattr(self.model.net, "backbone", None)
        if backbone is not None and self.trainer.is_global_zero:
            print(
                f"note: the backbone ({sum(1 for _ in backbone.modules())} modules) is frozen and stays in eval mode "
                "on purpose; only the codecs train",
                file=sys.stderr,
            )
        for cb in self.trainer.callbacks:
            if isinstance(cb, ExportCodec):
                cb.net_config = cfg.model.net.as_dict()
                cb.card["data"] = cfg.data.as_dict()

    def after_fit(self) -> None:
        export = next((cb for cb in self.trainer.callbacks if isinstance(cb, ExportCodec)), None)
        if self.trainer.interrupted or export is None:
            return
        data = self.datamodule
        if not (data.data_path / data.test_split).is_dir():  # e.g. a training set made without a test split
            if self.trainer.is_global_zero:
                print(
                    f"note: no '{data.test_split}' split under {data.data_path}: the codec is not tested",
                    file=sys.stderr,
                )
            return
        self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)
        test = self.model.last_metrics.get("test")
        if test:
            export.card["metrics"]["test"] = plain_summary(test)
            export.write(self.trainer, self.model)
            if self.trainer.is_global_zero:
                data = self.config[self.subcommand].data
                print_test_tables(
                    Path(data.data_path) / data.get("test_split", "test"),
                    export.export_dir(self.trainer),
                    data.get("accelerations") or [4, 8],
                    data.get("mask_type", "equispaced_fraction"),
                    str(self.model.device),
                    TABLE_LABELS.get(type(self.model.net).__name__, "ours"),
                )


def use_line_progress(trainer: Namespace, terminal: bool) -> None:
    """Off a terminal: the progress bar callbacks give way to :class:`~mrirecon.training.callbacks.LineProgress`
    (a line every ``log_every_n_steps`` steps). Nothing changes when progress is switched off."""
    if terminal or trainer.get("enable_progress_bar") is False:
        return
    callbacks = [c for c in (trainer.get("callbacks") or []) if not _class_path(c).endswith("ProgressBar")]
    every = trainer.get("log_every_n_steps") or 50
    callbacks.append(
        Namespace(class_path="mrirecon.training.callbacks.LineProgress", init_args=Namespace(every_n_steps=every))
    )
    trainer.callbacks = callbacks
    trainer.enable_progress_bar = False


def add_best_checkpoint(trainer: Namespace) -> None:
    """With an :class:`ExportCodec` and no ``ModelCheckpoint`` keeping the highest ``val_ssim``, add one (the
    export reads its best checkpoint). Refuses ``enable_checkpointing false`` next to an export."""
    callbacks = list(trainer.get("callbacks") or [])
    if not any(_class_path(c).endswith("ExportCodec") for c in callbacks):
        return
    if trainer.get("enable_checkpointing") is False:
        raise SystemExit(
            "error: ExportCodec exports Lightning's best checkpoint; drop trainer.enable_checkpointing false"
        )
    for c in callbacks:
        args = (c.get("init_args") if isinstance(c, dict | Namespace) else None) or {}
        keeps_best = args.get("monitor") == BEST_MONITOR and args.get("mode", "min") == BEST_MODE
        if _class_path(c).endswith("ModelCheckpoint") and keeps_best:
            return
    best = Namespace(
        class_path="lightning.pytorch.callbacks.ModelCheckpoint",
        init_args=Namespace(monitor=BEST_MONITOR, mode=BEST_MODE),
    )
    trainer.callbacks = [*callbacks, best]


def _class_path(item: Any) -> str:
    return str(item.get("class_path", "")) if isinstance(item, dict | Namespace) else type(item).__name__


def share_logger_version(trainer: Namespace) -> None:
    """Give every logger of a run writing to the same ``save_dir/name`` one version number (without it
    the CSV logs land in ``version_N`` and the TensorBoard logs in ``version_N+1``)."""
    loggers = trainer.get("logger")
    if not isinstance(loggers, list):
        return
    groups: dict[Path, list[Namespace]] = {}
    for logger in loggers:
        args = logger.get("init_args") if isinstance(logger, dict | Namespace) else None
        if args is None or args.get("version") is not None or args.get("save_dir") is None:
            continue
        groups.setdefault(Path(args.save_dir) / str(args.get("name") or "lightning_logs"), []).append(args)
    for folder, group in groups.items():
        if len(group) < 2:
            continue
        taken = [int(p.name.split("_")[1]) for p in folder.glob("version_*") if p.name.split("_")[1].isdigit()]
        version = max(taken, default=-1) + 1
        for args in group:
            args.version = version


# the closing table's name of a trained learned baseline; our codecs are `ours`
TABLE_LABELS = {"VarNetBaseline": "e2e-varnet", "UNetBaseline": "unet"}


def print_test_tables(
    test_dir: Path, codec: Path, accelerations: list[int], mask_type: str, device: str, label: str = "ours"
) -> None:
    """The exported codec (as ``label``) and zero-filled on every test file at each acceleration, one table per
    acceleration (the evaluation harness's protocol and layout)."""
    from rich.console import Console

    from ..data import MASK_TYPES
    from ..evaluate import UsageError, evaluate, header_line, print_tables

    if mask_type not in MASK_TYPES:  # e.g. "mixed" training masks: score with the harness default
        mask_type = "equispaced_fraction"
    try:
        summary = evaluate(
            test_dir,
            ["zero-filled", f"{label}={codec}"],
            accelerations,
            mask_type=mask_type,
            device=device,
            on_error=lambda msg: print(f"note: test table: {msg}", file=sys.stderr),
        )
    except UsageError as err:  # e.g. a test split of test-format files without their truth folder
        print(f"note: no per-acceleration test tables ({err})", file=sys.stderr)
        return
    if summary.empty:
        print(f"note: no per-acceleration test tables (no file of {test_dir} could be scored)", file=sys.stderr)
        return
    print_tables(summary, header_line(summary, test_dir, None, device))
    Console().print(f"codec exported to {codec}")


def main(args: list[str] | None = None) -> ReconCLI:
    torch.set_float32_matmul_precision("high")
    # The frozen backbone keeps itself in eval mode (FrozenBackbone.train); before_fit says so in one line.
    warnings.filterwarnings("ignore", r"Found \d+ module\(s\) in eval mode", PossibleUserWarning)
    return ReconCLI(
        ReconModule,
        FastMRIDataModule,
        args=args,
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":
    main()
