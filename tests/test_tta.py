"""Self-supervised line splits and per-scan test-time adaptation (mrirecon.adapt.selfsup, mrirecon.adapt.tta)."""

import numpy as np
import pytest
import torch

from mrirecon.adapt.selfsup import centre_lines, heldout_error, split_lines
from mrirecon.adapt.tta import ADAPTER_SETS, TTAConfig, adapt, adapted_weights, scan_split
from mrirecon.codecs import ReconModel

SMALL = dict(num_cascades=2, chans=4, stem_chans=8, token_dim=16, sens_chans=4, sens_pools=2, pools=2, patch_size=8)


def _scan(S=2, C=3, H=48, W=40, seed=0):
    """A smooth object seen by smooth coils, so that held-out lines are predictable."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    obj = ((x**2 + (y / 1.2) ** 2) < 0.6).float() * (1 + 0.3 * torch.randn(S, 1, H, W, generator=g).tanh())
    coils = torch.stack([torch.exp(-((x - c) ** 2 + y**2)) for c in torch.linspace(-1, 1, C)])
    image = torch.complex(obj * coils, 0.2 * obj * coils * y)
    k = torch.view_as_real(torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(image, dim=(-2, -1))), dim=(-2, -1)))
    mask = np.zeros(W, bool)
    mask[::3] = True
    mask[W // 2 - 4 : W // 2 + 4] = True
    return (k * 1e-3 * torch.from_numpy(mask).view(1, 1, 1, -1, 1)).float(), mask


@pytest.mark.parametrize("seed", range(5))
def test_split_keeps_the_centre_in_the_input_and_partitions_the_mask(seed):
    g = torch.Generator().manual_seed(seed)
    B, W = 6, 64
    mask = torch.rand(B, W, generator=g) < 0.3
    nlf = torch.randint(2, 12, (B,), generator=g)
    centre = centre_lines(W, nlf)
    mask |= centre
    inp, loss, stop = split_lines(mask, nlf, (0.2, 0.1), torch.Generator().manual_seed(seed))
    assert (inp & centre).sum() == centre.sum()  # no calibration line ever leaves the input
    assert not (inp & loss).any() and not (inp & stop).any() and not (loss & stop).any()
    assert torch.equal(inp | loss | stop, mask)
    free = (mask & ~centre).sum(1)
    assert torch.equal(loss.sum(1), (0.2 * free).round().clamp_min(1).long().clamp_max(free))
    again = split_lines(mask, nlf, (0.2, 0.1), torch.Generator().manual_seed(seed))
    assert all(torch.equal(a, b) for a, b in zip((inp, loss, stop), again))  # seeded


def test_heldout_error_is_relative_and_per_sample():
    k = torch.randn(2, 3, 8, 10, 2)
    lines = torch.zeros(2, 10, dtype=torch.bool)
    lines[:, 3] = True
    assert torch.allclose(heldout_error(k, k, lines), torch.zeros(2))
    assert torch.allclose(heldout_error(torch.zeros_like(k), k, lines), torch.ones(2))


def test_every_adapter_set_names_real_weights():
    net = ReconModel(**SMALL)
    chosen = adapted_weights(net, ("heads", "sens", "lora", "cascades"))
    names = dict(net.named_parameters())
    assert set(ADAPTER_SETS) == {"trigger", *chosen}
    assert all(n in names for ns in chosen.values() for n in ns)
    assert {n for n in chosen["heads"] if n.endswith("dc_weight")} == {
        f"decoder.cascades.{i}.dc_weight" for i in range(2)
    }
    assert all(names[n].dim() == 4 and names[n].shape[-1] == 3 for n in chosen["lora"])
    assert len(chosen["sens"]) == 2 and all("sens_net" in n for n in chosen["sens"])


@pytest.mark.parametrize("params", ["trigger", "heads", "trigger+heads+sens+lora"])
def test_adaptation_lowers_the_held_out_error_and_writes_no_weight(params):
    torch.manual_seed(0)
    net = ReconModel(**SMALL)
    with torch.no_grad():  # a visible path from the backbone to the image
        torch.nn.init.normal_(net.decoder.head[-1].weight, std=0.2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    kspace, mask = _scan()
    cfg = TTAConfig(steps=6, params=params, lr=0.2, weight_lr=3e-3, patience=6)
    adapter, report = adapt(net, kspace, mask, 8, cfg)
    assert report.steps_run >= 1 and report.params == params
    assert report.loss_error_last < report.loss_error_first  # the self-supervised held-out error fell
    assert report.used and adapter is not None and report.stop_error_after < report.stop_error_before
    after = net.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)  # every weight bit-identical
    assert all(p.grad is None for p in net.parameters())
    m = torch.from_numpy(mask).view(1, 1, 1, -1, 1).expand(2, 1, 1, -1, 1)
    with torch.no_grad():
        assert not torch.equal(adapter(net, kspace, m, 8), net(kspace, m, 8))  # the image moved


def test_the_input_line_term_is_off_by_default_and_changes_the_adaptation_when_asked_for():
    assert TTAConfig().input_weight == 0.0
    kspace, mask = _scan()

    def adapted_state(input_weight: float) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        net = ReconModel(**SMALL)
        cfg = TTAConfig(steps=2, params="heads", weight_lr=3e-3, patience=2, input_weight=input_weight)
        adapter, _ = adapt(net, kspace, mask, 8, cfg)
        return {} if adapter is None else adapter.state_dict()

    plain, with_inputs = adapted_state(0.0), adapted_state(5.0)
    assert plain and with_inputs
    assert any(not torch.equal(plain[k], with_inputs[k]) for k in plain)


def test_guardrail_returns_the_unadapted_network_when_the_held_out_error_rises():
    torch.manual_seed(0)
    net = ReconModel(**SMALL)
    kspace, mask = _scan()
    cfg = TTAConfig(steps=3, params="cascades", weight_lr=50.0, patience=3)  # steps far too large
    adapter, report = adapt(net, kspace, mask, 8, cfg)
    assert adapter is None and not report.used and report.best_step == 0
    assert report.stop_error_after == report.stop_error_before
    assert all(h["stop_error"] > report.stop_error_before for h in report.history)


def test_scan_split_and_adapter_refusals():
    _, mask = _scan()
    inp, loss, stop = scan_split(mask, 8, TTAConfig(seed=1))
    assert inp[16:24].all() and ((inp | loss | stop) == mask).all() and loss.sum() >= 1 and stop.sum() >= 1
    with pytest.raises(ValueError, match="choose"):
        TTAConfig(params="trigger+everything").sets()
    kspace, mask = _scan()
    with pytest.raises(ValueError, match="Trigger layers"):
        adapt(ReconModel(backbone="none", **SMALL), kspace, mask, 8, TTAConfig(steps=1, params="trigger"))
    adapter, report = adapt(ReconModel(backbone="none", **SMALL), kspace, mask, 8, TTAConfig(steps=2, params="heads"))
    assert report.steps_run >= 1  # weight adapters need no Trigger


def test_training_with_the_self_supervised_term(tmp_path):
    from fastmri.data.transforms import VarNetSample

    from mrirecon.codecs.checkpoint import save_codec
    from mrirecon.training.module import ReconModule

    kspace, mask = _scan()
    m = torch.from_numpy(mask).view(1, 1, 1, -1, 1).expand(2, 1, 1, -1, 1)
    target = torch.rand(2, 48, 40)
    batch = VarNetSample(kspace, m, torch.tensor([8, 8]), target, ["a", "a"], torch.tensor([0, 1]),
                         target.amax().expand(2), (48, 40))  # fmt: skip
    torch.manual_seed(0)
    module = ReconModule(ReconModel(**SMALL), ssl_weight=0.5)
    supervised = module.loss(module(batch), batch)
    torch.manual_seed(1)
    ssl = module.selfsup_loss(batch)
    assert ssl > 0 and ssl.requires_grad
    torch.manual_seed(1)
    assert torch.allclose(module.training_step(batch, 0), supervised + 0.5 * ssl)
    grads = torch.autograd.grad(ssl, [p for p in module.net.decoder.parameters()], allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)  # the term trains the codecs
    with pytest.raises(ValueError, match="returns k-space"):
        ReconModule(torch.nn.Linear(2, 2), ssl_weight=0.1)
    save_codec(tmp_path / "c", module.net, {"class_path": "mrirecon.codecs.ReconModel", "init_args": SMALL})
    again = ReconModule(ReconModel(**SMALL), init_codec=str(tmp_path / "c"))
    assert all(torch.equal(a, b) for a, b in zip(again.net.state_dict().values(), module.net.state_dict().values()))
