"""GraphSafeUnet's channel-padded forward (every convolution's channels a multiple of 8) computes the same
function as the plain forward, with the same parameters and state dict."""

from __future__ import annotations

import pytest
import torch
from fastmri.models.unet import Unet
from fastmri.models.varnet import NormUnet
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from mrirecon.codecs.graph_safe import GraphSafeUnet, graph_safe, pad_unet_channels


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def unet(chans=8, pools=2, drop_prob=0.0, seed=0):
    """A float64 U-Net as E2E-VarNet uses it (2 -> 2 channels)."""
    torch.manual_seed(seed)
    return GraphSafeUnet(2, 2, chans=chans, num_pool_layers=pools, drop_prob=drop_prob).double()


class RecordConvolutions(TorchDispatchMode):
    """Records (input, weight, transposed, output) of every aten.convolution call."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten.convolution.default:
            self.calls.append((args[0], args[1], args[6], out))
        return out


def num_convs(model: nn.Module) -> int:
    return sum(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.modules())


@pytest.mark.parametrize("size", [(32, 32), (37, 29)])
@pytest.mark.parametrize("pools", [4, 2])
@pytest.mark.parametrize("chans", [18, 8])
def test_padded_forward_equals_plain_forward(chans, pools, size):
    model = unet(chans, pools).eval()
    x = torch.randn(3, 2, *size, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
        assert pad_unet_channels(model) == 1
        out = model(x)
    assert out.shape == ref.shape == x.shape
    assert rel(out, ref) < 1e-10


def test_state_dict_is_unchanged():
    model = unet(chans=18, pools=4).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pad_unet_channels(model)
    with torch.no_grad():
        model(torch.randn(1, 2, 32, 32, dtype=torch.float64))
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(after[k].shape == v.shape and torch.equal(after[k], v) for k, v in before.items())
    assert "channel_multiple" in vars(model) and GraphSafeUnet.channel_multiple == 1


@pytest.mark.parametrize("channels_last", [False, True])
def test_every_convolution_sees_multiples_of_8(channels_last):
    """Input, weight and output channels of each convolution are multiples of 8, and every padding channel
    that reaches a convolution (a zero weight column) is exactly zero: InstanceNorm and LeakyReLU keep it so."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = unet(chans=18, pools=4).eval().to(memory_format=fmt)
    pad_unet_channels(model)
    x = torch.randn(3, 2, 37, 29, dtype=torch.float64).to(memory_format=fmt)
    with torch.no_grad(), RecordConvolutions() as rec:
        model(x)
    assert len(rec.calls) == num_convs(model)
    padded_inputs = 0
    for inp, weight, transposed, out in rec.calls:
        assert inp.shape[1] % 8 == 0 and weight.shape[0] % 8 == 0 and weight.shape[1] % 8 == 0
        assert out.shape[1] % 8 == 0
        in_dim = 0 if transposed else 1
        padding = weight.abs().sum([d for d in range(4) if d != in_dim]) == 0  # [C'] zero weight columns
        assert torch.isfinite(inp).all() and (inp[:, padding] == 0).all()
        assert weight.is_contiguous(memory_format=fmt)  # (the activations keep whatever InstanceNorm gives)
        padded_inputs += bool(padding.any())
    assert padded_inputs == 11  # the 12 convolutions with 72, 144 or 288 input channels need no padding


def test_training_mode_uses_the_plain_path():
    plain, padded = unet(chans=18, pools=2).train(), unet(chans=18, pools=2).train()
    pad_unet_channels(padded)
    x = torch.randn(3, 2, 37, 29, dtype=torch.float64)
    with RecordConvolutions() as rec:
        out = padded(x)
    assert torch.equal(out, plain(x))
    assert rec.calls[0][0].shape[1] == 2  # the unpadded input


def test_padded_forward_compiles_to_one_graph():
    model = unet(chans=8, pools=2).eval()
    x = torch.randn(2, 2, 37, 29, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
        pad_unet_channels(model)
        out = torch.compile(model, fullgraph=True)(x)
    assert rel(out, ref) < 1e-10


def test_pad_unet_channels_sets_only_graph_safe_unets():
    plain = Unet(2, 2, chans=4, num_pool_layers=2)
    model = nn.ModuleList([graph_safe(NormUnet(4, 2)), unet(), plain])
    assert pad_unet_channels(model, 16) == 2
    assert [m.channel_multiple for m in model.modules() if isinstance(m, GraphSafeUnet)] == [16, 16]
    assert not hasattr(plain, "channel_multiple")
