"""The backbone against the reference conformance vectors, and its kernels, cache, loading and freezing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mrirecon.nirvana import (
    NirvanaConfig,
    NirvanaForCausalLM,
    NirvanaModel,
    freeze,
    gated_delta_rule_chunked,
    gated_delta_rule_recurrent,
)

DATA = Path(__file__).parent / "data" / "nirvana-tiny-a"
ROOT = Path(__file__).parents[1]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.fixture(scope="module")
def golden():
    return load_file(DATA / "golden.safetensors"), load_file(DATA / "intermediates.safetensors")


def _inputs(g, case, dtype):
    x = g[f"{case}.input"]
    return {"input_ids": x} if x.dtype == torch.int64 else {"inputs_embeds": x.to(dtype)}


@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_float32_logits_and_intermediates_match_reference(golden, case):
    g, inter = golden
    model = NirvanaForCausalLM.from_pretrained(DATA, dtype=torch.float32)
    with torch.no_grad():
        out = model(
            **_inputs(g, case, torch.float32),
            output_hidden_states=True,
            output_mixer=True,
            output_trigger=True,
        )
    assert rel(out.logits, g[f"fp32.{case}.logits"]) < 1e-4
    ref_hidden = inter[f"fp32.{case}.hidden_states"]
    assert len(out.hidden_states) == ref_hidden.shape[0]
    for layer, h in enumerate(out.hidden_states):
        assert rel(h, ref_hidden[layer]) < 1e-4, layer
    for layer, m in enumerate(out.mixer_outputs):
        assert rel(m, inter[f"fp32.{case}.mixer_out.{layer}"]) < 1e-4, layer
    assert [t.layer for t in out.trigger_trace] == [2, 3]
    for t in out.trigger_trace:
        assert rel(t.h, inter[f"fp32.{case}.trigger_h.{t.layer}"]) < 1e-4


@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_bfloat16_logits_match_reference(golden, case):
    g, _ = golden
    model = NirvanaForCausalLM.from_pretrained(DATA, dtype=torch.bfloat16)
    with torch.no_grad():
        out = model(**_inputs(g, case, torch.bfloat16))
    assert out.logits.dtype == torch.bfloat16
    assert rel(out.logits, g[f"bf16.{case}.logits"]) < 3e-2


def _random_gdn_inputs(B, T, H, K, V, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(B, T, H, K, generator=gen, dtype=torch.float64), dim=-1)
    k = torch.nn.functional.normalize(torch.randn(B, T, H, K, generator=gen, dtype=torch.float64), dim=-1)
    v = torch.randn(B, T, H, V, generator=gen, dtype=torch.float64)
    g = -torch.rand(B, T, H, generator=gen, dtype=torch.float64) * 0.5
    beta = torch.rand(B, T, H, generator=gen, dtype=torch.float64)
    s0 = torch.randn(B, H, K, V, generator=gen, dtype=torch.float64)
    return q, k, v, g, beta, s0


@pytest.mark.parametrize("T", [1, 7, 64, 65, 130, 200])
def test_chunked_delta_rule_equals_token_loop(T):
    q, k, v, g, beta, s0 = _random_gdn_inputs(2, T, 3, 16, 8)
    for init in (None, s0):
        o_ref, s_ref = gated_delta_rule_recurrent(q, k, v, g, beta, init)
        o, s = gated_delta_rule_chunked(q, k, v, g, beta, init)
        assert torch.allclose(o, o_ref, atol=1e-10, rtol=1e-9)
        assert torch.allclose(s, s_ref, atol=1e-10, rtol=1e-9)
    # a different chunk size must give the same answer (boundaries in other places)
    o16, _ = gated_delta_rule_chunked(q, k, v, g, beta, s0, chunk_size=16)
    assert torch.allclose(o16, gated_delta_rule_recurrent(q, k, v, g, beta, s0)[0], atol=1e-10)


def _tiny_random(trigger="token", seed=0, dtype=torch.float64):
    cfg = NirvanaConfig.from_json_file(ROOT / "backbone" / "tiny" / "config.json")
    cfg.trigger = trigger
    return NirvanaForCausalLM.from_config(cfg, seed=seed, dtype=dtype).eval()


def test_prefill_then_decode_equals_full_forward():
    model = _tiny_random()
    ids = torch.randint(3, 512, (2, 80), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(input_ids=ids).logits
        out = model(input_ids=ids[:, :70], use_cache=True)  # prefill crosses the 64-token chunk boundary
        steps = [out.logits]
        cache = out.cache
        for t in range(70, 80):  # token-by-token decode
            out = model(input_ids=ids[:, t : t + 1], cache=cache)
            cache = out.cache
            steps.append(out.logits)
        # and a multi-token continuation from a cache
        mid = model(input_ids=ids[:, :40], use_cache=True)
        rest = model(input_ids=ids[:, 40:], cache=mid.cache).logits
    assert cache.seen_tokens == 80
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-9, rtol=1e-7)
    assert torch.allclose(torch.cat([mid.logits, rest], dim=1), full, atol=1e-9, rtol=1e-7)


def test_trigger_modes():
    model = _tiny_random()
    x = torch.randn(2, 9, 256, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        token = model.model(inputs_embeds=x).last_hidden_state
        off = model.model(inputs_embeds=x, trigger="off").last_hidden_state
        scan = model.model(inputs_embeds=x, trigger="scan").last_hidden_state
        # scan == token on a one-token sequence
        one_tok = model.model(inputs_embeds=x[:, :1]).last_hidden_state
        one_scan = model.model(inputs_embeds=x[:, :1], trigger="scan").last_hidden_state
    assert rel(off, token) > 1e-6 and rel(scan, token) > 1e-6
    assert torch.allclose(one_tok, one_scan, atol=1e-12)
    # the token mode of one sequence does not depend on the other batch element; scan shares per sequence
    with torch.no_grad():
        scan_single = model.model(inputs_embeds=x[1:], trigger="scan").last_hidden_state
    assert torch.allclose(scan[1:], scan_single, atol=1e-10)


def test_freeze_keeps_gradients_to_inputs():
    model = freeze(_tiny_random(dtype=torch.float32).model)
    assert not model.training and all(not p.requires_grad for p in model.parameters())
    x = torch.randn(1, 12, 256, requires_grad=True)
    model(inputs_embeds=x).last_hidden_state.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = NirvanaForCausalLM.from_pretrained(DATA, dtype=torch.bfloat16)
    model.save_pretrained(tmp_path / "copy")
    a, b = load_file(DATA / "model.safetensors"), load_file(tmp_path / "copy" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "copy" / "config.json").read_text())["transformers_version"] == "4.52.4"
    for name in ("model.safetensors", "config.json"):  # a normal file mode, not mkstemp's owner-only 0600
        mode = (tmp_path / "copy" / name).stat().st_mode & 0o777
        assert mode & 0o044 == 0o044 & ~_umask(), oct(mode)
    # a tied model drops the head on save and ties it again on load
    tied = _tiny_random(dtype=torch.float32)
    tied.config.tie_word_embeddings = True
    tied.lm_head.weight = tied.model.embeddings.weight
    tied.save_pretrained(tmp_path / "tied")
    assert "lm_head.weight" not in load_file(tmp_path / "tied" / "model.safetensors")
    back = NirvanaForCausalLM.from_pretrained(tmp_path / "tied")
    assert back.lm_head.weight is back.model.embeddings.weight
    ids = torch.tensor([[5, 6, 7]])
    # the weights are bit-identical (state dicts below); two model objects may still take different CPU BLAS
    # paths for the same values (seen: 3e-8), so the logits are compared at float32 rounding level
    assert all(torch.equal(v, tied.state_dict()[k]) for k, v in back.state_dict().items())
    torch.testing.assert_close(back(input_ids=ids).logits, tied(input_ids=ids).logits, rtol=0, atol=1e-6)


def _broken_copy(tmp_path, edit):
    d = tmp_path / "broken"
    shutil.copytree(DATA, d)
    tensors = load_file(d / "model.safetensors")
    edit(tensors)
    save_file(tensors, d / "model.safetensors")
    return d


def test_from_pretrained_rejects_bad_files(tmp_path):
    key = "model.layers.2.Task_Aware_Delta_Net.q_lora.0.weight"
    d = _broken_copy(tmp_path / "1", lambda t: t.pop(key))
    with pytest.raises(ValueError, match=f"missing tensor.*{key}"):
        NirvanaForCausalLM.from_pretrained(d)
    d = _broken_copy(tmp_path / "2", lambda t: t.update({"model.extra.weight": torch.zeros(2)}))
    with pytest.raises(ValueError, match="unexpected tensor.*model.extra.weight"):
        NirvanaForCausalLM.from_pretrained(d)
    d = _broken_copy(tmp_path / "3", lambda t: t.update({key: torch.zeros(3, 3)}))
    with pytest.raises(ValueError, match=rf"{key} has shape \(3, 3\), expected \(16, 256\)"):
        NirvanaForCausalLM.from_pretrained(d)
    d = tmp_path / "4"
    shutil.copytree(DATA, d)
    (d / "model.safetensors").write_bytes(b"\x80\x04not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        NirvanaForCausalLM.from_pretrained(d)
    (d / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        NirvanaForCausalLM.from_pretrained(d)


def test_config_keeps_unknown_keys_and_official_shapes(tmp_path):
    path = ROOT / "backbone" / "nirvana-1.3B" / "config.json"
    cfg = NirvanaConfig.from_json_file(path)
    assert cfg.extra["window_size"] == 2048 and "auto_map" in cfg.extra
    cfg.to_json_file(tmp_path / "c.json")
    written, original = json.loads((tmp_path / "c.json").read_text()), json.loads(path.read_text())
    assert {k: written[k] for k in original} == original  # every official key, unknown ones included
    assert NirvanaConfig.from_json_file(tmp_path / "c.json") == cfg
    with torch.device("meta"):
        model = NirvanaForCausalLM(cfg)
    assert sum(p.numel() for p in model.parameters()) == 1_382_799_296  # tied head
    state = model.state_dict()
    assert len(state) == 641
    assert state["model.layers.21.Task_Aware_Delta_Net.condition_interpolation.lora.0.weight"].shape == (
        256,
        4224,
    )
    assert "model.layers.1.Task_Aware_Delta_Net.concept_proj.weight" not in state
    with pytest.raises(ValueError, match="logit_dim"):
        NirvanaConfig.from_dict({"hidden_size": 64, "num_heads": 1})


def test_model_accepts_ids_or_embeds_not_both():
    model = NirvanaModel(NirvanaConfig(hidden_size=128, num_heads=1, num_hidden_layers=3, vocab_size=16))
    model.reset_parameters(0)
    with pytest.raises(ValueError, match="exactly one"):
        model(input_ids=torch.zeros(1, 2, dtype=torch.long), inputs_embeds=torch.zeros(1, 2, 128))
    assert model(input_ids=torch.zeros(1, 3, dtype=torch.long)).last_hidden_state.shape == (1, 3, 128)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
