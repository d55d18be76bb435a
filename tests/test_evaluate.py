"""The evaluation harness on the tiny simulated dataset: tables, fastMRI scores, masks, bad files."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mrirecon.api import Reconstructor
from mrirecon.baselines import espirit_maps, zero_filled
from mrirecon.codecs.checkpoint import save_codec
from mrirecon.data import read_target, read_volume
from mrirecon.evaluate import MethodSpec, UsageError, evaluate, load_cases, main, parse_method, shared_espirit
from mrirecon.metrics import center_crop_to, volume_metrics

TINY_CODEC = dict(
    backbone_config="tiny", num_cascades=1, chans=4, stem_chans=8, token_dim=16, sens_chans=4, patch_size=16
)


@pytest.fixture(scope="module")
def codec(tmp_path_factory) -> Path:
    import torch

    from mrirecon.codecs import ReconModel

    torch.manual_seed(0)
    net = ReconModel(**TINY_CODEC)
    return save_codec(
        tmp_path_factory.mktemp("codec") / "tiny",
        net,
        {"class_path": "mrirecon.codecs.ReconModel", "init_args": TINY_CODEC},
    )


def _zero_filled_volume(masked: np.ndarray, crop: tuple[int, int]) -> np.ndarray:
    return center_crop_to(np.stack([zero_filled(k) for k in masked]), crop)


@pytest.fixture(scope="module")
def fully_sampled(synth_root, codec, tmp_path_factory):
    """The CLI on the fully sampled test split at 4x: zero-filled, SENSE (default and crop 0), the codec."""
    out = tmp_path_factory.mktemp("eval") / "full"
    argv = [
        "--data",
        str(synth_root / "test"),
        "--accelerations",
        "4",
        "--max-slices-per-volume",
        "1",
        "--workers",
        "1",
    ]
    argv += ["--device", "cpu"]
    argv += ["--method", "zero-filled", "--method", "sense", "--method", "sense0=sense:crop=0"]
    argv += ["--method", f"ours={codec}", "--out", str(out)]
    rc = main(argv)
    return rc, out


def test_cli_tables_and_rows(fully_sampled):
    rc, out = fully_sampled
    assert rc == 0
    summary = pd.read_csv(out / "summary.csv")
    per_volume = pd.read_csv(out / "per_volume.csv")
    assert list(summary["method"]) == ["zero-filled", "sense", "sense0", "ours"]
    assert (summary["acceleration"] == 4).all() and (summary["volumes"] == 2).all() and (summary["slices"] == 2).all()
    assert len(per_volume) == 8 and set(per_volume["volume"]) == {"synth_test_000.h5", "synth_test_001.h5"}
    assert (summary["s_per_slice"] > 0).all()
    # the ESPIRiT share is the same for both SENSE variants (one calibration) and part of their time
    maps = summary.set_index("method")["maps_s_per_slice"]
    assert maps["sense"] == maps["sense0"] > 0 and maps["zero-filled"] == 0
    assert (summary.set_index("method").loc[["sense", "sense0"], "s_per_slice"] > maps["sense"]).all()
    md = (out / "summary.md").read_text()
    assert "## 4x" in md and "## 8x" not in md
    assert "4x: 2 volumes / 2 slices" in md and "machine:" in md
    assert md.count("| ours |") == 1 and "| zero-filled | 0.0" in md
    assert "* ours: `" in md and "mrirecon.codecs.ReconModel" in md
    assert "* sense0: `mrirecon.baselines.sense` with crop=0" in md


def test_scores_match_direct_fastmri_protocol(fully_sampled, synth_root, codec):
    """Zero-filled and the codec scored by the harness = volume_metrics of the same reconstructions,
    with the mask the Reconstructor draws for the file (fastMRI's per-file seed)."""
    _, out = fully_sampled
    per_volume = pd.read_csv(out / "per_volume.csv").set_index(["method", "volume"])
    rec = Reconstructor.from_checkpoint(codec, device="cpu")
    for path in sorted((synth_root / "test").glob("*.h5")):
        full = read_volume(path)  # the harness ran the central slice (index 0 of 2)
        volume = dataclasses.replace(full, kspace=full.kspace[:1], target=full.target[:1])
        masked, mask, _ = rec.prepare(volume, "equispaced_fraction", 4)
        direct = volume_metrics(volume.target, _zero_filled_volume(masked, volume.crop_size))
        harness = per_volume.loc[("zero-filled", path.name)]
        for name in ("NMSE", "PSNR", "SSIM"):
            assert harness[name] == pytest.approx(direct[name], rel=1e-5)
        api = rec.reconstruct_volume(volume, acceleration=4).metrics
        for name in ("NMSE", "PSNR", "SSIM"):
            assert per_volume.loc[("ours", path.name), name] == pytest.approx(api[name], rel=1e-4)


def test_sense_beats_zero_filled_at_4x(fully_sampled):
    _, out = fully_sampled
    s = pd.read_csv(out / "summary.csv").set_index("method")
    zf, sense, sense0 = s.loc["zero-filled"], s.loc["sense"], s.loc["sense0"]
    assert zf["SSIM"] < 0.7 and zf["PSNR"] < 24  # the 4x task is not trivial
    # ESPIRiT maps kept in the background (crop 0): SSIM and PSNR above zero-filled
    assert sense0["SSIM"] > zf["SSIM"] + 0.04 and sense0["PSNR"] > zf["PSNR"] + 2
    # the default crop 0.9 zeroes the noisy background: far lower error, but SSIM below zero-filled here
    assert sense["PSNR"] > zf["PSNR"] + 5 and sense["NMSE"] < 0.3 * zf["NMSE"]
    assert sense["SSIM"] < sense0["SSIM"]


def test_test_format_with_truth(synth_root, codec):
    """Stored masks and accelerations; ground truth from the truth folder; evaluate() as a function."""
    summary = evaluate(
        synth_root / "test_format",
        ["zero-filled", MethodSpec("ours", checkpoint=codec)],
        accelerations=[4, 8],
        truth=synth_root / "test_truth",
        max_volumes=1,
        device="cpu",
    )
    assert list(zip(summary["method"], summary["acceleration"])) == [
        ("zero-filled", 4),
        ("ours", 4),
        ("zero-filled", 8),
        ("ours", 8),
    ]
    assert (summary["volumes"] == 1).all() and summary.attrs["errors"] == []
    per_volume = summary.attrs["per_volume"].set_index(["method", "volume"])
    for acc in (4, 8):
        name = f"synth_test_000_acc{acc}.h5"
        volume = read_volume(synth_root / "test_format" / name)
        truth, _ = read_target(synth_root / "test_truth" / name)
        direct = volume_metrics(truth, _zero_filled_volume(volume.kspace, truth.shape[-2:]))
        for metric, value in direct.items():
            assert per_volume.loc[("zero-filled", name), metric] == pytest.approx(value, rel=1e-6)
    ssim = summary.set_index(["method", "acceleration"])["SSIM"]
    assert ssim[("zero-filled", 8)] < ssim[("zero-filled", 4)] - 0.05


def test_bad_file_and_missing_truth_are_skipped(synth_root, tmp_path, capsys):
    data, truth = tmp_path / "data", tmp_path / "truth"
    data.mkdir()
    truth.mkdir()
    good = "synth_test_000_acc4.h5"
    shutil.copy(synth_root / "test_format" / good, data / good)
    shutil.copy(synth_root / "test_truth" / good, truth / good)
    shutil.copy(synth_root / "test_format" / "synth_test_001_acc4.h5", data / "synth_test_001_acc4.h5")  # no truth
    (data / "corrupt_acc4.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    out = tmp_path / "res" / "bad"
    rc = main(["--data", str(data), "--truth", str(truth), "--method", "zero-filled", "--out", str(out)])
    assert rc == 1
    err = capsys.readouterr().err.splitlines()
    skipped = [line for line in err if line.startswith("SKIPPED")]
    assert len(skipped) == 2
    assert any(str(data / "corrupt_acc4.h5") in line for line in skipped)
    missing = next(line for line in skipped if "synth_test_001" in line)
    assert str(truth / "synth_test_001_acc4.h5") in missing and str(data / "synth_test_001_acc4.h5") in missing
    per_volume = pd.read_csv(out / "per_volume.csv")
    assert list(per_volume["volume"]) == [good]
    assert "Skipped:" in (out / "summary.md").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["per_volume.csv", "summary.csv", "summary.md"]  # a folder
    assert any(line.startswith("evaluate: file ") for line in err)  # progress lines off a terminal
    # a test-format folder without --truth is a usage error
    assert main(["--data", str(data), "--method", "zero-filled", "--out", str(out)]) == 2


def test_shared_espirit_reproduces_per_method_maps(synth_root):
    """One calibration, both crops = espirit_maps on the scaled slice as sense/l1_wavelet compute it."""
    case = load_cases(synth_root / "test" / "synth_test_000.h5", None, [4], "equispaced_fraction", 1)[0]
    k, mask, nlf = case.masked[0], case.mask, case.num_low_frequencies
    shared = shared_espirit(k, mask, nlf, [0.9, 0.0])
    scaled = (k / zero_filled(k).max()).astype(np.complex64)
    for crop in (0.9, 0.0):
        np.testing.assert_array_equal(shared[crop], espirit_maps(scaled, nlf, crop=crop))
    assert (shared[0.9] == 0).mean() > (shared[0.0] == 0).mean() + 0.1  # crop 0.9 zeroes the background


def test_parse_method(synth_root):
    assert parse_method("sense") == MethodSpec("sense", base="sense")
    assert parse_method("s0=sense:crop=0,lamda=0.01") == MethodSpec("s0", "sense", None, {"crop": 0, "lamda": 0.01})
    off = parse_method("ours-off=codecs/default:trigger=off")
    assert off.checkpoint == Path("codecs/default") and off.overrides == {"trigger": "off"} and not off.is_classical
    for bad in ("grappa", "x=", "zero-filled:crop=1", "a=b:c", "sense:maps=1"):
        with pytest.raises(UsageError):
            parse_method(bad)
    with pytest.raises(UsageError, match="cannot load"):
        evaluate(synth_root / "test", ["x=/nonexistent/codec"])


def test_hostile_files_are_skipped_and_nothing_outside_is_read(synth_root, tmp_path, capsys):
    import h5py

    data = tmp_path / "data"
    data.mkdir()
    good = sorted((synth_root / "test").glob("*.h5"))[0]
    shutil.copy(good, data / good.name)
    with h5py.File(data / "link.h5", "w") as hf:  # would read another (valid) scan if followed
        hf["kspace"] = h5py.ExternalLink(str(good), "/kspace")
    with h5py.File(data / "tiny.h5", "w") as hf:
        hf["kspace"] = np.ones((1, 1, 8, 8), np.complex64)
    out = tmp_path / "res" / "hostile"
    rc = main(["--data", str(data), "--method", "zero-filled", "--accelerations", "4", "--out", str(out)])
    skipped = [line for line in capsys.readouterr().err.splitlines() if line.startswith("SKIPPED")]
    assert rc == 1 and len(skipped) == 2
    assert any("link.h5" in line and "link to another file" in line for line in skipped)
    assert any("tiny.h5" in line and "too small" in line for line in skipped)
    assert list(pd.read_csv(out / "per_volume.csv")["volume"]) == [good.name]
