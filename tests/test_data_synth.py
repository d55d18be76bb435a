"""The simulated dataset: format, determinism, and that the reconstruction task is real."""

import hashlib
import json

import numpy as np
import pytest
import sigpy.mri as mr
from fastmri.data.transforms import center_crop

from mrirecon.data import read_target, read_volume, validate_file
from mrirecon.data.synth import PRESETS, build_volume, ensure_dataset, load_mni, main
from mrirecon.metrics import summarize, volume_metrics
from mrirecon.physics import zero_filled_rss_np


def digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.glob("*/*.h5"))}


def test_layout_and_format(synth_root):
    counts = {d.name: len(list(d.glob("*.h5"))) for d in synth_root.iterdir() if d.is_dir()}
    assert counts == {
        "train": 2,
        "val": 1,
        "test": 2,
        "test_format": 4,
        "test_truth": 4,
        "shift_test_format": 2,
        "shift_truth": 2,
    }
    info = validate_file(synth_root / "train" / "synth_train_000.h5")
    assert info.kspace_shape == (2, 8, 128, 128) and info.crop_size == (128, 128)
    v = read_volume(synth_root / "train" / "synth_train_000.h5")
    assert v.kspace.dtype == np.complex64 and v.max_value == pytest.approx(float(v.target.max()))
    assert 2e-4 < v.max_value < 2e-3  # fastMRI-like magnitudes
    assert {"max", "norm", "acquisition", "patient_id"} <= set(v.attrs)
    assert v.attrs["norm"] == pytest.approx(float(np.linalg.norm(v.target)), rel=1e-5)
    assert "encodedSpace" in v.header_xml and "reconSpace" in v.header_xml
    # fully sampled target == RSS of the stored k-space
    np.testing.assert_allclose(zero_filled_rss_np(v.kspace, v.crop_size), v.target, rtol=1e-5, atol=1e-9)
    for acc in (4, 8):
        t = validate_file(synth_root / "test_format" / f"synth_test_000_acc{acc}.h5")
        assert t.is_test_format and t.acceleration == acc
        assert abs(t.mask.mean() - 1 / acc) < 0.02
        truth, attrs = read_target(synth_root / "test_truth" / f"synth_test_000_acc{acc}.h5")
        np.testing.assert_array_equal(truth, read_volume(synth_root / "test" / "synth_test_000.h5").target)
        assert attrs["acceleration"] == acc
    s = read_volume(synth_root / "shift_test_format" / "synth_shift_000_acc4.h5")
    assert 12 <= s.kspace.shape[1] <= 16 and s.kspace.shape[2:] == (256, 128) and s.crop_size == (128, 128)


def test_regenerates_bit_identically(synth_root, tmp_path, capsys):
    out = tmp_path / "again"
    assert main(["--out", str(out), "--preset", "tiny", "--seed", "0", "--quiet"]) == 0
    assert digest(out) == digest(synth_root)
    assert json.loads((out / ".synth.json").read_text())["seed"] == 0
    # ensure_dataset leaves a finished dataset alone
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/*.h5")}
    ensure_dataset(out, preset="tiny", seed=0, progress=False)
    assert before == {p: p.stat().st_mtime_ns for p in out.glob("*/*.h5")}
    assert main(["--out", str(out), "--preset", "tiny", "--quiet"]) == 0
    assert "already there" in capsys.readouterr().out


def test_seed_and_augmentation_vary_the_anatomy():
    mni = load_mni()
    cfg = PRESETS["tiny"]
    a = build_volume("train", 0, cfg, 0, mni, None).target
    b = build_volume("train", 0, cfg, 1, mni, None).target
    c = build_volume("train", 1, cfg, 0, mni, None).target
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    corr = np.corrcoef((a / a.max()).ravel(), (c / c.max()).ravel())[0, 1]
    assert corr < 0.9  # not one picture repeated


def sense(kspace, mask, nlf):
    """ESPIRiT maps from the fully sampled centre, then Tikhonov-regularised CG-SENSE: |x| [H,W]."""
    maps = mr.app.EspiritCalib(kspace, calib_width=nlf, crop=0.0, show_pbar=False).run()
    weights = np.broadcast_to(mask, kspace.shape).astype(np.float32)
    x = mr.app.SenseRecon(kspace, maps, lamda=0.01, weights=weights, max_iter=30, show_pbar=False).run()
    return np.abs(x).astype(np.float32)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # PSNR of the exact fully sampled recon is inf
def test_4x_task_is_hard_and_sense_beats_zero_filled(synth_root):
    zf, sn, full = {}, {}, {}
    for path in sorted((synth_root / "test_format").glob("*_acc4.h5")):
        v = read_volume(path)
        truth, _ = read_target(synth_root / "test_truth" / path.name)
        truth = center_crop(truth, v.crop_size)
        zf[path.name] = volume_metrics(truth, zero_filled_rss_np(v.kspace, v.crop_size))
        recon = np.stack([sense(k, v.mask, v.num_low_frequencies) for k in v.kspace])
        sn[path.name] = volume_metrics(truth, recon)
        fully = read_volume(synth_root / "test" / path.name.replace("_acc4", ""))
        full[path.name] = volume_metrics(truth, zero_filled_rss_np(fully.kspace, fully.crop_size))
    zf, sn, full = summarize(zf), summarize(sn), summarize(full)
    print(f"\n4x SSIM: zero-filled {zf['SSIM']:.3f}  SENSE {sn['SSIM']:.3f}  fully sampled {full['SSIM']:.3f}")
    assert full["SSIM"] > 0.999 and full["NMSE"] < 1e-9
    assert zf["SSIM"] < 0.8 and zf["PSNR"] < 26  # clearly below fully sampled
    assert sn["SSIM"] > zf["SSIM"] + 0.05 and sn["PSNR"] > zf["PSNR"] + 2 and sn["NMSE"] < zf["NMSE"]
