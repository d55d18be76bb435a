"""Shared fixtures: one tiny simulated fastMRI dataset per test session."""

from pathlib import Path
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """The 'tiny' preset (seed 0): train 2, val 1, test 2 (+ test_format 4x/8x), shift 1 volume."""
    from mrirecon.data.synth import ensure_dataset

    return ensure_dataset(tmp_path_factory.mktemp("synth") / "tiny", preset="tiny", seed=0, progress=False)


@pytest.fixture(autouse=True)
def pseudonym_key(monkeypatch):
    """A fixed pseudonymisation secret, so that tests never create one in the user's config folder."""
    monkeypatch.setenv("MRIRECON_PSEUDONYM_KEY", "test-installation-secret")


class FakeReconstructor:
    """Root-sum-of-squares stand-in for the network; ``boom*`` files raise, ``nanout*`` give NaN."""

    description = "rss stand-in"

    def reconstruct_volume(self, volume, **_):
        import numpy as np

        from mrirecon.metrics import center_crop_to

        if volume.fname.startswith("boom"):
            raise IndexError("index 3 is out of bounds for axis 0 with size 1")
        image = np.sqrt((np.abs(np.fft.ifft2(volume.kspace)) ** 2).sum(1)).astype(np.float32)
        if volume.fname.startswith("nanout"):
            image[:] = np.nan
        return SimpleNamespace(
            recon=center_crop_to(image, volume.crop_size),
            acceleration=1.0,
            num_low_frequencies=volume.kspace.shape[-1],
            seconds=0.0,
        )


@pytest.fixture
def fake_network(monkeypatch):
    """``mrirecon.reconstruct`` uses :class:`FakeReconstructor` (batch logic without a network)."""
    from mrirecon import reconstruct

    monkeypatch.setattr(reconstruct, "_reconstructor", lambda *a, **k: FakeReconstructor())
