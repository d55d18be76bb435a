"""GPU-only checks (skipped without CUDA): the fast paths agree with the pure-PyTorch ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mrirecon.nirvana import (
    NirvanaConfig,
    NirvanaModel,
    fla_available,
    gated_delta_rule,
    gated_delta_rule_recurrent,
)
from mrirecon.nirvana.ops import l2_normalize

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ROOT = Path(__file__).parents[1]


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def _inputs(B, T, H, K, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    q = l2_normalize(torch.randn(B, T, H, K, device="cuda", generator=g)).to(dtype)
    k = l2_normalize(torch.randn(B, T, H, K, device="cuda", generator=g)).to(dtype)
    v = torch.randn(B, T, H, K, device="cuda", generator=g).to(dtype)
    gate = -torch.rand(B, T, H, device="cuda", generator=g) * 0.3
    beta = torch.rand(B, T, H, device="cuda", generator=g).to(dtype)
    return q, k, v, gate, beta


@pytest.mark.parametrize("T", [63, 402, 1000])
def test_torch_chunked_matches_float64_loop_on_gpu(T):
    q, k, v, g, beta = _inputs(2, T, 4, 128, torch.float32, seed=T)
    ref, s_ref = gated_delta_rule_recurrent(q.double(), k.double(), v.double(), g.double(), beta.double())
    out, s = gated_delta_rule(q, k, v, g, beta, backend="torch")
    assert rel(out, ref) < 1e-5 and rel(s, s_ref) < 1e-5


@pytest.mark.skipif(not fla_available(), reason="fla-core not installed")
@pytest.mark.parametrize("T", [63, 402, 1000])
def test_fla_kernel_matches_torch(T):
    q, k, v, g, beta = _inputs(2, T, 4, 128, torch.bfloat16, seed=T + 1)
    ref, s_ref = gated_delta_rule_recurrent(q.double(), k.double(), v.double(), g.double(), beta.double())
    out, s = gated_delta_rule(q, k, v, g, beta, backend="fla")
    assert rel(out, ref) < 1e-2 and rel(s, s_ref) < 1e-2


@pytest.mark.skipif(not fla_available(), reason="fla-core not installed")
def test_backbone_fla_backend_matches_torch_backend():
    cfg = NirvanaConfig.from_json_file(ROOT / "backbone" / "tiny" / "config.json")
    model = NirvanaModel(cfg)
    model.reset_parameters(0)
    model = model.cuda().to(torch.bfloat16).eval()
    x = torch.randn(2, 402, cfg.hidden_size, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        ref = model.float()(inputs_embeds=x.float()).last_hidden_state
        model.to(torch.bfloat16)
        a = model(inputs_embeds=x).last_hidden_state
        model.backend = "fla"
        b = model(inputs_embeds=x).last_hidden_state
    assert rel(a, ref) < 2e-2 and rel(b, ref) < 2e-2


def _cupy() -> bool:
    import sigpy as sp

    return sp.config.cupy_enabled


@pytest.mark.skipif(not _cupy(), reason="sigpy without CuPy")
def test_espirit_maps_calibrated_on_the_gpu_match_the_cpu():
    """The final solve's maps for CUDA tensors come from sigpy on the GPU and agree with the CPU calibration."""
    import numpy as np

    from mrirecon import physics

    H, W = 64, 48
    yy, xx = np.mgrid[:H, :W]
    obj = (((yy - H / 2) / 26) ** 2 + ((xx - W / 2) / 19) ** 2 < 1).astype(np.float32) * (1 + 0.3 * np.sin(xx / 3))
    coils = physics.sens_expand_np(obj, physics.coil_maps("loops", 6, (H, W), (50, 38), np.random.default_rng(2)))
    mask = (np.arange(W) % 3 == 0) | (abs(np.arange(W) - W // 2) < 6)
    batch = torch.view_as_real(torch.from_numpy((np.stack([coils, coils[::-1]]) * mask).astype(np.complex64)))
    cpu = physics.espirit_sens(batch, 12, crop=0.0, grid=24)
    gpu = physics.espirit_sens(batch.cuda(), 12, crop=0.0, grid=24)
    assert physics.cupy_gpu(gpu.device) == 0 and gpu.is_cuda
    assert rel(gpu.cpu(), cpu) < 1e-2
