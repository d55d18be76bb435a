"""The public API's test-time adaptation options: one :class:`TTAConfig` (``tta=``) or its ``tta_<field>``
keywords, per reconstructor or per call, give the same adaptation."""

import numpy as np
import pytest
import torch

from mrirecon.api import Reconstructor, TTAConfig, split_tta_options
from mrirecon.codecs import ReconModel
from mrirecon.data import Volume

SMALL = dict(num_cascades=1, chans=4, stem_chans=8, token_dim=16, sens_chans=4, sens_pools=2, pools=2, patch_size=8)


def test_split_tta_options_names_fields_and_refuses_unknown_ones():
    tta, rest = split_tta_options({"tta_steps": 3, "tta_weight_lr": 1e-3, "trigger": "off"})
    assert tta == {"steps": 3, "weight_lr": 1e-3} and rest == {"trigger": "off"}
    with pytest.raises(TypeError, match="tta_stesp"):
        split_tta_options({"tta_stesp": 3})


def test_adaptation_starts_from_the_reconstructors_config():
    rec = Reconstructor(ReconModel(backbone="none", **SMALL), device="cpu", tta=TTAConfig(steps=0, params="heads"))
    assert rec.adaptation(steps=2) == TTAConfig(steps=2, params="heads")
    assert rec.adaptation(TTAConfig(steps=1), patience=1) == TTAConfig(steps=1, patience=1)


def _volume(S=2, C=3, H=32, W=32) -> Volume:
    g = np.random.default_rng(0)
    kspace = (g.standard_normal((S, C, H, W)) + 1j * g.standard_normal((S, C, H, W))).astype(np.complex64)
    mask = np.zeros(W, bool)
    mask[::2] = True
    mask[W // 2 - 4 : W // 2 + 4] = True
    return Volume("scan.h5", kspace * mask * 1e-3, mask, 8, None, None, (H, W))


def test_config_and_keywords_adapt_alike_and_are_recorded():
    torch.manual_seed(0)
    rec = Reconstructor(ReconModel(backbone="none", **SMALL), device="cpu")
    volume = _volume()
    plain = rec.reconstruct_volume(volume)
    assert plain.tta is None and plain.settings == {"mask_type": "from file"}  # off by default
    by_config = rec.reconstruct_volume(volume, tta=TTAConfig(steps=2, params="heads", patience=2))
    by_keywords = rec.reconstruct_volume(volume, tta_steps=2, tta_params="heads", tta_patience=2)
    for result in (by_config, by_keywords):
        assert result.tta is not None and result.tta.steps_run == 2 and result.tta.params == "heads"
        assert result.settings == {"mask_type": "from file", "tta_steps": 2, "tta_params": "heads"}
    np.testing.assert_array_equal(by_config.recon, by_keywords.recon)  # seeded: the same adaptation
    assert rec.tta.steps == 0  # a call's adaptation does not stay with the reconstructor
