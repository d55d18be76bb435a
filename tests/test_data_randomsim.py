"""The physics-randomised simulator: every factor exercised, ranges kept, seeded, and the shift split outside."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from mrirecon.data import anatomy, randomsim, validate_file
from mrirecon.data.randomsim import SIM_PRESETS, SimConfig, draw_physics
from mrirecon.data.synth import build_random_volume, generate_dataset, main
from mrirecon.physics import noise_correlation, random_noise_covariance, zero_filled_rss_np

TINY = SIM_PRESETS["random-tiny"]


@pytest.fixture(scope="module")
def random_root(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("rand") / "tiny", preset="random-tiny", seed=0, progress=False)


def test_acquisition_draws_cover_every_factor_within_range():
    cfg = SIM_PRESETS["random"]
    draws = [draw_physics(cfg, False, np.random.default_rng(i)) for i in range(300)]
    assert {d.coil_model for d in draws} == set(cfg.coil_models)
    assert {d.matrix for d in draws} == set(cfg.matrices)
    assert {d.num_coils for d in draws} >= {cfg.coils[0], cfg.coils[1]}  # both ends reached
    for d in draws:
        assert cfg.coils[0] <= d.num_coils <= cfg.coils[1]
        assert cfg.noise_correlation[0] <= d.noise_correlation <= cfg.noise_correlation[1]
        assert cfg.noise_latent[0] <= d.noise_latent <= cfg.noise_latent[1]
        assert cfg.snr[0] <= d.snr <= cfg.snr[1] and cfg.peak[0] <= d.peak <= cfg.peak[1]
        assert cfg.fov_mm[0] <= d.pixel_mm * max(d.matrix[2:]) <= cfg.fov_mm[1]
    snrs = np.array([d.snr for d in draws])
    assert snrs.min() < 15 and snrs.max() > 150  # a wide SNR range, log-uniform
    assert {m[0] // m[2] for m in cfg.matrices} == {1, 2}  # with and without readout oversampling


def test_physics_shift_lies_outside_the_training_ranges():
    cfg = SIM_PRESETS["random"]
    train_max_corr = 0.0
    for i in range(40):
        d = draw_physics(cfg, False, np.random.default_rng(i))
        cov = random_noise_covariance(d.num_coils, d.noise_correlation, np.random.default_rng(i), d.noise_latent)
        r = np.abs(noise_correlation(cov))[~np.eye(d.num_coils, dtype=bool)]
        train_max_corr = max(train_max_corr, r.max())
    for i in range(40):
        d = draw_physics(cfg, True, np.random.default_rng(i))
        assert d.coil_model not in cfg.coil_models and d.matrix not in cfg.matrices
        assert d.matrix[0] / d.matrix[2] not in {m[0] / m[2] for m in cfg.matrices}  # unseen oversampling
        cov = random_noise_covariance(d.num_coils, d.noise_correlation, np.random.default_rng(i), d.noise_latent)
        r = np.abs(noise_correlation(cov))[~np.eye(d.num_coils, dtype=bool)]
        assert r.min() > train_max_corr  # every coil pair more correlated than any training pair
    with pytest.raises(ValueError, match="coil models"):
        SimConfig(shift_coil_models=("loops",))
    with pytest.raises(ValueError, match="noise correlation"):
        SimConfig(shift_noise_correlation=(0.2, 0.5))
    with pytest.raises(ValueError, match="matrices"):
        SimConfig(shift_matrices=((640, 320, 320, 320),))


def test_volume_is_reproducible_per_seed_and_varies_with_it():
    a = build_random_volume("train", 0, TINY, 0)
    b = build_random_volume("train", 0, TINY, 0)
    np.testing.assert_array_equal(a.kspace, b.kspace)
    np.testing.assert_array_equal(a.target, b.target)
    assert a.extra_attrs == b.extra_attrs and a.header == b.header
    c = build_random_volume("train", 0, TINY, 1)
    assert a.extra_attrs != c.extra_attrs
    assert a.kspace.shape != c.kspace.shape or not np.array_equal(a.kspace, c.kspace)


@pytest.mark.parametrize("orientation", ["AX", "COR", "SAG"])
def test_every_orientation_gives_a_head_with_brain_and_scalp(orientation):
    cfg = replace(TINY, orientations=(orientation,), contrasts=("T1",), slab=0.0)
    draw = draw_physics(cfg, False, np.random.default_rng(0))
    image, draw = randomsim.mni_slices(cfg, draw, np.random.default_rng(1))
    assert draw.orientation == orientation and image.shape == (cfg.slices, *draw.matrix[:2])
    fg = image > 0.1 * image.max()
    assert 0.1 < fg.mean() < 0.9  # a head in the field of view, air around it


def test_object_blur_smooths_the_anatomy_by_the_drawn_width_and_is_off_by_default():
    sharp_cfg = replace(TINY, orientations=("AX",), contrasts=("T1",))
    draw = draw_physics(sharp_cfg, False, np.random.default_rng(0))
    sharp, sharp_draw = randomsim.mni_slices(sharp_cfg, draw, np.random.default_rng(1))
    blur_cfg = replace(sharp_cfg, object_fwhm_mm=(6.0, 8.0))
    blurred, blur_draw = randomsim.mni_slices(blur_cfg, draw, np.random.default_rng(1))
    assert sharp_draw.object_fwhm_mm == 0.0 and 6.0 <= blur_draw.object_fwhm_mm <= 8.0
    # the same anatomy (same draws before the blur), with less energy at high spatial frequencies
    high = lambda x: np.abs(np.fft.fftshift(np.fft.fft2(x), axes=(-2, -1)))[:, :4].sum()  # noqa: E731
    assert high(blurred) < 0.5 * high(sharp)
    assert blurred.sum() == pytest.approx(sharp.sum(), rel=0.05)  # blurring keeps the signal
    # off by default: no random number is drawn for it, so the shipped presets' volumes are unchanged
    assert SIM_PRESETS["random"].object_fwhm_mm == (0.0, 0.0) and SIM_PRESETS["random-resolution"].object_fwhm_mm[1] > 0
    again, _ = randomsim.mni_slices(sharp_cfg, draw, np.random.default_rng(1))
    np.testing.assert_array_equal(again, sharp)


def test_contrasts_order_the_tissues():
    t = {k: np.zeros((1, 1, 5), np.float32) for k in ("gm", "wm", "csf", "skull", "scalp")}
    for i, k in enumerate(("gm", "wm", "csf", "skull", "scalp")):
        t[k][..., i] = 1.0
    rng = np.random.default_rng(0)
    sig = {c: anatomy.contrast_image(t, c, rng)[0, 0] for c in anatomy.CONTRASTS}
    gm, wm, csf = 0, 1, 2
    assert sig["T1"][wm] > sig["T1"][gm] > sig["T1"][csf]
    assert sig["T2"][csf] > sig["T2"][gm] > sig["T2"][wm]
    assert sig["FLAIR"][gm] > sig["FLAIR"][wm] > sig["FLAIR"][csf]
    assert min(sig["PD"][:3]) > 0.5  # proton density: little contrast, all bright
    for c in sig:
        assert sig[c][3] < 0.15 < sig[c][4]  # dark skull, bright scalp


def test_elastic_deformation_bias_and_slab_move_the_anatomy():
    geo = anatomy.SliceGeometry("AX", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), 3.0, 0.0)
    plain = anatomy.sample_coordinates(geo, 2, (32, 32), 6.0, np.random.default_rng(0))
    bent = anatomy.sample_coordinates(replace(geo, elastic_mm=3.0), 2, (32, 32), 6.0, np.random.default_rng(0))
    moved = np.abs(bent - plain)
    assert 0.1 < moved.mean() < 10 and np.isfinite(bent).all()
    np.testing.assert_allclose(plain[2, 1] - plain[2, 0], 3.0, atol=1e-4)  # axial: slices step along z
    field = anatomy.bias_field((40, 30), 0.3, np.random.default_rng(0))
    assert np.abs(np.log(field)).max() == pytest.approx(0.3, rel=1e-5)


def test_noise_in_the_kspace_has_the_drawn_coil_covariance_and_snr():
    draw = draw_physics(TINY, True, np.random.default_rng(0))  # strongly correlated (shift) noise
    draw = replace(draw, num_coils=4, noise_latent=1, noise_correlation=0.5, snr=20.0)
    empty = np.zeros((2, *draw.matrix[:2]), np.float32)
    kspace, _ = randomsim.acquire(empty, draw, np.random.default_rng(3))
    flat = kspace.transpose(1, 0, 2, 3).reshape(4, -1)
    emp = flat @ flat.conj().T / flat.shape[1]
    r = np.abs(noise_correlation(emp))[~np.eye(4, dtype=bool)]
    np.testing.assert_allclose(r, 0.5, atol=0.06)
    # SNR: the same object at 4x the SNR has 1/4 of the noise
    obj = np.ones((1, *draw.matrix[:2]), np.float32)
    k_lo, _ = randomsim.acquire(obj, replace(draw, snr=10.0), np.random.default_rng(4))
    k_hi, _ = randomsim.acquire(obj, replace(draw, snr=40.0), np.random.default_rng(4))
    k_clean, _ = randomsim.acquire(obj, replace(draw, snr=1e9), np.random.default_rng(4))
    ratio = np.linalg.norm(k_lo - k_clean) / np.linalg.norm(k_hi - k_clean)
    assert ratio == pytest.approx(4.0, rel=0.02)


def test_dataset_layout_format_and_truth(random_root):
    counts = {d.name: len(list(d.glob("*.h5"))) for d in random_root.iterdir() if d.is_dir()}
    assert counts == {
        "train": 2,
        "val": 1,
        "test": 1,
        "test_format": 2,
        "test_truth": 2,
        "shift_test_format": 2,
        "shift_truth": 2,
        "physics_test_format": 2,
        "physics_truth": 2,
    }
    from mrirecon.data import read_target, read_volume

    for path in sorted(random_root.glob("*/*.h5")):
        if not path.parent.name.endswith("truth"):
            validate_file(path)  # raises on a bad file
        else:
            read_target(path)
    for path in sorted((random_root / "train").glob("*.h5")):
        v = read_volume(path)
        params = json.loads(v.attrs["synth_params"])
        assert tuple(params["matrix"]) in TINY.matrices
        assert v.kspace.shape[2:] == tuple(params["matrix"][:2]) and v.crop_size == tuple(params["matrix"][2:])
        np.testing.assert_allclose(zero_filled_rss_np(v.kspace, v.crop_size), v.target, rtol=1e-5, atol=1e-9)
    for path in sorted((random_root / "physics_test_format").glob("*.h5")):
        v = read_volume(path)
        params = json.loads(v.attrs["synth_params"])
        assert params["coil_model"] == "planar" and tuple(params["matrix"]) in TINY.shift_matrices
        truth, _ = read_target(random_root / "physics_truth" / path.name)
        assert truth.shape[1:] == tuple(params["matrix"][2:])
    shift = read_volume(random_root / "shift_test_format" / "synth_shift_000_acc4.h5")
    assert shift.attrs["acquisition"].startswith("dipy-")


def test_datamodule_batches_mixed_shapes_with_mixed_masks(random_root, tmp_path):
    from mrirecon.data.datamodule import FastMRIDataModule, ShapeBatchSampler

    root = tmp_path / "mixed"
    assert (
        main(["--out", str(root), "--preset", "random-tiny", "--train-volumes", "6", "--slices", "2", "--quiet"]) == 0
    )
    for split in ("val", "test", "shift", "physics"):
        assert len(list(root.glob(f"{split}*/*.h5"))) >= 1
    dm = FastMRIDataModule(
        root,
        synth=False,
        mask_type="mixed",
        accelerations=list(range(2, 13)),
        center_fractions=[0.04, 0.12],
        batch_size=2,
        partial_fourier_prob=0.3,
    )
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.batch_sampler, ShapeBatchSampler) and len(loader.batch_sampler.groups) > 1
    shapes = set()
    for batch in loader:
        shapes.add(tuple(batch.masked_kspace.shape[2:4]))
        assert batch.target.shape[-2:] == tuple(int(c[0]) for c in batch.crop_size)
        assert batch.mask.float().mean() < 0.75
    assert len(shapes) > 1
    sampler = loader.batch_sampler
    first = list(sampler)
    sampler.set_epoch(1)
    assert sorted(i for b in first for i in b) == sorted(i for b in sampler for i in b) == list(range(12))
    with pytest.raises(ValueError, match="mixed"):
        FastMRIDataModule(root, mask_type="random", partial_fourier_prob=0.5)


def test_cli_overrides_and_rejects_bad_counts(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["--out", str(out), "--preset", "random-tiny", "--train-volumes", "1", "--val-volumes", "0",
                 "--test-volumes", "0", "--shift-volumes", "0", "--physics-volumes", "0", "--slices", "1",
                 "--quiet"]) == 0  # fmt: skip
    files = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*.h5"))
    assert files == ["train/synth_train_000.h5"]
    meta = json.loads((out / ".synth.json").read_text())
    assert meta["n_train"] == 1 and meta["slices"] == 1 and meta["preset"] == "random-tiny"
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "p"), "--preset", "small", "--physics-volumes", "2"])
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "q"), "--preset", "random-tiny", "--slices", "0"])
    assert torch.get_num_threads() >= 1


def test_full_shift_splits_are_the_volumes_of_the_test_format_files(tmp_path):
    from mrirecon.data import read_target, read_volume

    out = tmp_path / "full"
    assert main(["--out", str(out), "--preset", "random-tiny", "--train-volumes", "0", "--val-volumes", "0",
                 "--test-volumes", "0", "--shift-volumes", "1", "--physics-volumes", "1", "--slices", "1",
                 "--full-shift-splits", "--quiet"]) == 0  # fmt: skip
    for split, name in (("shift", "synth_shift_000"), ("physics", "synth_physics_000")):
        full = read_volume(out / split / f"{name}.h5")
        masked = read_volume(out / f"{split}_test_format" / f"{name}_acc4.h5")
        truth, _ = read_target(out / f"{split}_truth" / f"{name}_acc4.h5")
        np.testing.assert_array_equal(full.target, truth)
        np.testing.assert_array_equal(full.kspace * masked.mask[None, None, None, :], masked.kspace)
    without = tmp_path / "plain"
    assert main(["--out", str(without), "--preset", "random-tiny", "--train-volumes", "0", "--val-volumes", "0",
                 "--test-volumes", "0", "--shift-volumes", "1", "--physics-volumes", "0", "--slices", "1",
                 "--quiet"]) == 0  # fmt: skip
    assert not (without / "shift").exists()


def test_train_physics_shift_trains_on_the_target_physics_only_when_asked():
    cfg = replace(TINY, train_physics="shift")
    for split in ("train", "val", "test"):
        vol = build_random_volume(split, 0, cfg, 0)
        draw = json.loads(vol.extra_attrs["synth_params"])
        assert draw["coil_model"] in cfg.shift_coil_models and tuple(draw["matrix"]) in cfg.shift_matrices
        default = json.loads(build_random_volume(split, 0, TINY, 0).extra_attrs["synth_params"])
        assert default["coil_model"] in TINY.coil_models
    physics = build_random_volume("physics", 0, cfg, 0)  # the test volumes themselves stay the same
    assert np.array_equal(physics.kspace, build_random_volume("physics", 0, TINY, 0).kspace)
    with pytest.raises(ValueError, match="train_physics"):
        replace(TINY, train_physics="planar")


def test_a_draw_below_zero_leaves_the_volume_sharp():
    """(-4, 4): about half of the volumes keep the template's sharpness, the rest are blurred by up to 4 mm."""
    cfg = replace(TINY, orientations=("AX",), contrasts=("T1",), object_fwhm_mm=(-4.0, 4.0))
    widths = []
    for seed in range(12):
        draw = draw_physics(cfg, False, np.random.default_rng(seed))
        _, drawn = randomsim.mni_slices(cfg, draw, np.random.default_rng(seed + 100))
        widths.append(drawn.object_fwhm_mm)
    assert all(0.0 <= w <= 4.0 for w in widths)
    assert 2 <= sum(w == 0.0 for w in widths) <= 10
    assert SIM_PRESETS["random-mixed-resolution"].object_fwhm_mm == (-4.0, 4.0)


def test_coarse_voxel_sources_average_then_interpolate_and_texture_roughens_them():
    """A 4 mm source keeps the anatomy's signal, loses its fine detail, and its texture shows at the voxel scale."""
    cfg = replace(TINY, orientations=("AX",), contrasts=("T1",))
    draw = draw_physics(cfg, False, np.random.default_rng(0))
    sharp, sharp_draw = randomsim.mni_slices(cfg, draw, np.random.default_rng(1))
    assert SIM_PRESETS["random"].source_voxel_mm == (0.0, 0.0) and sharp_draw.source_voxel_mm == 0.0
    plain_cfg = replace(cfg, source_voxel_mm=(4.0, 4.0), voxel_texture=(0.0, 0.0))
    plain, plain_draw = randomsim.mni_slices(plain_cfg, draw, np.random.default_rng(1))
    assert plain_draw.source_voxel_mm == 4.0 and plain_draw.voxel_texture == 0.0
    high = lambda x: np.abs(np.fft.fftshift(np.fft.fft2(x), axes=(-2, -1)))[:, :4].sum()  # noqa: E731
    assert high(plain) < 0.5 * high(sharp)
    assert plain.sum() == pytest.approx(sharp.sum(), rel=0.05)
    rough_cfg = replace(plain_cfg, voxel_texture=(0.2, 0.2))
    rough, rough_draw = randomsim.mni_slices(rough_cfg, draw, np.random.default_rng(1))
    assert rough_draw.voxel_texture == 0.2 and rough.min() >= 0
    assert np.abs(rough - plain).mean() > 0.02 * plain.mean()
    again, _ = randomsim.mni_slices(rough_cfg, draw, np.random.default_rng(1))
    np.testing.assert_array_equal(again, rough)  # deterministic per seed
    # a source finer than the pixel leaves the volume as it is
    fine, fine_draw = randomsim.mni_slices(replace(cfg, source_voxel_mm=(0.1, 0.1)), draw, np.random.default_rng(1))
    assert fine_draw.source_voxel_mm == 0.0
    np.testing.assert_array_equal(fine, sharp)


def test_shift_anatomy_from_the_users_files_replaces_dipys_and_a_bad_file_is_named(tmp_path, capsys):
    import nibabel as nib

    from mrirecon.data import read_volume

    yy, xx = np.mgrid[:48, :40]
    head = ((yy - 24) / 20) ** 2 + ((xx - 20) / 16) ** 2 < 1
    files = []
    for name, level in (("subject_a", 1.0), ("subject_b", 0.4)):
        vol = np.repeat((head * level * (1 + 0.5 * (xx > 20)))[:, :, None], 3, axis=2).astype(np.float32)
        files.append(str(tmp_path / f"{name}.nii.gz"))
        nib.save(nib.Nifti1Image(vol, np.diag([1.5, 1.5, 3.0, 1.0])), files[-1])
    args = ["--preset", "random-tiny", "--train-volumes", "0", "--val-volumes", "0", "--test-volumes", "0",
            "--shift-volumes", "2", "--physics-volumes", "0", "--slices", "2", "--quiet",
            "--shift-anatomy", *files]  # fmt: skip
    for out in ("a", "b"):
        assert main(["--out", str(tmp_path / out), *args]) == 0
    for index, name in enumerate(("subject_a", "subject_b")):
        fname = f"synth_shift_{index:03d}_acc4.h5"
        vols = [read_volume(tmp_path / out / "shift_test_format" / fname) for out in ("a", "b")]
        assert vols[0].attrs["acquisition"] == f"file-{name}"
        np.testing.assert_array_equal(vols[0].kspace, vols[1].kspace)  # deterministic per seed
    meta = json.loads((tmp_path / "a" / ".synth.json").read_text())
    assert meta["shift_anatomy"] == files
    bad = tmp_path / "notes.nii.gz"
    bad.write_text("not an image")
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "c"), *args[:-2], str(bad)])
    assert "notes.nii.gz" in capsys.readouterr().err and not (tmp_path / "c").exists()
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "d"), "--preset", "small", "--shift-anatomy", files[0]])
