"""The forward model's identities: FFT unitarity, adjointness of A, data consistency, masks, noise."""

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
