"""Baselines on a small simulated multi-coil slice: classical quality ordering, learned wrappers."""

from __future__ import annotations

import fastmri
import numpy as np
import pytest
import sigpy as sp
import sigpy.mri
import torch
from fastmri.data.subsample import EquispacedMaskFractionFunc
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mrirecon.baselines import (
    CLASSICAL,
    LEARNED,
    UNetBaseline,
    VarNetBaseline,
    espirit_maps,
    sense,
    zero_filled,
)

N = 96
COILS = 8


def simulate_kspace(n: int = N, coils: int = COILS, oversample: int = 1, seed: int = 0) -> np.ndarray:
    """Shepp-Logan x smooth phase x birdcage maps -> centred ortho FFT + noise: [C, n*oversample, n]."""
    rng = np.random.default_rng(seed)
    img = np.abs(sp.shepp_logan((n, n))).astype(np.float32)
    H = n * oversample
    if oversample > 1:  # the object fills the centre of a readout-oversampled FOV
        full = np.zeros((H, n), np.float32)
        full[(H - n) // 2 : (H - n) // 2 + n] = img
        img = full
    yy, xx = np.mgrid[:H, :n] / max(H, n)
    img = img * np.exp(2j * np.pi * (0.3 * xx + 0.2 * yy))
    maps = sp.mri.birdcage_maps((coils, H, n), r=1.2)
    coil_images = maps * img[None]
    kspace = sp.fft(coil_images, axes=(-2, -1))
    sigma = 0.005 * np.abs(coil_images).max()
    noise = sigma * (rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape)) / np.sqrt(2)
    return (kspace + noise).astype(np.complex64)


def equispaced_mask(width: int, acceleration: int, center_fraction: float) -> tuple[np.ndarray, int]:
    func = EquispacedMaskFractionFunc([center_fraction], [acceleration], seed=0)
    mask, num_low = func((1, width, 1), seed=0)
    return mask.numpy().reshape(-1).astype(bool), int(num_low)


def ssim(target: np.ndarray, pred: np.ndarray) -> float:
    return float(structural_similarity(target, pred, data_range=float(target.max())))


@pytest.fixture(scope="module")
def slice4x() -> dict:
    simulated = simulate_kspace()
    mask, num_low = equispaced_mask(N, 4, 0.08)
    return {
        "target": zero_filled(simulated),
        "kspace": simulated * mask[None, None, :],
        "mask": mask,
        "num_low": num_low,
    }


def test_zero_filled_of_full_kspace_is_fastmri_rss() -> None:
    kspace = simulate_kspace(n=32, coils=4)
    expected = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(torch.view_as_real(torch.from_numpy(kspace)))))
    out = zero_filled(kspace)
    assert out.dtype == np.float32 and out.shape == (32, 32)
    np.testing.assert_array_equal(out, expected.numpy())
    # and the numpy convention (ifftshift -> ifft2 ortho -> fftshift) agrees to float precision
    coil = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(out, np.sqrt((np.abs(coil) ** 2).sum(0)), rtol=1e-4, atol=1e-6)


def test_espirit_maps_are_normalised(slice4x: dict) -> None:
    maps = espirit_maps(slice4x["kspace"], slice4x["num_low"], crop=0.0)
    assert maps.shape == slice4x["kspace"].shape and maps.dtype == np.complex64
    norm = (np.abs(maps) ** 2).sum(0)
    assert np.median(norm) == pytest.approx(1.0, abs=1e-3)


def test_classical_beat_zero_filled(slice4x: dict) -> None:
    target = slice4x["target"]
    scores = {}
    for name, method in CLASSICAL.items():
        out = method(slice4x["kspace"], slice4x["mask"], slice4x["num_low"])
        assert out.shape == target.shape and out.dtype == np.float32 and np.isfinite(out).all()
        scores[name] = (ssim(target, out), peak_signal_noise_ratio(target, out, data_range=target.max()))
    print({k: f"SSIM {s:.3f} PSNR {p:.1f}" for k, (s, p) in scores.items()})
    assert scores["sense"][0] > scores["zero-filled"][0] + 0.05
    assert scores["l1-wavelet"][0] > scores["zero-filled"][0] + 0.1
    # same intensity scale as the RSS target: PSNR well above zero-filled, no global gain error
    assert scores["sense"][1] > scores["zero-filled"][1] + 3
    out = CLASSICAL["sense"](slice4x["kspace"], slice4x["mask"], slice4x["num_low"])
    inside = target > 0.2 * target.max()
    assert np.median(out[inside] / target[inside]) == pytest.approx(1.0, abs=0.05)


def test_readout_oversampled_kspace() -> None:
    kspace = simulate_kspace(n=64, coils=6, oversample=2)  # [6, 128, 64]
    mask, num_low = equispaced_mask(64, 4, 0.16)
    masked = kspace * mask[None, None, :]
    target = zero_filled(kspace)
    for name, method in CLASSICAL.items():
        out = method(masked, mask, num_low)
        assert out.shape == (128, 64), name
        assert np.isfinite(out).all(), name
    # the caller scores the centre crop (the object), as fastMRI crops 640x368 to 320x320
    crop = slice(32, 96)
    assert ssim(target[crop], sense(masked, mask, num_low)[crop]) > ssim(target[crop], zero_filled(masked)[crop])


# ---------------------------------------------------------------- learned wrappers


def _odd_batch(B: int = 2, C: int = 3, H: int = 40, W: int = 36) -> tuple[torch.Tensor, torch.Tensor, int]:
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(B, 1, 1, W, 1, dtype=torch.bool)
    mask[..., ::3, :] = True
    num_low = 6
    pad = (W - num_low + 1) // 2
    mask[..., pad : pad + num_low, :] = True
    kspace = torch.randn(B, C, H, W, 2, generator=g) * mask
    return kspace, mask, num_low


def test_registry() -> None:
    assert set(LEARNED) == {"varnet", "unet"}
    assert set(CLASSICAL) == {"zero-filled", "sense", "l1-wavelet"}


@pytest.mark.parametrize("name", ["varnet", "unet"])
def test_learned_forward_shape_default_config(name: str) -> None:
    kspace, mask, num_low = _odd_batch(B=1)
    with torch.no_grad():
        out = LEARNED[name]()(kspace, mask, torch.tensor([num_low]))
    assert out.shape == (1, 40, 36)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "model",
    [
        lambda: VarNetBaseline(num_cascades=2, sens_chans=4, sens_pools=2, chans=8, pools=2),
        lambda: UNetBaseline(chans=8, num_pool_layers=3),
    ],
    ids=["varnet", "unet"],
)
def test_learned_shape_backward_and_fit(model) -> None:
    torch.manual_seed(0)
    net = model()
    kspace, mask, num_low = _odd_batch()
    # varying ACS widths inside the batch, an int, and None (inferred from the mask) all work
    for nlf in (torch.tensor([num_low, num_low]), num_low, None, torch.tensor([num_low, 4])):
        assert net(kspace, mask, nlf).shape == (2, 40, 36)

    # fit one simulated slice: the L1 loss to the fully sampled RSS must go down
    full = torch.view_as_real(torch.from_numpy(simulate_kspace(n=36, coils=3)))[None]  # [1, 3, 36, 36, 2]
    full = torch.cat([full, full.flip(-3)], dim=-3)[:, :, :40]  # odd-ish size H=40, W=36
    target = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(full)), dim=1)
    masked = full * mask[:1]
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = torch.nn.functional.l1_loss(net(masked, mask[:1], num_low), target)
        loss.backward()
        losses.append(loss.item())
        opt.step()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
@pytest.mark.parametrize("name", ["varnet", "unet"])
def test_learned_on_gpu(name: str) -> None:
    kspace, mask, num_low = _odd_batch()
    net = LEARNED[name]().cuda()
    out = net(kspace.cuda(), mask.cuda(), torch.tensor([num_low, num_low]).cuda())
    assert out.shape == (2, 40, 36) and out.is_cuda
