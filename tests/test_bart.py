"""BART as a baseline: its file format, the `bart` program on tiny slices, and the harness method."""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest
from test_baselines import equispaced_mask, simulate_kspace, ssim

from mrirecon.baselines import bart_available, bart_espirit, bart_pics, read_cfl, write_cfl, zero_filled
from mrirecon.baselines.bart import BartError

needs_bart = pytest.mark.skipif(bart_available() is None, reason="the `bart` program is not installed")


def test_cfl_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((5, 4, 1, 3)) + 1j * rng.standard_normal((5, 4, 1, 3))).astype(np.complex64)
    write_cfl(tmp_path / "x", x)
    assert (tmp_path / "x.hdr").read_text().splitlines()[:2] == ["# Dimensions", "5 4 1 3"]
    # column-major: the first dimension varies fastest on disk
    on_disk = np.fromfile(tmp_path / "x.cfl", dtype=np.complex64)
    np.testing.assert_array_equal(on_disk[:5], x[:, 0, 0, 0])
    np.testing.assert_array_equal(read_cfl(tmp_path / "x"), x)
    write_cfl(tmp_path / "y", x[..., :1])  # trailing singleton dimensions are dropped on reading
    assert read_cfl(tmp_path / "y").shape == (5, 4)


def test_cfl_size_mismatch_is_an_error(tmp_path):
    write_cfl(tmp_path / "x", np.ones((2, 3), np.complex64))
    (tmp_path / "x.hdr").write_text("# Dimensions\n2 4\n")
    with pytest.raises(BartError, match="6 values"):
        read_cfl(tmp_path / "x")


@needs_bart
def test_cfl_is_what_bart_reads_and_writes(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4).astype(np.complex64) * (1 + 2j)
    write_cfl(tmp_path / "x", x)
    subprocess.run(["bart", "scale", "2", "x", "y"], cwd=tmp_path, check=True, capture_output=True)
    np.testing.assert_allclose(read_cfl(tmp_path / "y"), 2 * x)
    subprocess.run(["bart", "transpose", "0", "1", "x", "t"], cwd=tmp_path, check=True, capture_output=True)
    np.testing.assert_array_equal(read_cfl(tmp_path / "t"), x.T)


@pytest.fixture(scope="module")
def slice4x() -> dict:
    kspace = simulate_kspace(n=64, coils=6, oversample=2)  # [6, 128, 64], readout 2x oversampled
    mask, nlf = equispaced_mask(64, 4, 0.16)
    return {"target": zero_filled(kspace), "kspace": kspace * mask[None, None, :], "mask": mask, "nlf": nlf}


@needs_bart
def test_bart_pics_beats_zero_filled_on_oversampled_slice(slice4x):
    s = slice4x
    out = bart_pics(s["kspace"], s["mask"], s["nlf"], lamda=0.01)
    assert out.shape == (128, 64) and out.dtype == np.float32 and np.isfinite(out).all()
    # intensity scale of the RSS target (the harness divides by the zero-filled maximum and scales back)
    assert 0.8 < out.max() / s["target"].max() < 1.25
    assert ssim(s["target"], out) > ssim(s["target"], zero_filled(s["kspace"])) + 0.05


@needs_bart
def test_bart_crop_equals_ecalib_crop(slice4x, tmp_path):
    """One calibration serves every crop: maps * (eigenvalue > c) is what `ecalib -c c` returns."""
    s = slice4x
    maps, ev = bart_espirit(s["kspace"], s["mask"], s["nlf"])
    assert maps.shape == (6, 128, 64) and ev.shape == (128, 64)
    scaled = s["kspace"] / zero_filled(s["kspace"]).max()
    write_cfl(tmp_path / "k", np.transpose(scaled, (1, 2, 0))[:, :, None, :])
    region, kernel = s["nlf"], min(6, max(2, s["nlf"] // 2))
    args = ["bart", "ecalib", "-m1", "-c", "0.8", "-r", f"24:{region}:1", "-k", f"{kernel}:{kernel}:1", "k", "m"]
    subprocess.run(args, cwd=tmp_path, check=True, capture_output=True)
    cropped = np.transpose(read_cfl(tmp_path / "m").reshape(128, 64, 6), (2, 0, 1))
    np.testing.assert_allclose(cropped, maps * (ev > 0.8)[None], atol=1e-6)
    assert 0 < (ev > 0.8).mean() < 1


def test_missing_bart_is_one_clear_error(slice4x, monkeypatch):
    monkeypatch.setattr("mrirecon.baselines.bart.shutil.which", lambda name: None)
    with pytest.raises(BartError, match="not installed"):
        bart_pics(slice4x["kspace"], slice4x["mask"], slice4x["nlf"])


@needs_bart
def test_harness_runs_bart_on_tiny_file(synth_root, tmp_path):
    from mrirecon.evaluate import main

    out = tmp_path / "bart"
    argv = ["--data", str(synth_root / "test_format"), "--truth", str(synth_root / "test_truth")]
    argv += ["--accelerations", "4", "8", "--max-volumes", "1", "--max-slices-per-volume", "1", "--workers", "2"]
    argv += ["--method", "zero-filled", "--method", "bart", "--method", "bart-alt=bart:lamda=0.03,crop=0.5"]
    assert main([*argv, "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv").set_index(["method", "acceleration"])
    assert sorted(summary.index.get_level_values("acceleration").unique()) == [4, 8]
    assert summary.loc[("bart-alt", 4), "lamda"] == 0.03 and summary.loc[("bart-alt", 4), "crop"] == 0.5
    assert summary.loc[("bart", 4), "lamda"] == 0.001  # the function default when not tuned
    assert (summary.loc["bart", "maps_s_per_slice"] > 0).all()
    assert (summary.loc["bart", "SSIM"] > summary.loc["zero-filled", "SSIM"]).all()
    md = (out / "summary.md").read_text()
    assert "bart ecalib -m1" in md and "BART v" in md
