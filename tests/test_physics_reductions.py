"""Readout crop and coil compression (mrirecon.physics) and their use in the model and the API."""

import fastmri
import numpy as np
import pytest
import torch

from mrirecon.codecs import ReconModel
from mrirecon.physics import coil_basis, compress_coils, crop_readout, expand_coils
from mrirecon.physics.coils import fix_column_phase


def test_crop_readout_keeps_the_central_image_rows_exactly():
    k = torch.randn(2, 3, 40, 24, 2, dtype=torch.float64)
    cropped = crop_readout(k, 20)
    assert cropped.shape == (2, 3, 20, 24, 2)
    torch.testing.assert_close(fastmri.ifft2c(cropped), fastmri.ifft2c(k)[:, :, 10:30], atol=1e-9, rtol=0)
    assert crop_readout(k, 40) is k and crop_readout(k, 64) is k


def test_crop_readout_keeps_unsampled_columns_zero():
    k = torch.randn(1, 2, 32, 16, 2)
    mask = torch.zeros(1, 1, 1, 16, 1, dtype=torch.bool)
    mask[..., ::3, :] = True
    cropped = crop_readout(k * mask, 16)
    assert cropped[..., ~mask[0, 0, 0, :, 0], :].abs().max() < 1e-6


def test_coil_compression_is_an_orthonormal_projection():
    torch.manual_seed(0)
    k = torch.randn(2, 6, 16, 12, 2)
    basis = coil_basis(k, 6)
    torch.testing.assert_close(expand_coils(compress_coils(k, basis), basis), k, atol=1e-4, rtol=0)
    b3 = coil_basis(k, 3)
    assert b3.shape == (2, 6, 3)
    eye = torch.eye(3, dtype=b3.dtype).expand(2, 3, 3)
    torch.testing.assert_close(b3.conj().transpose(1, 2) @ b3, eye, atol=1e-5, rtol=0)


def test_coil_compression_keeps_the_energy_of_low_rank_data():
    """Data from 2 underlying sources on 8 coils: two virtual coils hold all of it."""
    torch.manual_seed(1)
    src = torch.randn(1, 2, 16, 16, dtype=torch.complex64)
    mix = torch.randn(8, 2, dtype=torch.complex64)
    k = torch.view_as_real(torch.einsum("cs,bshw->bchw", mix, src))
    basis = coil_basis(k, 2)
    back = expand_coils(compress_coils(k, basis), basis)
    assert (back - k).norm() / k.norm() < 1e-4
    assert coil_basis(k, 2)[0, :, 0].abs().sum() > 0  # strongest first, not a zero column


@pytest.mark.parametrize("virtual", [0, 3])
def test_model_with_virtual_coils_returns_physical_coil_kspace(virtual):
    torch.manual_seed(0)
    net = ReconModel(
        backbone="none",
        patch_size=8,
        stem_chans=4,
        token_dim=8,
        sens_chans=2,
        sens_pools=2,
        num_cascades=1,
        chans=4,
        pools=2,
        virtual_coils=virtual,
    ).eval()
    k = torch.randn(1, 5, 32, 24, 2)
    mask = torch.zeros(1, 1, 1, 24, 1, dtype=torch.bool)
    mask[..., ::2, :] = True
    mask[..., 10:14, :] = True
    with torch.no_grad():
        image = net(k * mask, mask, 4)
        kspace = net(k * mask, mask, 4, return_kspace=True)
    assert image.shape == (1, 32, 24) and torch.isfinite(image).all()
    assert kspace.shape == (1, 5, 32, 24, 2)


def test_reconstructor_cuts_the_readout_to_the_target_rows():
    from mrirecon.api import Reconstructor

    net = ReconModel(
        backbone="none",
        patch_size=8,
        stem_chans=4,
        token_dim=8,
        sens_chans=2,
        sens_pools=2,
        num_cascades=1,
        chans=4,
        pools=2,
        virtual_coils=2,
    )
    rec = Reconstructor(net, device="cpu")
    rng = np.random.default_rng(0)
    k = (rng.standard_normal((2, 3, 48, 16)) + 1j * rng.standard_normal((2, 3, 48, 16))).astype(np.complex64)
    mask = np.zeros(16, bool)
    mask[::2] = True
    mask[6:10] = True
    assert rec.reconstruct_kspace(k * mask, mask, 4, crop_height=24).shape == (2, 24, 16)
    assert rec.reconstruct_kspace(k * mask, mask, 4).shape == (2, 48, 16)


def test_coil_basis_has_one_phase_whatever_the_eigensolver_returns():
    """Eigenvectors come with an arbitrary unit phase per column (CPU and GPU solvers differ); the basis
    must not: its first-coil row is real and non-negative, and any rotation of the columns maps back."""
    torch.manual_seed(2)
    basis = coil_basis(torch.randn(2, 5, 8, 8, 2), 3)
    first = basis[:, 0, :]
    assert first.imag.abs().max() == 0 and (first.real >= 0).all()
    rotated = basis * torch.polar(torch.ones(2, 1, 3), torch.rand(2, 1, 3) * 6.28)
    torch.testing.assert_close(fix_column_phase(rotated), basis, atol=1e-6, rtol=0)
    zero_first = torch.cat([torch.zeros(1, 1, 2, dtype=basis.dtype), basis[:1, 1:, :2]], 1)
    assert fix_column_phase(zero_first).abs().sum() == zero_first.abs().sum()  # no column lost
