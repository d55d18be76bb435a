"""The forward model's identities: FFT unitarity, adjointness of A, data consistency, masks, noise."""

import subprocess
import sys

import fastmri
import numpy as np
import pytest
import torch

from mrirecon import physics


def cplx(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, 2, generator=g, dtype=torch.float64)


def inner(a, b):
    """<a, b> = sum conj(a) b for [...,2] complex tensors -> complex scalar."""
    a, b = torch.view_as_complex(a.contiguous()), torch.view_as_complex(b.contiguous())
    return complex((a.conj() * b).sum())


@pytest.mark.parametrize("shape", [(3, 10, 7), (2, 8, 6), (2, 6, 6), (1, 9, 9)])
def test_fft_is_unitary_and_matches_numpy(shape):
    x = cplx(*shape)
    k = physics.fft2c(x)
    assert torch.linalg.vector_norm(k) == pytest.approx(float(torch.linalg.vector_norm(x)), rel=1e-10)
    torch.testing.assert_close(physics.ifft2c(k), x)
    xn = torch.view_as_complex(x.float().contiguous()).numpy()
    ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(xn, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(physics.fft2c_np(xn), ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(physics.ifft2c_np(physics.fft2c_np(xn)), xn, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 4, 12, 10), (1, 3, 9, 7)])
def test_encoding_operator_is_adjoint(shape):
    B, C, H, W = shape
    x, y, sens = cplx(B, 1, H, W, seed=1), cplx(B, C, H, W, seed=2), cplx(B, C, H, W, seed=3)
    mask = (torch.rand(B, 1, 1, W, 1, generator=torch.Generator().manual_seed(4)) < 0.5).expand(B, 1, 1, W, 1)
    lhs = inner(physics.forward_op(x, sens, mask), y)
    rhs = inner(x, physics.adjoint_op(y, sens, mask))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)
    # without a mask: sens_expand and sens_reduce are adjoint too
    assert inner(physics.sens_expand(x, sens), y) == pytest.approx(inner(x, physics.sens_reduce(y, sens)), rel=1e-10)


def test_data_consistency_keeps_measured_lines_and_is_idempotent():
    B, C, H, W = 1, 3, 8, 10
    pred, measured = cplx(B, C, H, W, seed=5), cplx(B, C, H, W, seed=6)
    mask = torch.zeros(B, 1, 1, W, 1, dtype=torch.bool)
    mask[..., ::3, :] = True
    out = physics.data_consistency(pred, measured, mask)
    m = mask.expand_as(out)
    torch.testing.assert_close(out[m], measured[m])
    torch.testing.assert_close(out[~m], pred[~m])
    torch.testing.assert_close(physics.data_consistency(out, measured, mask), out)
    step = physics.soft_data_consistency(pred, measured, mask, 0.5)
    torch.testing.assert_close(step[~m], torch.zeros_like(step[~m]))
    torch.testing.assert_close(step[m], 0.5 * (pred - measured)[m])
    # the gradient step with weight 1 from the truth is zero; from pred it moves onto the measurement
    torch.testing.assert_close((pred - physics.soft_data_consistency(pred, measured, mask, 1.0))[m], measured[m])


def test_rss_torch_and_numpy_agree_and_crop():
    k = cplx(2, 4, 12, 10, seed=7).float()
    t = physics.zero_filled_rss(k, (8, 6))
    ref = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(k)), dim=1)[:, 2:10, 2:8]
    torch.testing.assert_close(t, ref)
    kn = torch.view_as_complex(k.contiguous()).numpy()
    np.testing.assert_allclose(physics.zero_filled_rss_np(kn, (8, 6)), ref.numpy(), rtol=1e-5, atol=1e-6)


def _normal_equation_residual(x, measured, sens, mask, prior, weight):
    """||(A^H A + w) x - (A^H y + w p)|| / ||A^H y + w p|| per sample."""
    lhs = physics.adjoint_op(physics.forward_op(x, sens, mask), sens, mask) + weight * x
    rhs = physics.adjoint_op(measured, sens, mask) + weight * prior
    return (lhs - rhs).flatten(1).norm(dim=1) / rhs.flatten(1).norm(dim=1)


def test_sense_toward_prior_solves_its_normal_equations():
    B, C, H, W = 2, 4, 10, 8
    sens, prior = cplx(B, C, H, W, seed=7), cplx(B, 1, H, W, seed=8)
    mask = torch.zeros(B, 1, 1, W, 1, dtype=torch.bool)
    mask[..., ::2, :] = True
    measured = torch.where(mask, cplx(B, C, H, W, seed=9), 0.0)
    for weight in (0.05, 1.0):
        start = _normal_equation_residual(prior, measured, sens, mask, prior, weight)
        few = physics.sense_toward_prior(measured, sens, mask, prior, weight, iterations=3)
        many = physics.sense_toward_prior(measured, sens, mask, prior, weight, iterations=200)
        assert (_normal_equation_residual(few, measured, sens, mask, prior, weight) < start).all()
        assert (_normal_equation_residual(many, measured, sens, mask, prior, weight) < 1e-8).all()
    # no iterations: the prior; a strong pull: nearly the prior; a sample without data stays finite (its prior)
    torch.testing.assert_close(physics.sense_toward_prior(measured, sens, mask, prior, 1.0, 0), prior)
    strong = physics.sense_toward_prior(measured, sens, mask, prior, 1e8, 10)
    torch.testing.assert_close(strong, prior, rtol=1e-6, atol=1e-6)
    empty = torch.zeros_like(measured)
    zero = physics.sense_toward_prior(empty, sens, mask, torch.zeros_like(prior), 0.1, 5)
    assert torch.equal(zero, torch.zeros_like(prior))


def test_sense_toward_prior_weighs_kspace_frequencies():
    """A per-frequency weight that is the same everywhere is the scalar weight (the FFT is orthonormal); a weight
    that is huge at some frequencies keeps the prior's k-space there."""
    B, C, H, W = 1, 3, 8, 8
    sens, prior = cplx(B, C, H, W, seed=1), cplx(B, 1, H, W, seed=2)
    mask = torch.zeros(B, 1, 1, W, 1, dtype=torch.bool)
    mask[..., ::2, :] = True
    measured = torch.where(mask, cplx(B, C, H, W, seed=3), 0.0)
    scalar = physics.sense_toward_prior(measured, sens, mask, prior, 0.3, 20)
    flat = physics.sense_toward_prior(measured, sens, mask, prior, torch.full((1, 1, H, W, 1), 0.3), 20, True)
    torch.testing.assert_close(flat, scalar, rtol=1e-4, atol=1e-5)
    weight = torch.full((1, 1, H, W, 1), 0.3)
    weight[..., : H // 2, :, :] = 1e9
    held = physics.fft2c(physics.sense_toward_prior(measured, sens, mask, prior, weight, 30, True))
    torch.testing.assert_close(held[..., : H // 2, :, :], physics.fft2c(prior)[..., : H // 2, :, :], rtol=0, atol=1e-4)
    assert not torch.allclose(held, physics.fft2c(prior), atol=1e-3)


def test_map_misfit_tells_maps_that_explain_the_data_from_maps_that_do_not():
    """Smooth unit-norm maps times an object: the calibration region's coil images lie (nearly) in the maps' span;
    the same data against maps of the wrong coils do not. Per sample of the batch."""
    H = W = 64
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    phases = [(0.5, 0.2, 0.3), (-0.4, 0.6, -0.2), (0.1, -0.5, 0.5), (0.3, 0.3, 0.0)]
    maps = torch.stack([torch.exp(1j * (a * xx + b * yy)) * (1 + c * xx) for a, b, c in phases])
    maps = torch.view_as_real(maps / maps.abs().square().sum(0, keepdim=True).sqrt())[None].float()
    image = torch.zeros(1, 1, H, W, 2)
    image[..., 16:48, 20:44, 0] = 1
    kspace = physics.sens_expand(image, maps)
    wrong = torch.roll(maps, 1, dims=1)
    misfit = physics.map_misfit(torch.cat([kspace, kspace]), torch.cat([maps, wrong]), 16)
    assert misfit.shape == (2,) and misfit[0] < 0.02 and misfit[1] > 0.2


def test_mask_functions_and_partial_fourier():
    func = physics.make_mask_func("equispaced_fraction", [4], [0.08])
    mask, nlf = physics.sample_mask(func, 320, seed=(1, 2))
    assert mask.dtype == bool and abs(mask.mean() - 0.25) < 0.01 and nlf == round(320 * 0.08)
    pf = physics.partial_fourier(mask, 0.75, nlf, side=1)
    assert not pf[-80:].any() and np.array_equal(pf[:-80], mask[:-80])
    c = 160
    assert pf[c - nlf // 2 : c + nlf // 2].all()
    with pytest.raises(ValueError):
        physics.partial_fourier(mask, 0.4, nlf)
    with pytest.raises(ValueError, match="unknown mask_type"):
        physics.make_mask_func("spiral", [4], [0.08])


def test_mixed_masks_cover_types_and_ranges_and_follow_the_seed():
    func = physics.make_mask_func("mixed", list(range(2, 13)), [0.04, 0.12])
    assert isinstance(func, physics.MixedMaskFunc)
    m1, n1 = physics.sample_mask(func, 368, seed=(5, 6))
    m2, n2 = physics.sample_mask(func, 368, seed=(5, 6))
    assert np.array_equal(m1, m2) and n1 == n2
    rates, nlfs = [], []
    for s in range(60):
        m, n = physics.sample_mask(func, 368, seed=s)
        rates.append(m.mean())
        nlfs.append(n)
    assert min(rates) < 1 / 7 and max(rates) > 1 / 3  # 2x..12x
    assert min(nlfs) >= 0.04 * 368 - 1 and max(nlfs) <= 0.12 * 368 + 1
    pf = physics.MixedMaskFunc([4], partial_fourier_prob=1.0, partial_fourier_range=(0.7, 0.7))
    m, n = physics.sample_mask(pf, 200, seed=3)
    cut = round(0.3 * 200)
    assert not m[:cut].any() or not m[-cut:].any()


def test_noise_covariance_is_realised_and_bounded():
    rng = np.random.default_rng(0)
    cov = physics.random_noise_covariance(6, 0.4, rng)
    assert np.allclose(cov, cov.conj().T) and np.linalg.eigvalsh(cov).min() > 0
    assert np.real(np.trace(cov)) / 6 == pytest.approx(1.0)
    r = physics.noise_correlation(cov)
    off = np.abs(r[~np.eye(6, dtype=bool)])
    assert off.max() <= 0.4 + 1e-9
    full = physics.noise_correlation(physics.random_noise_covariance(5, 0.5, rng, latent=1))
    np.testing.assert_allclose(np.abs(full[~np.eye(5, dtype=bool)]), 0.5, rtol=1e-9)
    n = physics.coil_noise((2, 6, 64, 64), cov, 2.0, rng)
    flat = n.transpose(1, 0, 2, 3).reshape(6, -1)
    emp = flat @ flat.conj().T / flat.shape[1]
    np.testing.assert_allclose(emp, 4.0 * cov, atol=0.12)
    with pytest.raises(ValueError):
        physics.coil_noise((2, 5, 8, 8), cov, 1.0, rng)


def test_numpy_expand_matches_torch_and_the_numpy_readout_crop():
    rng = np.random.default_rng(0)
    maps = (rng.standard_normal((3, 12, 10)) + 1j * rng.standard_normal((3, 12, 10))).astype(np.complex64)
    image = (rng.standard_normal((2, 12, 10)) + 1j * rng.standard_normal((2, 12, 10))).astype(np.complex64)
    k = physics.sens_expand_np(image, maps)
    assert k.shape == (2, 3, 12, 10) and k.dtype == np.complex64
    as_t = lambda a: torch.view_as_real(torch.from_numpy(a))  # noqa: E731
    ref = physics.sens_expand(as_t(image)[:, None], as_t(maps)[None].expand(2, -1, -1, -1, -1))
    np.testing.assert_allclose(as_t(k).numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)
    cropped = physics.crop_readout_np(k, 8)  # the central 8 of 12 image rows, pixel values kept
    assert cropped.shape == (2, 3, 8, 10)
    np.testing.assert_allclose(physics.ifft2c_np(cropped), physics.ifft2c_np(k)[..., 2:10, :], atol=1e-5)


@pytest.mark.parametrize("mask_type", ["random", "equispaced_fraction"])
@pytest.mark.parametrize("width", [320, 367])
def test_centre_lines_are_the_calibration_columns_of_fastmri_masks(mask_type, width):
    from mrirecon.codecs.graph_safe import CentreSensitivityModel

    mask, nlf = physics.file_mask("scan.h5", width, mask_type, 8)
    centre = physics.centre_lines(width, torch.tensor([nlf]))[0].numpy()
    assert centre.sum() == nlf and mask[centre].all()
    run = np.flatnonzero(centre)
    assert np.array_equal(run, np.arange(run[0], run[0] + nlf))  # one contiguous run
    # the sensitivity network keeps the same columns (as a tensor too: per-sample widths on the device)
    sens = CentreSensitivityModel(2, 1, mask_center=True)
    layout = torch.from_numpy(mask).view(1, 1, 1, width, 1)
    for given in (nlf, torch.tensor([nlf])):
        assert np.array_equal(sens.centre_columns(layout, given, width).view(width).numpy(), centre)


def test_file_masks_follow_the_file_name():
    a, na = physics.file_mask("a.h5", 320, "random", 4)
    b, nb = physics.file_mask("a.h5", 320, "random", 4)
    c, _ = physics.file_mask("b.h5", 320, "random", 4)
    assert np.array_equal(a, b) and na == nb == round(320 * physics.STANDARD_PAIRS[4])
    assert not np.array_equal(a, c)
    from mrirecon import data

    assert data.file_mask is physics.file_mask and data.MASK_TYPES == physics.BASE_MASK_TYPES


def test_white_noise_has_the_requested_power_and_follows_the_seed():
    n = physics.white_noise((4, 64, 64), 2.0, np.random.default_rng(5))
    assert n.dtype == np.complex64 and n.shape == (4, 64, 64)
    assert np.array_equal(n, physics.white_noise((4, 64, 64), 2.0, np.random.default_rng(5)))
    assert not np.array_equal(n, physics.white_noise((4, 64, 64), 2.0, np.random.default_rng(6)))
    assert np.mean(np.abs(n) ** 2) == pytest.approx(4.0, rel=0.05)
    assert np.var(n.real) == pytest.approx(2.0, rel=0.05) and abs(np.mean(n.real * n.imag)) < 0.05
    flat = n.reshape(4, -1)
    corr = np.abs(physics.noise_correlation(flat @ flat.conj().T / flat.shape[1]))
    assert corr[~np.eye(4, dtype=bool)].max() < 0.05  # independent coils


def test_smooth_phases_are_bounded_smooth_and_seeded():
    for draw in (
        lambda rng: physics.smooth_phase((48, 40), 2.0, rng),
        lambda rng: physics.unscaled_smooth_phase((48, 40), rng),
    ):
        p = draw(np.random.default_rng(1))
        assert p.shape == (48, 40) and p.dtype == np.float32 and np.isfinite(p).all()
        assert np.array_equal(p, draw(np.random.default_rng(1)))
        assert not np.array_equal(p, draw(np.random.default_rng(2)))
        step = max(np.abs(np.diff(p, axis=0)).max(), np.abs(np.diff(p, axis=1)).max())
        assert step < 0.1 * (p.max() - p.min())  # smooth: no jumps between neighbours
    assert np.abs(physics.smooth_phase((48, 40), 2.0, np.random.default_rng(3))).max() <= 2.0


@pytest.mark.parametrize("model", physics.COIL_MODELS)
def test_coil_models(model):
    maps = physics.coil_maps(model, 8, (96, 64), (48, 64), np.random.default_rng(0), phase_amplitude=1.5)
    assert maps.shape == (8, 96, 64) and maps.dtype == np.complex64 and np.isfinite(maps).all()
    rss = np.sqrt((np.abs(maps) ** 2).sum(0))[24:72]
    assert np.percentile(rss, 95) == pytest.approx(1.0, rel=1e-4)
    mags = np.abs(maps).reshape(8, -1)
    assert np.corrcoef(mags).min() < 0.99  # the coils see different regions
    other = physics.coil_maps(model, 8, (96, 64), (48, 64), np.random.default_rng(1))
    assert not np.allclose(maps, other)  # random geometry
    with pytest.raises(ValueError, match="unknown coil model"):
        physics.coil_maps("helmet", 4, (8, 8), (8, 8), np.random.default_rng(0))


def test_cropped_birdcage_maps_are_seeded_and_unit_rss():
    maps = physics.cropped_birdcage_maps(8, (64, 48), (48, 48), np.random.default_rng(0))
    assert maps.shape == (8, 64, 48) and maps.dtype == np.complex64
    assert np.array_equal(maps, physics.cropped_birdcage_maps(8, (64, 48), (48, 48), np.random.default_rng(0)))
    assert not np.allclose(maps, physics.cropped_birdcage_maps(8, (64, 48), (48, 48), np.random.default_rng(1)))
    np.testing.assert_allclose(physics.coil_images_rss_np(maps, np.ones((64, 48))), 1.0, rtol=1e-4)


def test_espirit_maps_span_the_coil_images_and_batch_per_sample():
    """On an object seen by smooth coils, the ESPIRiT maps explain the coil images (S S^H keeps them) inside the
    object, are unit-RSS where not cropped, and zero outside the crop; the torch batch is the numpy maps per
    sample, on the input's device and dtype, without a gradient."""
    H, W = 48, 40
    yy, xx = np.mgrid[:H, :W]
    obj = (((yy - H / 2) / 18) ** 2 + ((xx - W / 2) / 15) ** 2 < 1).astype(np.float32) * (1 + 0.3 * np.sin(xx / 3))
    coils = [
        physics.sens_expand_np(obj, physics.coil_maps("loops", 6, (H, W), (36, 30), np.random.default_rng(s)))
        for s in (0, 1)
    ]
    mask = np.zeros(W, bool)
    mask[::2] = True
    mask[W // 2 - 6 : W // 2 + 6] = True
    measured = np.stack(coils) * mask
    maps = physics.espirit_maps(measured[0], 12, crop=0.9)
    inside = obj > 0
    images = physics.ifft2c_np(coils[0])
    kept = maps * (maps.conj() * images).sum(0)
    assert np.abs(kept - images)[:, inside].sum() < 0.05 * np.abs(images)[:, inside].sum()
    np.testing.assert_allclose(np.sqrt((np.abs(maps) ** 2).sum(0))[inside], 1.0, rtol=1e-3)
    assert np.abs(maps[:, 0, 0]).max() == 0  # the corner, outside the object, is cropped
    batch = torch.view_as_real(torch.from_numpy(measured.astype(np.complex64))).requires_grad_()
    sens = physics.espirit_sens(batch, torch.tensor([12, 12]), crop=0.9)
    assert sens.shape == batch.shape and sens.dtype == batch.dtype and not sens.requires_grad
    for b in range(2):
        np.testing.assert_allclose(
            torch.view_as_complex(sens[b]).numpy(), physics.espirit_maps(measured[b], 12, crop=0.9)
        )
    with pytest.raises(ValueError, match="fully sampled centre"):
        physics.espirit_maps(measured[0] * (np.arange(W) % 2 == 0), 12)


def test_the_solve_calibrates_on_the_gpu_only_where_sigpy_has_cupy(monkeypatch):
    """CPU tensors calibrate on the CPU; CUDA tensors on their GPU when sigpy has CuPy, else on the CPU; and the
    batched maps hand the chosen device to every slice's calibration."""
    import sigpy as sp

    import mrirecon.physics.espirit as espirit

    monkeypatch.setattr(sp.config, "cupy_enabled", True)
    assert physics.cupy_gpu(torch.device("cpu")) is None
    assert physics.cupy_gpu(torch.device("cuda", 1)) == 1 and physics.cupy_gpu(torch.device("cuda")) == 0
    monkeypatch.setattr(sp.config, "cupy_enabled", False)
    assert physics.cupy_gpu(torch.device("cuda", 1)) is None

    seen = []
    monkeypatch.setattr(espirit, "cupy_gpu", lambda device: 3)
    monkeypatch.setattr(espirit, "espirit_maps", lambda k, n, crop, grid, gpu: seen.append(gpu) or np.ones_like(k))
    sens = physics.espirit_sens(torch.zeros(2, 4, 8, 8, 2), 4, crop=0.9, grid=None)
    assert seen == [3, 3] and torch.equal(sens[..., 0], torch.ones(2, 4, 8, 8))


def test_espirit_on_a_coarse_grid_explains_the_coil_images_as_well_as_at_full_resolution():
    """Maps calibrated on a 24 x 24 grid of the same field of view and interpolated: the full matrix's shape, unit
    RSS, and inside the object they explain the coil images almost as well as the full-resolution maps."""
    H, W = 64, 48
    yy, xx = np.mgrid[:H, :W]
    obj = (((yy - H / 2) / 26) ** 2 + ((xx - W / 2) / 19) ** 2 < 1).astype(np.float32) * (1 + 0.3 * np.sin(xx / 3))
    coils = physics.sens_expand_np(obj, physics.coil_maps("loops", 6, (H, W), (50, 38), np.random.default_rng(2)))
    images, inside = physics.ifft2c_np(coils), obj > 0

    def outside(maps):
        kept = maps * (maps.conj() * images).sum(0)
        return np.abs(kept - images)[:, inside].sum() / np.abs(images)[:, inside].sum()

    full, _ = physics.espirit_calibration(coils, 12)
    coarse, eigenvalue = physics.espirit_calibration(coils, 12, grid=24)
    assert coarse.shape == full.shape and eigenvalue.shape == (H, W)
    np.testing.assert_allclose(np.sqrt((np.abs(coarse) ** 2).sum(0)), 1.0, rtol=1e-4)
    assert outside(full) < 0.07 and outside(coarse) < outside(full) + 0.01
    assert eigenvalue[H // 2, W // 2] > 0.9 and not np.allclose(coarse, full)


def test_kspace_noise_variance_reads_the_noise_level_off_the_outer_readout_frequencies():
    """A smooth object plus complex white noise of variance 4 (zero off the mask): the estimate is within 10 %,
    per sample of the batch."""
    H, W = 96, 64
    yy, xx = np.mgrid[:H, :W]
    obj = np.exp(-(((yy - H / 2) / 12) ** 2) - ((xx - W / 2) / 9) ** 2)
    clean = physics.sens_expand_np(obj * 300, np.ones((4, H, W), np.complex64))
    rng = np.random.default_rng(0)
    noisy = [clean + rng.normal(0, s, clean.shape) + 1j * rng.normal(0, s, clean.shape) for s in (np.sqrt(2), 1)]
    mask = np.arange(W) % 3 == 0
    batch = torch.view_as_real(torch.from_numpy(np.stack(noisy) * mask).to(torch.complex64))
    np.testing.assert_allclose(physics.kspace_noise_variance(batch).numpy(), [4.0, 2.0], rtol=0.1)


def test_kspace_noise_variance_on_the_outer_lines_holds_where_the_central_lines_carry_signal():
    """A sharp-edged object without readout oversampling leaves signal at every readout frequency of the central
    lines: there the plain estimate is over 1.5 times the true variance (2), the outer quarter of the lines within
    10 % of it."""
    H, W = 128, 96
    obj = np.zeros((H, W))
    obj[20:108, 20:76] = 100.0
    clean = physics.sens_expand_np(obj, np.ones((4, H, W), np.complex64))
    rng = np.random.default_rng(1)
    noisy = clean + rng.normal(0, 1, clean.shape) + 1j * rng.normal(0, 1, clean.shape)
    mask = (np.arange(W) % 2 == 0) | (np.abs(np.arange(W) - W // 2) < 12)
    batch = torch.view_as_real(torch.from_numpy((noisy * mask)[None]).to(torch.complex64))
    assert physics.kspace_noise_variance(batch).item() > 3.0
    np.testing.assert_allclose(physics.kspace_noise_variance(batch, outer_lines=0.25).item(), 2.0, rtol=0.1)


def test_restore_noise_floor_lifts_the_background_to_the_fully_sampled_floor_and_leaves_the_anatomy():
    """Pure noise of 12 coils, a quarter of the lines kept: the RSS of the kept lines sits near half the fully
    sampled RSS floor; restored with share 1 it is within 3 % of it. A bright object, and a background already
    at the floor (the fully sampled RSS itself), are left as they were; share 0 changes nothing."""
    g = torch.Generator().manual_seed(0)
    kspace = torch.randn(2, 12, 128, 96, 2, generator=g) * torch.tensor([0.5, 1.0]).view(2, 1, 1, 1, 1)
    mask = torch.zeros(1, 1, 1, 96, 1, dtype=torch.bool)
    mask[..., ::4, :] = True
    measured = torch.where(mask, kspace, torch.zeros(()))
    full_image, kept = physics.rss(kspace), physics.rss(measured)
    full = full_image.mean(dim=(1, 2))
    assert torch.all(kept.mean(dim=(1, 2)) < 0.6 * full)
    restored = physics.restore_noise_floor(kept, measured)
    np.testing.assert_allclose(restored.mean(dim=(1, 2)).numpy(), full.numpy(), rtol=0.03)
    bright = kept.clone()
    bright[:, 40:90, 30:70] += 20 * full.view(2, 1, 1)
    torch.testing.assert_close(physics.restore_noise_floor(bright, measured)[:, 45:85, 35:65], bright[:, 45:85, 35:65])
    at_floor = physics.restore_noise_floor(full_image, measured, share=0.8)
    assert (at_floor - full_image).abs().max() < 0.5 * full.max() and (at_floor != full_image).float().mean() < 0.2
    torch.testing.assert_close(physics.restore_noise_floor(kept, measured, share=0.0), kept)


def test_readout_margin_noise_reads_the_floor_where_the_cropped_kspace_estimate_fails():
    """A bright sharp-edged object filling the cropped field of view (rows 48-144 of 192, crop to 96), 8 smooth
    coils with correlated noise of summed power 8: read off the rows the crop removes, the floor is within 3 % of 8;
    read off the outer readout frequencies of the cropped k-space, over twice that. The samples are zero at the
    unmeasured lines; a crop that leaves too few rows gives None."""
    rng = np.random.default_rng(2)
    C, H, W, h = 8, 192, 64, 96
    obj = np.zeros((H, W))
    obj[48:144, 8:56] = 400.0
    yy, xx = np.mgrid[:H, :W]
    sens = np.stack(
        [np.exp(1j * c - ((yy - 96 - 40 * np.cos(c)) ** 2 + (xx - 32 - 20 * np.sin(c)) ** 2) / 4000) for c in range(C)]
    )
    cov = physics.random_noise_covariance(C, 0.5, rng)
    noisy = physics.sens_expand_np(obj, sens.astype(np.complex64)) + physics.coil_noise((1, C, H, W), cov, 1.0, rng)
    mask = (np.arange(W) % 3 == 0) | (np.abs(np.arange(W) - W // 2) < 6)
    kspace = torch.view_as_real(torch.from_numpy((noisy * mask).astype(np.complex64)))
    cropped = physics.crop_readout(kspace, h)
    samples = physics.readout_margin_noise(kspace, h)
    assert samples.shape == (1, C, 2 * 24 * W)
    np.testing.assert_array_equal(samples.reshape(1, C, -1, W).abs().sum(dim=(1, 2))[0].numpy() > 0, mask)
    empty = torch.zeros(1, h, W)
    from_margin = physics.restore_noise_floor(empty, cropped, noise_samples=samples).square().mean().item()
    np.testing.assert_allclose(from_margin, np.trace(cov).real, rtol=0.03)
    assert physics.restore_noise_floor(empty, cropped).square().mean().item() > 2 * np.trace(cov).real
    assert physics.readout_margin_noise(kspace, 180) is None


def test_rss_noise_mean_ratio_matches_the_mean_of_correlated_and_independent_coil_noise():
    """Fully sampled pure noise of 12 equal coils, independent or sharing one source (correlation 0.55): the ratio
    read off the outer readout frequencies is within 1 % of the RSS noise image's mean over its RMS, lower for the
    correlated coils. ``level="mean"`` fills an empty image to that mean, ``rms`` to the RMS."""
    rng = np.random.default_rng(0)
    for correlation, expected_below in ((0.0, 1.0), (0.55, 0.97)):
        cov = physics.random_noise_covariance(12, correlation, rng, latent=1, gain_range=(1.0, 1.0))
        noise = physics.coil_noise((2, 12, 160, 96), cov, 1.0, rng)
        kspace = torch.view_as_real(torch.from_numpy(noise))
        image = physics.rss(kspace)
        truth = image.mean(dim=(1, 2)) / image.square().mean(dim=(1, 2)).sqrt()
        ratio = physics.rss_noise_mean_ratio(kspace)
        np.testing.assert_allclose(ratio.numpy(), truth.numpy(), rtol=0.01)
        assert torch.all(ratio < expected_below)
        empty = torch.zeros_like(image)
        filled = {level: physics.restore_noise_floor(empty, kspace, level=level).mean() for level in ("rms", "mean")}
        np.testing.assert_allclose(filled["mean"].item(), image.mean().item(), rtol=0.03)
        np.testing.assert_allclose(filled["rms"].item(), image.square().mean().sqrt().item(), rtol=0.03)
    with pytest.raises(ValueError, match="level"):
        physics.restore_noise_floor(empty, kspace, level="median")


def test_importing_the_training_path_leaves_sigpy_unloaded():
    """sigpy pulls in numba and llvmlite: only an ESPIRiT calibration or a birdcage coil model loads it, so a machine
    without them can still train on stored data and reconstruct without the final solve."""
    modules = "mrirecon.physics, mrirecon.data, mrirecon.codecs, mrirecon.training.module"
    code = f"import sys, {modules}; print(sorted({{'sigpy', 'numba'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_zero_outside_maps_keeps_the_coil_images_on_the_support_and_a_slice_without_maps_whole():
    import fastmri

    from mrirecon.physics import zero_outside_maps

    g = torch.Generator().manual_seed(0)
    kspace = torch.randn(2, 4, 16, 12, 2, generator=g)
    maps = torch.randn(2, 4, 16, 12, 2, generator=g)
    maps[0, :, :5] = 0  # rows 0-4 outside the object
    maps[1] = 0  # no calibration: no maps at all
    images, out = fastmri.ifft2c(kspace), fastmri.ifft2c(zero_outside_maps(kspace, maps))
    assert out[0, :, :5].abs().max() < 1e-6
    torch.testing.assert_close(out[0, :, 5:], images[0, :, 5:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1], images[1], atol=1e-5, rtol=1e-5)


def test_object_mask_fills_enclosed_dark_tissue_and_grows_by_the_margin():
    from mrirecon.physics import object_mask

    H, W = 40, 36
    yy, xx = torch.meshgrid(torch.arange(H) - 20.0, torch.arange(W) - 18.0, indexing="ij")
    radius = (yy.square() + xx.square()).sqrt()
    magnitude = torch.where(radius < 10, 1.0, 0.0) * torch.where((radius > 6) & (radius < 8), 0.0, 1.0)  # dark ring
    image = torch.stack([magnitude, torch.zeros_like(magnitude)], -1)[None, None] * 3.0  # [1,1,H,W,2]
    mask = object_mask(image, 0.1, 2)[0, 0, ..., 0]
    assert mask.shape == (H, W) and set(mask.unique().tolist()) == {0.0, 1.0}
    assert mask[radius < 10].all()  # the ring inside the object is filled
    assert not mask[radius > 10 + 2 * 2**0.5 + 0.5].any()  # nothing beyond the margin (a square's diagonal)
    assert mask[(radius > 10.2) & (radius < 11.5)].all()  # the margin itself
