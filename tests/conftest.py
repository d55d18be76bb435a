"""Shared fixtures: one tiny simulated fastMRI dataset per test session."""

from pathlib import Path

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
