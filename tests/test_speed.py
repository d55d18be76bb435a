"""The backbone's inference speed-ups compute the same function as the plain path.

CPU tests cover the logic (fused projections, the shifted-sum convolution, regional compilation); the GPU
tests (skipped without CUDA) check CUDA-graph capture and the combined fast path against float32 eager.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mrirecon.bench.speed import cuda_graphed
from mrirecon.nirvana import NirvanaConfig, NirvanaModel, fla_available
from mrirecon.nirvana.ops import short_conv

ROOT = Path(__file__).parents[1]
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def tiny_model(seed=0, device="cpu"):
    cfg = NirvanaConfig.from_json_file(ROOT / "backbone" / "tiny" / "config.json")
    torch.manual_seed(seed)
    model = NirvanaModel(cfg)
    model.reset_parameters(seed)
    with torch.no_grad():  # the init zeroes the low-rank second factors; make every path count
        for name, p in model.named_parameters():
            if "lora" in name or "o_proj_attn" in name:
                p.normal_(0, 0.05)
    return model.to(device).eval().requires_grad_(False)


@pytest.mark.parametrize("with_state", [False, True])
def test_short_conv_equals_depthwise_conv1d(with_state):
    B, T, D, W = 2, 9, 6, 4
    x, w = torch.randn(B, T, D, dtype=torch.float64), torch.randn(D, 1, W, dtype=torch.float64)
    state = torch.randn(B, D, W - 1, dtype=torch.float64) if with_state else torch.zeros(B, D, W - 1).double()
    padded = torch.cat([state, x.transpose(1, 2)], dim=-1)
    ref = F.silu(F.conv1d(padded, w, groups=D)).transpose(1, 2)
    y, new_state = short_conv(x, w, state if with_state else None)
    assert rel(y, ref) < 1e-12
    assert torch.equal(new_state, padded[..., -(W - 1) :])


def test_short_conv_state_carries_across_calls():
    x, w = torch.randn(1, 7, 5), torch.randn(5, 1, 4)
    full, _ = short_conv(x, w)
    a, s = short_conv(x[:, :2], w)
    b, s = short_conv(x[:, 2:3], w, s)
    c, _ = short_conv(x[:, 3:], w, s)
    assert rel(torch.cat([a, b, c], 1), full) < 1e-6


def test_fused_projections_match_and_stay_out_of_the_state_dict():
    model = tiny_model()
    x = torch.randn(2, 37, model.config.hidden_size)
    ref = model(inputs_embeds=x).last_hidden_state
    keys = set(model.state_dict())
    model.fuse_projections()
    assert set(model.state_dict()) == keys
    assert rel(model(inputs_embeds=x).last_hidden_state, ref) < 1e-6
    model.to(torch.float64)  # the fused copy follows dtype moves
    assert rel(model(inputs_embeds=x.double()).last_hidden_state, ref) < 1e-5


def small_recon(device="cpu"):
    from mrirecon.codecs import ReconModel

    torch.manual_seed(0)
    kw = dict(stem_chans=4, token_dim=16, sens_chans=4, sens_pools=2, num_cascades=1, chans=4, pools=2)
    net = ReconModel(backbone="nirvana", backbone_config="tiny", patch_size=8, **kw).to(device).eval()
    mask = torch.zeros(2, 1, 1, 32, 1, dtype=torch.bool, device=device)
    mask[..., ::3, :] = True
    mask[..., 14:18, :] = True
    kspace = torch.randn(2, 3, 32, 32, 2, device=device) * mask
    return net, kspace, mask


def test_optimized_model_matches_eager():
    """Fused projections, regional compilation of the backbone blocks and of fastmri's U-Nets: same output."""
    from mrirecon.bench.speed import optimize_for_inference

    net, kspace, mask = small_recon()
    with torch.inference_mode():
        ref = net(kspace, mask, 4)
        optimize_for_inference(net)
        assert net.backbone.body.layers[1].mixer.fused_in_weight is not None
        assert rel(net(kspace, mask, 4), ref) < 1e-5


def test_optimized_varnet_matches_eager_without_graph_breaks():
    """E2E-VarNet's sensitivity network and cascades compiled whole, channels-last U-Nets: same output, and
    every compiled unit traces as one graph (fastmri's U-Net alone would break four times)."""
    from torch._dynamo.utils import counters

    from mrirecon.baselines.learned import VarNetBaseline
    from mrirecon.bench.speed import optimize_for_inference

    _, kspace, mask = small_recon()
    torch.manual_seed(0)
    net = VarNetBaseline(num_cascades=2, sens_chans=4, sens_pools=2, chans=4, pools=2).eval()
    counters.clear()
    with torch.inference_mode():
        ref = net(kspace, mask, 4)
        optimize_for_inference(net)
        assert rel(net(kspace, mask, 4), ref) < 1e-5
    assert not counters["graph_break"], dict(counters["graph_break"])
    conv = net.varnet.cascades[0].model.unet.down_sample_layers[0].layers[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("size", [(32, 32), (37, 29)])
def test_graph_safe_unet_equals_fastmri_unet(size):
    from fastmri.models.unet import Unet

    from mrirecon.codecs.graph_safe import GraphSafeUnet

    torch.manual_seed(0)
    ref = Unet(2, 2, chans=4, num_pool_layers=3)
    safe = GraphSafeUnet(2, 2, chans=4, num_pool_layers=3)
    safe.load_state_dict(ref.state_dict())
    x = torch.randn(2, 2, *size)
    assert torch.equal(safe(x), ref(x))


def test_cuda_graphed_rejects_host_tensors():
    with pytest.raises(ValueError, match="argument 0 must be a CUDA tensor"):
        cuda_graphed(lambda t: t * 2, torch.ones(3))


@gpu
def test_fast_reconstruction_matches_eager_on_gpu():
    from mrirecon.bench.speed import cuda_graphed, optimize_for_inference

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    net, kspace, mask = small_recon("cuda")
    with torch.inference_mode():
        ref = net(kspace, mask, 4).clone()
        optimize_for_inference(net)
        fast = cuda_graphed(lambda k, m: net(k, m, 4), kspace, mask)
        assert rel(fast(kspace, mask), ref) < 1e-5
        kspace2 = torch.randn_like(kspace) * mask
        assert rel(fast(kspace2, mask), net(kspace2, mask, 4)) < 1e-5


@gpu
def test_cuda_graph_replays_the_eager_result_for_new_inputs():
    model = tiny_model(device="cuda")
    fwd = lambda x: model(inputs_embeds=x).last_hidden_state  # noqa: E731
    x0 = torch.randn(2, 50, model.config.hidden_size, device="cuda")
    with torch.inference_mode():
        graphed = cuda_graphed(fwd, x0)
        for _ in range(3):
            x = torch.randn_like(x0)
            out = graphed(x).clone()
            assert torch.equal(out, fwd(x))
        with pytest.raises(ValueError, match="captured as"):
            graphed(torch.randn(1, 50, model.config.hidden_size, device="cuda"))


@gpu
@pytest.mark.parametrize("backend", ["torch", "fla"])
def test_full_fast_path_matches_float32_eager(backend):
    if backend == "fla" and not fla_available():
        pytest.skip("fla-core not installed")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    ref_model = tiny_model(device="cuda")
    x = torch.randn(2, 402, ref_model.config.hidden_size, device="cuda")
    with torch.inference_mode():
        ref = ref_model(inputs_embeds=x).last_hidden_state
    for dtype, tol in ((torch.float32, 1e-5), (torch.bfloat16, 2e-2)):
        if backend == "fla" and dtype == torch.float32:
            continue  # fla computes in bf16
        model = tiny_model(device="cuda").to(dtype).fuse_projections().compile_blocks()
        model.backend = backend
        fwd = lambda x, m=model: m(inputs_embeds=x).last_hidden_state  # noqa: E731
        with torch.inference_mode():
            out = cuda_graphed(fwd, x.to(dtype))(x.to(dtype))
        assert rel(out, ref) < tol, (dtype, rel(out, ref))
