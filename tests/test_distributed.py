"""Distributed training on CPU: Lightning's DDP with 2 processes over gloo, and the strategy overlays.

The 2-process run goes through ``python -m mrirecon.fit`` in a subprocess (Lightning's ``ddp`` relaunches
the command line for the second process, as under torchrun or SLURM). Its checkpoint and exported codec
are then checked against 1-process runs in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file

from mrirecon.codecs.backbones import state_hash
from mrirecon.training.cli import ReconCLI
from mrirecon.training.cli import main as fit_main

ROOT = Path(__file__).parents[1]
SMALL = dict(num_cascades=1, chans=4, stem_chans=8, token_dim=16, sens_chans=4, sens_pools=2, pools=2, patch_size=16)
VAL_VOLUMES, TEST_VOLUMES = 3, 1  # 3 volumes over 2 processes (uneven); 1 volume (a process without one)


class RankMetrics(L.Callback):
    """Writes the metrics every process sees after each validation to ``<dirpath>/rank<r>.json``."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        volumes = sorted(pl_module.last_metrics.get("val", {}).get("per_volume", {}))
        record = {"metrics": metrics, "volumes": volumes, "world_size": trainer.world_size}
        (self.dirpath / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: on 2 shared cores a second OpenMP thread makes these small nets far slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data32(tmp_path_factory) -> Path:
    """A very small simulated set (32x32, 4 coils, 2 slices a volume) with 3 val and 1 test volumes."""
    from mrirecon.data.synth import Preset, generate_dataset

    preset = Preset((32, 32), 1, (4, 4), 2, 2, VAL_VOLUMES, TEST_VOLUMES, 1)
    return generate_dataset(tmp_path_factory.mktemp("synth") / "d32", preset, seed=0, progress=False)


def _args(root: Path, data: Path, extra: list[str]) -> list[str]:
    args = [
        f"--config={ROOT / 'codecs' / 'base.yaml'}",
        f"--config={ROOT / 'codecs' / 'tiny.yaml'}",
        f"--data.data_path={data}",
        "--data.num_workers=0",
        "--data.batch_size=1",
        f"--trainer.default_root_dir={root}",
        "--trainer.accelerator=cpu",
        "--trainer.logger=false",
        "--trainer.callbacks=[]",
        "--trainer.limit_train_batches=2",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    return args + [f"--model.net.init_args.{k}={v}" for k, v in SMALL.items()] + extra


def _callbacks(run: Path) -> list[str]:
    return [
        "--trainer.callbacks+=mrirecon.training.callbacks.ExportCodec",
        f"--trainer.callbacks.dirpath={run / 'codec'}",
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        f"--trainer.callbacks.dirpath={run / 'ckpt'}",
        "--trainer.callbacks.monitor=val_ssim",  # every process must see the gathered val_ssim
        "--trainer.callbacks.mode=max",
        "--trainer.callbacks.save_last=true",
        "--trainer.callbacks+=test_distributed.RankMetrics",
        f"--trainer.callbacks.dirpath={run / 'ranks'}",
    ]


def _run_cli(args: list[str]) -> None:
    """``python -m mrirecon.fit`` in a subprocess, one torch thread per process (2 cores on CI)."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "mrirecon.fit", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


@pytest.fixture(scope="module")
def ddp_run(data32, tmp_path_factory) -> Path:
    """Epoch 0 in 1 process (here), then epoch 1 resumed from its checkpoint by 2-process DDP (gloo) through
    the CLI with the ddp overlay, which then exports the codec and scores the test split."""
    run = tmp_path_factory.mktemp("ddp2")
    first = ["--trainer.max_epochs=1", "--trainer.limit_val_batches=0"]
    first += ["--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint", f"--trainer.callbacks.dirpath={run}"]
    fit_main(["fit", *_args(run / "one", data32, first), "--trainer.callbacks.save_last=true"])
    assert torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 2
    ddp = [f"--config={ROOT / 'codecs' / 'strategy' / 'ddp.yaml'}", "--trainer.accelerator=cpu", "--trainer.devices=2"]
    _run_cli(
        [
            "fit",
            *_args(run, data32, ddp),
            "--trainer.max_epochs=2",
            *_callbacks(run),
            f"--ckpt_path={run / 'last.ckpt'}",
        ]
    )
    return run


def test_ddp_validation_counts_every_volume_once_and_matches_one_process(ddp_run, data32, tmp_path):
    card = json.loads((ddp_run / "codec" / "card.json").read_text())
    # the 2-process run resumed the 1-process checkpoint: epoch 1, steps 2 + 2 (each process 2 batches)
    assert card["training"]["devices"] == 2 and card["training"]["epochs"] == 2 and card["training"]["steps"] == 4
    assert card["metrics"]["val"]["epoch"] == 1
    val, test = card["metrics"]["val"], card["metrics"]["test"]
    assert val["volumes"] == VAL_VOLUMES == len(list((data32 / "val").glob("*.h5")))
    assert test["volumes"] == TEST_VOLUMES  # the process without a test volume did not add one
    # both processes logged the same gathered metrics (ModelCheckpoint(monitor=val_ssim) ran on both)
    ranks = [json.loads((ddp_run / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1] and ranks[0]["world_size"] == 2 and len(ranks[0]["volumes"]) == VAL_VOLUMES
    assert ranks[0]["metrics"]["val_ssim"] == pytest.approx(val["SSIM"], abs=1e-6)
    # the exported codec is the checkpointed one (one epoch: best = last)
    last = ddp_run / "ckpt" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)  # our own file
    assert ckpt["state_dict"] and not any(k.startswith("net.backbone.") for k in ckpt["state_dict"])
    codec = load_file(ddp_run / "codec" / "codec.safetensors")
    assert codec and all(torch.equal(t, ckpt["state_dict"][f"net.{k}"]) for k, t in codec.items())
    # a 1-process validation of the same checkpoint gives the same per-volume-averaged metrics
    single = fit_main(["validate", *_args(tmp_path, data32, []), f"--ckpt_path={last}"])
    one = single.model.last_metrics["val"]
    assert one["volumes"] == VAL_VOLUMES
    for name in ("SSIM", "PSNR", "NMSE"):
        assert one[name] == pytest.approx(val[name], rel=1e-6, abs=1e-6), name


def test_two_process_checkpoint_resumes_in_one_process_and_vice_versa(ddp_run, data32, tmp_path):
    last = ddp_run / "ckpt" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 4 and saved["epoch"] == 1
    args = _args(tmp_path, data32, ["--trainer.max_epochs=3", "--trainer.limit_val_batches=0"])
    cli = fit_main(["fit", *args, f"--ckpt_path={last}"])
    assert cli.trainer.world_size == 1
    assert cli.trainer.current_epoch == 3 and cli.trainer.global_step == 6
    # the frozen backbone was rebuilt from its reference (not read from the checkpoint) and did not train
    backbone = cli.model.net.backbone
    assert state_hash(backbone.body) == backbone.reference["sha256"] == saved["backbone_reference"]["sha256"]


class _InspectCLI(ReconCLI):
    """Parses and instantiates everything but the Trainer (FSDP needs CUDA to build one)."""

    def instantiate_trainer(self, **kwargs):  # noqa: ANN201 - returns nothing on purpose
        return None


def test_strategy_overlays_parse_and_build():
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    from mrirecon.codecs.backbones import FrozenBackbone
    from mrirecon.data.datamodule import FastMRIDataModule
    from mrirecon.nirvana.layers import NirvanaBlock
    from mrirecon.training.module import ReconModule

    small = [f"--model.net.init_args.{k}={v}" for k, v in SMALL.items()]
    built = {}
    for name in ("ddp", "fsdp"):
        args = [
            f"--config={ROOT / 'codecs' / 'base.yaml'}",
            f"--config={ROOT / 'codecs' / 'tiny.yaml'}",
            f"--config={ROOT / 'codecs' / 'strategy' / f'{name}.yaml'}",
        ]
        cli = _InspectCLI(ReconModule, FastMRIDataModule, args=args + small, run=False)
        trainer = cli.config_init.trainer
        assert trainer.devices == "auto" and trainer.use_distributed_sampler and cli.datamodule.volume_sampler
        built[name] = trainer.strategy
    ddp = built["ddp"]
    assert type(ddp) is DDPStrategy and ddp._ddp_kwargs["find_unused_parameters"] is False
    fsdp = built["fsdp"]
    assert type(fsdp) is FSDPStrategy and fsdp._state_dict_type == "full"
    assert fsdp.sharding_strategy.name == "FULL_SHARD" and fsdp.kwargs["use_orig_params"] is True
    policy = fsdp.kwargs["auto_wrap_policy"]
    assert isinstance(policy, ModuleWrapPolicy) and set(policy._module_classes) == {NirvanaBlock, FrozenBackbone}


@pytest.mark.parametrize("world", [2, 4])
def test_volume_sampler_gives_every_volume_to_one_process(data32, world):
    """3 volumes over 2 processes (uneven) and over 4 (one spare process, which repeats a volume of process
    ``rank % 3`` so that every process runs the same number of steps)."""
    from mrirecon.data.datamodule import FastMRIDataModule, _LightningVolumeSampler

    ds = FastMRIDataModule(data32)._dataset("val", train=False)
    names = [str(s[0].name) for s in ds.raw_samples]
    samplers = [_LightningVolumeSampler(ds, num_replicas=world, rank=r) for r in range(world)]
    owned = [sorted({names[i] for i in s}) for s in samplers]
    steps = 2 * -(-VAL_VOLUMES // world)  # 2 slices a volume; the busiest process sets the steps
    assert all(len(list(s)) == len(s) == steps for s in samplers)
    assert sorted(v for part in owned[: min(world, VAL_VOLUMES)] for v in part) == sorted(set(names))
    for r in range(VAL_VOLUMES, world):  # spare processes mirror an owner's batches exactly
        assert list(samplers[r]) == list(samplers[r % VAL_VOLUMES])


def test_fit_on_a_set_without_a_test_split_exports_the_codec_and_says_it_is_not_tested(data32, tmp_path, capsys):
    import shutil

    data = tmp_path / "no-test"
    for split in ("train", "val"):
        shutil.copytree(data32 / split, data / split)
    run = tmp_path / "run"
    extra = ["--trainer.max_epochs=1", "--trainer.limit_val_batches=0"]
    extra += ["--trainer.callbacks+=mrirecon.training.callbacks.ExportCodec", f"--trainer.callbacks.dirpath={run}"]
    fit_main(["fit", *_args(tmp_path, data, extra)])
    card = json.loads((run / "card.json").read_text())
    assert card["training"]["steps"] == 2 and "test" not in card["metrics"]
    assert f"no 'test' split under {data}: the codec is not tested" in capsys.readouterr().err


def test_test_tables_name_the_files_that_could_not_be_scored_and_do_not_crash(tmp_path, capsys):
    """A test split whose files cannot be read (here: not HDF5) leaves a note per file and no table."""
    from mrirecon.training.cli import print_test_tables

    test_dir = tmp_path / "test"
    test_dir.mkdir()
    (test_dir / "broken.h5").write_bytes(b"not an HDF5 file")
    print_test_tables(test_dir, Path("codecs/default"), [4], "equispaced_fraction", "cpu")
    err = capsys.readouterr().err
    assert "broken.h5" in err and "no per-acceleration test tables" in err
