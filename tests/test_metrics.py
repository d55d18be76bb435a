"""mrirecon.metrics reproduces fastmri.evaluate exactly."""

import argparse

import h5py
import numpy as np
import pytest
import torch
from fastmri import evaluate as fm_eval

from mrirecon.data import InvalidInputError
from mrirecon.metrics import VolumeMetrics, center_crop_to, evaluate_folder, nmse, psnr, ssim, volume_metrics


def random_pair(rng, shape=(4, 40, 40), noise=0.1):
    gt = rng.random(shape).astype(np.float32) * rng.uniform(1e-4, 1e-3)
    pred = (gt + noise * gt.max() * rng.standard_normal(shape)).astype(np.float32)
    return gt, np.abs(pred)


def test_functions_match_fastmri():
    rng = np.random.default_rng(0)
    for _ in range(3):
        gt, pred = random_pair(rng)
        assert nmse(gt, pred) == float(fm_eval.nmse(gt, pred))
        assert psnr(gt, pred) == float(fm_eval.psnr(gt, pred))
        assert ssim(gt, pred) == float(fm_eval.ssim(gt, pred)[0])
        assert ssim(gt, pred, maxval=2 * gt.max()) == float(fm_eval.ssim(gt, pred, 2 * gt.max())[0])
        assert ssim(torch.from_numpy(gt), torch.from_numpy(pred)) == ssim(gt, pred)
    gt, _ = random_pair(rng)
    assert nmse(gt, gt) == 0.0 and ssim(gt, gt) == pytest.approx(1.0)
    # PSNR definition: 10 log10(maxval^2 / MSE)
    pred = gt + np.float32(0.01 * gt.max())
    assert psnr(gt, pred) == pytest.approx(40.0, abs=1e-3)
    with pytest.raises(ValueError, match="shape"):
        ssim(gt, gt[:, :10])


def test_center_crop_to():
    x = np.arange(2 * 6 * 5).reshape(2, 6, 5)
    y = center_crop_to(x, (4, 3))
    assert y.shape == (2, 4, 3) and y[0, 0, 0] == x[0, 1, 1]
    with pytest.raises(ValueError, match="smaller"):
        center_crop_to(x, (8, 3))


def test_volume_metrics_accumulator():
    rng = np.random.default_rng(1)
    vols = {f"v{i}.h5": random_pair(rng, (3, 32, 32), noise=0.05 * (i + 1)) for i in range(3)}
    vm = VolumeMetrics()
    pushes = [(n, s) for n in vols for s in range(3)]
    for j in rng.permutation(len(pushes)):  # slices arrive in any order, predictions larger than targets
        n, s = pushes[j]
        big = np.pad(vols[n][1][s], ((2, 2), (3, 3)))
        vm.push([n], torch.tensor([s]), torch.from_numpy(big)[None], torch.from_numpy(vols[n][0][s])[None])
    per = vm.per_volume()
    for n, (gt, pred) in vols.items():
        assert per[n] == volume_metrics(gt, pred)
        assert per[n]["SSIM"] == float(fm_eval.ssim(gt, pred)[0])
    out = vm.compute()
    assert out["volumes"] == 3
    assert out["SSIM"] == pytest.approx(np.mean([float(fm_eval.ssim(*vols[n])[0]) for n in vols]), abs=1e-12)
    assert per["v0.h5"]["SSIM"] > per["v2.h5"]["SSIM"]


def test_evaluate_folder_matches_fastmri(tmp_path):
    rng = np.random.default_rng(2)
    tdir, pdir = tmp_path / "target", tmp_path / "pred"
    tdir.mkdir()
    pdir.mkdir()
    for i in range(4):
        gt, pred = random_pair(rng, (3, 48, 40), noise=0.03 * (i + 1))
        with h5py.File(tdir / f"f{i}.h5", "w") as hf:
            hf["reconstruction_rss"] = gt
            hf.attrs["acquisition"] = "AXT1" if i % 2 else "AXT2"
            hf.attrs["acceleration"] = 4
        with h5py.File(pdir / f"f{i}.h5", "w") as hf:
            hf["reconstruction"] = np.pad(pred, ((0, 0), (4, 4), (0, 0)))  # larger than target: cropped
    ours = evaluate_folder(pdir, tdir)
    # fastmri.evaluate crops the padded predictions the same way
    args = argparse.Namespace(target_path=tdir, predictions_path=pdir, acquisition=None, acceleration=None)
    ref = fm_eval.evaluate(args, "reconstruction_rss").means()
    assert ours["volumes"] == 4
    for name in ("NMSE", "PSNR", "SSIM"):
        # runstats accumulates the float32 per-volume values in float32: equal to float32 precision
        assert ours[name] == pytest.approx(float(np.asarray(ref[name]).reshape(-1)[0]), rel=1e-6)
    only = evaluate_folder(pdir, tdir, acquisition="AXT1")
    assert only["volumes"] == 2 and set(only["per_volume"]) == {"f1.h5", "f3.h5"}
    (pdir / "f0.h5").unlink()
    with pytest.raises(InvalidInputError, match="f0.h5"):
        evaluate_folder(pdir, tdir)
