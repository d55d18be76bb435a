"""The training layer: the learning-rate schedule, the export of Lightning's best checkpoint, the recipes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

from mrirecon.baselines import UNetBaseline, VarNetBaseline
from mrirecon.codecs import ReconModel
from mrirecon.codecs.checkpoint import save_codec
from mrirecon.training.callbacks import ExportCodec
from mrirecon.training.cli import TABLE_LABELS
from mrirecon.training.module import ReconModule
from mrirecon.training.schedule import warmup_cosine, warmup_cosine_by_time

CODECS = Path(__file__).parents[1] / "codecs"


def _rates(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    """The rate used at each of ``steps`` optimiser steps (Lightning steps the scheduler after each)."""
    opt = scheduler.optimizer
    rates = []
    for _ in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return rates


def _adamw(lr: float = 1e-3) -> torch.optim.AdamW:
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=lr)


@pytest.mark.parametrize(("total", "fraction", "floor"), [(40, 0.1, 0.05), (7, 0.05, 0.0), (3, 1.0, 0.5)])
def test_step_schedule_warms_up_linearly_then_follows_the_cosine_to_the_floor(total, fraction, floor):
    warm = max(1, int(total * fraction))
    span = max(1, total - warm)
    expected = [(s + 1) / warm if s < warm else floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (s - warm) / span))
                for s in range(total)]  # fmt: skip
    rates = _rates(warmup_cosine(_adamw(1e-3), total, fraction, floor), total + 5)
    assert rates[:total] == pytest.approx([1e-3 * e for e in expected], rel=1e-9, abs=1e-15)
    assert rates[warm - 1] == pytest.approx(1e-3) and rates[0] == pytest.approx(1e-3 / warm)
    # after the cosine (e.g. a resumed run with a longer budget) the rate stays at the floor
    assert rates[warm + span :] == pytest.approx([1e-3 * floor] * (total + 5 - warm - span), abs=1e-15)


def test_time_schedule_follows_the_elapsed_share_of_the_budget():
    now = [100.0]
    sched = warmup_cosine_by_time(_adamw(1e-3), 100.0, 0.1, 0.05, clock=lambda: now[0])
    factor = sched.lr_lambdas[0]
    for seconds, expected in [(0.0, 1e-3), (5.0, 0.5), (10.0, 1.0), (55.0, 0.525), (100.0, 0.05), (500.0, 0.05)]:
        now[0] = 100.0 + seconds
        assert factor(0) == pytest.approx(expected), seconds


def test_module_picks_the_step_or_time_schedule():
    module = ReconModule(UNetBaseline(chans=2, num_pool_layers=1), lr=2e-3, warmup_fraction=0.25)
    module._trainer = SimpleNamespace(estimated_stepping_batches=8)
    steps = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    assert _rates(steps, 3) == pytest.approx([1e-3, 2e-3, 2e-3])  # 2 warm-up steps, then the cosine's start
    timed = ReconModule(UNetBaseline(chans=2, num_pool_layers=1), schedule_seconds=60.0)
    timed._trainer = SimpleNamespace(estimated_stepping_batches=10**9)  # a time-bounded run's step count is moot
    assert isinstance(timed.configure_optimizers()["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.LambdaLR)


def test_a_learned_solve_weight_starts_from_a_codec_without_it_and_moves_at_its_own_rate(tmp_path):
    small = dict(num_cascades=1, chans=4, stem_chans=8, token_dim=16, sens_chans=4, sens_pools=2, pools=2)
    save_codec(tmp_path / "c", ReconModel(**small), {"class_path": "mrirecon.codecs.ReconModel", "init_args": small})
    solve = dict(final_solve_iterations=2, final_solve_maps="espirit", final_solve_trainable=True)
    module = ReconModule(ReconModel(**small, **solve), lr=1e-4, schedule_seconds=60.0, init_codec=str(tmp_path / "c"))
    assert module.net.final_solve_log_weight.item() == pytest.approx(math.log(0.1))
    groups = module.configure_optimizers()["optimizer"].param_groups
    rates = {id(p): g["initial_lr"] for g in groups for p in g["params"]}
    assert rates[id(module.net.final_solve_log_weight)] == pytest.approx(1e-2)
    assert rates[id(module.net.decoder.cascades[0].dc_weight)] == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="missing"):
        ReconModule(ReconModel(**{**small, "num_cascades": 2}), init_codec=str(tmp_path / "c"))


def test_export_writes_the_checkpoint_lightning_chose_not_the_last_weights(tmp_path):
    module = ReconModule(UNetBaseline(chans=2, num_pool_layers=1))
    best = {k: v.clone() for k, v in module.state_dict().items()}
    val = {"volumes": 1, "SSIM": 0.9, "epoch": 3}
    torch.save({"state_dict": best, ExportCodec.CHECKPOINT_KEY: val}, tmp_path / "best.ckpt")
    with torch.no_grad():  # training went on after the best epoch
        for p in module.parameters():
            p.add_(1.0)
    keeper = ModelCheckpoint(monitor="val_ssim", mode="max")
    keeper.best_model_path = str(tmp_path / "best.ckpt")
    export = ExportCodec(dtype="float32")
    trainer = L.Trainer(callbacks=[keeper, export], logger=False, default_root_dir=tmp_path, enable_progress_bar=False)
    export.setup(trainer, module, "fit")
    export.on_fit_end(trainer, module)
    from safetensors.torch import load_file

    stored = load_file(tmp_path / "codec" / "codec.safetensors")  # default folder: <default_root_dir>/codec
    assert stored and all(torch.equal(t, best[f"net.{k}"]) for k, t in stored.items())
    card = json.loads((tmp_path / "codec" / "card.json").read_text())
    assert card["metrics"]["val"] == val and card["training"]["hparams"]["lr"] == module.hparams.lr
    # a best checkpoint that is gone (a resumed run's old folder): a warning, and the last weights
    keeper.best_model_path = str(tmp_path / "gone.ckpt")
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    with pytest.warns(UserWarning, match="gone.ckpt is missing"):
        export.on_fit_end(trainer, module)
    stored = load_file(tmp_path / "codec" / "codec.safetensors")
    last = module.state_dict()
    assert all(torch.equal(t, last[f"net.{k}"]) for k, t in stored.items())
    assert not all(torch.equal(t, best[f"net.{k}"]) for k, t in stored.items())
    # the export needs a checkpoint callback that keeps the highest val_ssim
    lone = L.Trainer(callbacks=[ModelCheckpoint(), export], logger=False, default_root_dir=tmp_path)
    with pytest.raises(ValueError, match="monitor='val_ssim'"):
        export.setup(lone, module, "fit")


def test_fit_command_adds_the_best_checkpoint_an_export_reads():
    from jsonargparse import Namespace

    from mrirecon.training.cli import add_best_checkpoint

    export = Namespace(class_path="mrirecon.training.callbacks.ExportCodec", init_args=Namespace(dirpath=None))
    trainer = Namespace(callbacks=[export], enable_checkpointing=None)
    add_best_checkpoint(trainer)
    added = trainer.callbacks[-1]
    assert added.class_path == "lightning.pytorch.callbacks.ModelCheckpoint"
    assert (added.init_args.monitor, added.init_args.mode) == ("val_ssim", "max")
    add_best_checkpoint(trainer)
    assert len(trainer.callbacks) == 2  # a recipe's own ModelCheckpoint(monitor=val_ssim, mode=max) is kept
    no_export = Namespace(callbacks=[], enable_checkpointing=False)
    add_best_checkpoint(no_export)
    assert no_export.callbacks == []
    with pytest.raises(SystemExit, match="enable_checkpointing"):
        add_best_checkpoint(Namespace(callbacks=[export], enable_checkpointing=False))


def test_closing_table_names_each_learned_baseline_by_its_class():
    # a trained E2E-VarNet or U-Net must not be printed as `ours`: the labels follow the classes' names
    assert {VarNetBaseline.__name__: "e2e-varnet", UNetBaseline.__name__: "unet"} == TABLE_LABELS


# (recipe chain, run folder): the commands of the Makefile, codecs/train_default.sh and results/reproduce_cpu.py
RECIPES = [
    (["tiny"], "runs/tiny"),
    (["unet"], "runs/unet"),
    (["varnet"], "runs/varnet"),
    (["default"], "runs/default"),
    (["default", "varnet_default"], "runs/varnet_default"),
    (["default", "unet_default"], "runs/unet_default"),
    (["nirvana-1.3B"], "runs/nirvana-1.3B"),
]


def _leaves(tree: object, prefix: str = "") -> dict[str, object]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {k: v for key, sub in tree.items() for k, v in _leaves(sub, f"{prefix}.{key}" if prefix else key).items()}


@pytest.mark.parametrize(("chain", "root"), RECIPES, ids=["+".join(c) for c, _ in RECIPES])
def test_overlays_on_the_base_recipe_name_their_run_folder_and_repeat_nothing(chain, root):
    merged = _leaves(yaml.safe_load((CODECS / "base.yaml").read_text()))
    for name in chain:
        overlay = _leaves(yaml.safe_load((CODECS / f"{name}.yaml").read_text()))
        # a new class_path starts its init_args afresh: those are not repeats
        swapped = [
            k.removesuffix("class_path") for k in overlay if k.endswith(".class_path") and merged.get(k) != overlay[k]
        ]
        merged = {k: v for k, v in merged.items() if not any(k.startswith(f"{s}init_args.") for s in swapped)}
        repeated = sorted(k for k, v in overlay.items() if k in merged and merged[k] == v)
        assert not repeated, f"{name}.yaml repeats {repeated}"
        merged.update(overlay)
    assert merged["trainer.default_root_dir"] == root and "model.net.class_path" in merged
    # the loggers write into the run folder; the codec goes to <run folder>/codec (ExportCodec's default)
    assert {logger["init_args"]["save_dir"] for logger in merged["trainer.logger"]} == {root}
    exports = [c for c in merged["trainer.callbacks"] if c["class_path"].endswith("ExportCodec")]
    assert len(exports) == 1 and "dirpath" not in exports[0].get("init_args", {})


# codecs/continue_default.sh with a stand-in python that records the fit's arguments instead of training
RECORDING_PYTHON = """#!/bin/sh
case "$1 $2" in
  "-m mrirecon.fit") shift 2; echo "$@" > "$LEG_ARGS" ;;
  "-m mrirecon.data.synth") ;;
  *) exec "$REAL_PYTHON" "$@" ;;
esac
"""


def _leg(tmp_path: Path, **env: str) -> tuple[int, list[str], str]:
    python = tmp_path / "python"
    python.write_text(RECORDING_PYTHON)
    python.chmod(0o755)
    args = tmp_path / "fit_args.txt"
    full_env = {**os.environ, "PYTHON": str(python), "REAL_PYTHON": sys.executable, "LEG_ARGS": str(args), **env}
    run = subprocess.run(
        ["bash", str(CODECS / "continue_default.sh"), str(tmp_path / "out")],
        cwd=tmp_path,
        env=full_env,
        capture_output=True,
        text=True,
    )
    return run.returncode, args.read_text().split() if args.exists() else [], run.stderr


def _option(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == name]


def test_baseline_legs_build_each_network_with_its_own_overlay(tmp_path):
    codec = tmp_path / "varnet_codec"
    codec.mkdir()
    (codec / "card.json").write_text(json.dumps({"net": {"init_args": {"num_cascades": 12}}}))
    status, args, _ = _leg(tmp_path, NET="varnet", INIT=str(codec))
    assert status == 0
    assert _option(args, "--config")[-1] == "codecs/varnet_default.yaml"
    assert _option(args, "--model.net.init_args.num_cascades") == ["12"]  # from the card it continues
    assert _option(args, "--model.init_codec") == [str(codec)]

    status, args, _ = _leg(tmp_path, NET="unet", INIT="none")
    assert status == 0
    assert _option(args, "--config")[-1] == "codecs/unet_default.yaml"
    assert not _option(args, "--model.net.init_args.num_cascades")  # the U-Net has no cascades
    assert not _option(args, "--model.init_codec")


def test_a_leg_deletes_its_simulated_data_unless_asked_to_keep_it(tmp_path):
    """Two legs' training volumes filled a 64 GiB device disk, so each leg removes data/NAME once its fit is over."""
    data = tmp_path / "data" / "u1"
    for keep, kept in (("0", False), ("1", True)):
        (data / "train").mkdir(parents=True, exist_ok=True)
        status, args, _ = _leg(tmp_path, NAME="u1", NET="unet", INIT="none", KEEP_DATA=keep)
        assert status == 0 and _option(args, "--data.data_path") == ["data/u1"]
        assert data.exists() == kept


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NET": "unet", "INIT": "none", "CASCADES": "12"}, "no cascades"),
        ({"NET": "unet"}, "needs INIT"),
        ({"NET": "resnet", "INIT": "none"}, "only varnet or unet"),
    ],
)
def test_a_baseline_leg_that_cannot_be_built_stops_before_simulating(tmp_path, env, message):
    status, args, stderr = _leg(tmp_path, **env)
    assert status == 2 and message in stderr and not args
    assert not (tmp_path / "out").exists()
