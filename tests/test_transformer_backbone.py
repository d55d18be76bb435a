"""The ``transformer`` backbone entry (a Llama-style decoder of Hugging Face transformers) and the seeding of
the backbone registry."""

from __future__ import annotations

import sys

import pytest
import torch
from test_model import SMALL, _batch  # shared small codec sizes and a masked k-space batch

from mrirecon.codecs import ReconModel, build_backbone, resolve_backbone_config
from mrirecon.codecs.backbones import state_hash
from mrirecon.codecs.checkpoint import load_codec, save_codec

# Parameter counts of the 1.3B-sized entries (official 1.3B config.json, counted on the meta device), both with
# their token embeddings (32000 x 2048 = 65,536,000; present in either body, unused with inputs_embeds):
# transformer 1,195,993,088 (1,130,457,088 without embeddings) vs nirvana 1,382,799,296 (1,317,263,296):
# the transformer has 0.865x the parameters of Nirvana (its layers lack the gated-delta-rule mixer and Trigger).
PARAMS_1P3B = {"transformer": 1_195_993_088, "nirvana": 1_382_799_296}
EMBEDDINGS_1P3B = 32000 * 2048


def test_missing_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(ImportError, match=r"mrirecon\[transformer\]"):
        build_backbone("transformer", "tiny")


def test_sized_like_the_tiny_config_and_causal():
    pytest.importorskip("transformers")
    cfg = resolve_backbone_config("tiny")
    bb = build_backbone("transformer", "tiny")
    llama = bb.body.config
    assert (llama.hidden_size, llama.num_hidden_layers, llama.num_attention_heads, llama.num_key_value_heads) == (
        cfg.hidden_size,
        cfg.num_hidden_layers,
        cfg.num_heads,
        cfg.num_heads,
    )
    assert llama.intermediate_size == cfg.mlp_size == 768
    assert llama._attn_implementation == "sdpa" and bb.hidden_size == 256
    assert bb.num_trigger_layers == 0 and bb.logit_dim == 0
    ref = bb.reference
    assert ref["name"] == "transformer" and ref["config"] == "tiny" and ref["weights"] == "random-init(seed=0)"
    assert ref["sha256"] == state_hash(bb.body) and len(ref["sha256"]) == 64

    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 20, 256, generator=g)
    y = bb(x)
    assert y.shape == (2, 20, 256) and torch.isfinite(y).all()
    x2 = x.clone()
    x2[:, 12:] = torch.randn(2, 8, 256, generator=g)
    y2 = bb(x2)
    torch.testing.assert_close(y2[:, :12], y[:, :12], rtol=0, atol=1e-6)  # earlier outputs do not see later tokens
    assert (y2[:, 12:] - y[:, 12:]).abs().max() > 1e-3
    # the Trigger arguments are accepted and ignored
    assert torch.equal(bb(x, trigger="off", trigger_offsets=torch.ones(3, 4, 32)), y)


def test_deterministic_for_a_seed_and_leaves_the_global_rng_alone():
    pytest.importorskip("transformers")
    a, b, c = (build_backbone("transformer", "tiny", seed=s) for s in (3, 3, 4))
    assert a.reference["sha256"] == b.reference["sha256"] != c.reference["sha256"]
    x = torch.randn(1, 6, 256)
    assert torch.equal(a(x), b(x))
    # building a backbone does not reseed the caller: the codecs' initialisation follows the caller's seed
    for name in ("nirvana", "transformer"):
        torch.manual_seed(0)
        before = torch.rand(3)
        torch.manual_seed(0)
        build_backbone(name, "tiny", seed=7)
        assert torch.equal(torch.rand(3), before), name
        inits = []
        for seed in (0, 0, 1):
            torch.manual_seed(seed)
            inits.append(ReconModel(backbone=name, patch_size=8, **SMALL).encoder.project.weight)
        assert torch.equal(inits[0], inits[1]) and not torch.equal(inits[0], inits[2]), name


def test_bfloat16_keeps_rope_in_float32():
    pytest.importorskip("transformers")
    ref = build_backbone("transformer", "tiny")
    bb = build_backbone("transformer", "tiny", dtype="bfloat16")
    assert all(p.dtype == torch.bfloat16 for p in bb.parameters())
    assert bb.body.rotary_emb.inv_freq.dtype == torch.float32
    assert bb.reference["sha256"] == ref.reference["sha256"]  # the hash is of the float32 initialisation
    x = torch.randn(2, 10, 256)
    out = bb(x.bfloat16()).float()
    assert ((out - ref(x)).norm() / ref(x).norm()).item() < 2e-2


def test_frozen_through_a_training_step_and_checkpoint():
    pytest.importorskip("transformers")
    net = ReconModel(backbone="transformer", patch_size=8, **SMALL)
    with torch.no_grad():  # open the zero-initialised residual head so gradients cross the backbone
        torch.nn.init.normal_(net.decoder.head[-1].weight, std=0.2)
    assert not any(p.requires_grad for p in net.backbone.parameters())
    before = {k: v.clone() for k, v in net.backbone.state_dict().items()}
    codec_before = net.encoder.project.weight.detach().clone()
    net.train()
    assert net.training and not net.backbone.training and not net.backbone.body.training
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    k, mask = _batch()
    out = net(k, mask, 8)
    assert out.shape == (2, 48, 40) and torch.isfinite(out).all()
    out.abs().mean().backward()
    assert all(p.grad is None for p in net.backbone.parameters())
    assert net.encoder.project.weight.grad is not None and net.encoder.project.weight.grad.abs().sum() > 0
    opt.step()
    after = net.backbone.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[n], after[n]) for n in before)
    assert state_hash(net.backbone.body) == net.backbone.reference["sha256"]
    assert not torch.equal(net.encoder.project.weight, codec_before)


def test_codec_checkpoint_rebuilds_the_transformer(tmp_path):
    pytest.importorskip("transformers")
    from safetensors.torch import load_file

    init = {**SMALL, "patch_size": 8, "backbone": "transformer"}
    net = ReconModel(**init)
    save_codec(tmp_path / "c", net, {"class_path": "mrirecon.codecs.ReconModel", "init_args": init})
    assert not any(k.startswith("backbone.") for k in load_file(tmp_path / "c" / "codec.safetensors"))
    back, card = load_codec(tmp_path / "c")
    assert card["backbone"]["name"] == "transformer" and card["backbone"]["sha256"] == net.backbone.reference["sha256"]
    k, mask = _batch()
    with torch.no_grad():
        assert torch.equal(back(k, mask, 8), net.eval()(k, mask, 8))
    with pytest.raises(ValueError, match="seeded random weights only"):
        build_backbone("transformer", weights=str(tmp_path))


def test_tta_refuses_the_transformer_like_none():
    pytest.importorskip("transformers")
    import numpy as np

    from mrirecon.adapt.tta import TTAConfig, adapt

    k, mask = _batch(B=2)
    columns = mask[0, 0, 0, :, 0].numpy().astype(np.bool_)
    for name in ("transformer", "none"):
        with pytest.raises(ValueError, match=f"Trigger layers.*'{name}'"):
            adapt(ReconModel(backbone=name, patch_size=8, **SMALL), k, columns, 8, TTAConfig(steps=1, params="trigger"))


def test_1p3b_parameter_count_close_to_nirvana():
    pytest.importorskip("transformers")
    with torch.device("meta"):  # no memory: shapes only
        built = {name: build_backbone(name, "1.3B", dtype="bfloat16") for name in PARAMS_1P3B}
    counts = {name: sum(p.numel() for p in bb.parameters()) for name, bb in built.items()}
    assert counts == PARAMS_1P3B
    llama = built["transformer"].body.config
    assert (llama.hidden_size, llama.num_hidden_layers, llama.num_attention_heads) == (2048, 22, 16)
    assert llama.intermediate_size == resolve_backbone_config("1.3B").mlp_size == 5632
    assert built["transformer"].reference["sha256"] is None  # nothing to hash on the meta device
    ratio = counts["transformer"] / counts["nirvana"]
    assert 0.75 <= ratio <= 1.25, ratio
    no_emb = (counts["transformer"] - EMBEDDINGS_1P3B) / (counts["nirvana"] - EMBEDDINGS_1P3B)
    assert 0.75 <= no_emb <= 1.25, no_emb
