"""The codecs, the frozen backbone during training, the training CLI, codec checkpoints and reconstruct."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from fastmri.data.transforms import VarNetSample

from mrirecon.codecs import ReconModel, build_backbone
from mrirecon.codecs.checkpoint import load_codec, save_codec
from mrirecon.data.transforms import WithEspiritMaps
from mrirecon.physics import restore_noise_floor, rss
from mrirecon.reconstruct import _overrides
from mrirecon.reconstruct import main as reconstruct_main
from mrirecon.training.cli import main as fit_main

SMALL = dict(num_cascades=1, chans=4, stem_chans=8, token_dim=16, sens_chans=4, sens_pools=2, pools=2)


def _batch(B=2, C=3, H=48, W=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(B, C, H, W, 2, generator=g) * 1e-4
    mask = torch.zeros(B, 1, 1, W, 1, dtype=torch.bool)
    mask[..., ::4, :] = True
    mask[..., W // 2 - 4 : W // 2 + 4, :] = True
    return k * mask, mask


@pytest.mark.parametrize("order", ["twice", "raster", "bidirectional"])
@pytest.mark.parametrize("backbone", ["nirvana", "gated-deltanet", "transformer", "none"])
def test_any_size_and_coil_count(order, backbone):
    net = ReconModel(backbone=backbone, token_order=order, patch_size=8, **SMALL)
    for C, H, W in [(3, 48, 40), (5, 70, 36)]:  # readout-oversampled, sizes not divisible by the patch
        k, mask = _batch(C=C, H=H, W=W)
        out = net(k, mask, 8)
        assert out.shape == (2, H, W) and torch.isfinite(out).all()


def test_data_consistency_keeps_measured_lines_before_cascades():
    net = ReconModel(patch_size=8, **{**SMALL, "num_cascades": 0})
    k, mask = _batch()
    enc = net.encoder(k, mask, 8)
    x1 = net.decoder.image(net.run_backbone(enc.tokens), enc)
    # the decoder starts from the SENSE-combined image (zero-initialised residual head)
    assert torch.allclose(x1, enc.image * enc.scale, atol=1e-9)
    out = net(k, mask, 8)
    assert out.shape == (2, 48, 40)


def test_final_solve_keeps_the_measured_lines_of_every_physical_coil():
    """With the final solve the output k-space holds the measured samples of all coils, also when the network
    ran on fewer virtual coils; without it the measured lines differ (soft data consistency)."""
    k, mask = _batch(C=5)
    torch.manual_seed(0)
    plain = ReconModel(patch_size=8, virtual_coils=3, **SMALL)
    solved = ReconModel(patch_size=8, virtual_coils=3, final_solve_iterations=4, **SMALL)
    solved.load_state_dict(plain.state_dict())
    with torch.no_grad():
        out = solved(k, mask, 8, return_kspace=True)
        before = plain(k, mask, 8, return_kspace=True)
        image = solved(k, mask, 8)
    m = mask.expand_as(out)
    assert out.shape == k.shape and torch.equal(out[m], k[m])
    assert not torch.allclose(before[m], k[m])
    torch.testing.assert_close(image, rss(out, coil_dim=1))
    assert not torch.allclose(image, plain(k, mask, 8))
    with pytest.raises(ValueError, match="final_solve"):
        ReconModel(final_solve_iterations=2, final_solve_weight=0.0, **SMALL)
    with pytest.raises(ValueError, match="final_solve_maps"):
        ReconModel(final_solve_iterations=2, final_solve_maps="sense", **SMALL)


def test_noise_floor_lifts_the_rss_image_to_the_scans_noise_floor():
    """noise_floor=s: the image is restore_noise_floor of the same network's RSS image, the same weights;
    noise_floor_level picks the level it fills to."""
    k, mask = _batch()
    torch.manual_seed(0)
    plain = ReconModel(**SMALL).eval()
    floored = ReconModel(noise_floor=0.5, **SMALL).eval()
    to_mean = ReconModel(noise_floor=0.5, noise_floor_level="mean", **SMALL).eval()
    for net in (floored, to_mean):
        net.load_state_dict(plain.state_dict())
    with torch.no_grad():
        image, mean_image = floored(k, mask, 8), to_mean(k, mask, 8)
        torch.testing.assert_close(image, restore_noise_floor(plain(k, mask, 8), k, 0.5))
        torch.testing.assert_close(mean_image, restore_noise_floor(plain(k, mask, 8), k, 0.5, level="mean"))
    assert torch.all(image >= plain(k, mask, 8).detach() - 1e-6) and not torch.equal(image, plain(k, mask, 8))
    assert torch.all(mean_image <= image + 1e-6) and not torch.equal(mean_image, image)
    with pytest.raises(ValueError, match="noise_floor"):
        ReconModel(noise_floor=-1.0, **SMALL)
    with pytest.raises(ValueError, match="noise_floor_level"):
        ReconModel(noise_floor=1.0, noise_floor_level="median", **SMALL)
    with pytest.raises(ValueError, match="noise_floor_source"):
        ReconModel(noise_floor=1.0, noise_floor_source="air", **SMALL)


def test_reconstructor_applies_the_noise_floor_only_to_readout_oversampled_scans():
    """The floor's noise level is read off the outer readout frequencies: with the readout cut from 48 to 24 rows
    (oversampled) the Reconstructor's image is the network's with its floor, without the cut the floor is off."""
    from mrirecon.api import Reconstructor
    from mrirecon.physics import crop_readout

    k, mask = _batch(B=1, H=48)
    torch.manual_seed(0)
    rec = Reconstructor(ReconModel(backbone="none", patch_size=8, noise_floor=1.0, **SMALL).eval(), device="cpu")
    kspace = torch.view_as_complex(k[0].contiguous()).numpy()[None]
    lines = mask[0, 0, 0, :, 0].numpy()
    with torch.no_grad():
        cut = rec.reconstruct_kspace(kspace, lines, 8, crop_height=24)
        whole = rec.reconstruct_kspace(kspace, lines, 8)
        k24 = crop_readout(k, 24)
        np.testing.assert_allclose(cut, rec.net(k24, mask, 8).numpy(), rtol=1e-4, atol=1e-8)
        np.testing.assert_allclose(whole, rec.net(k, mask, 8, noise_floor=0.0).numpy(), rtol=1e-4, atol=1e-8)
        assert not np.allclose(whole, rec.net(k, mask, 8).numpy())


def test_reconstructor_reads_the_floor_off_the_rows_the_crop_removes():
    """noise_floor_source=readout_margin: the Reconstructor hands the network the noise of the rows that cutting
    the readout from 64 to 24 rows removes (physics.readout_margin_noise), and the floor is read off them instead
    of the cropped k-space."""
    from mrirecon.api import Reconstructor
    from mrirecon.physics import crop_readout, readout_margin_noise

    k, mask = _batch(B=1, H=64)
    torch.manual_seed(0)
    net = ReconModel(backbone="none", patch_size=8, noise_floor=1.0, noise_floor_source="readout_margin", **SMALL)
    rec = Reconstructor(net.eval(), device="cpu")
    kspace = torch.view_as_complex(k[0].contiguous()).numpy()[None]
    with torch.no_grad():
        cut = rec.reconstruct_kspace(kspace, mask[0, 0, 0, :, 0].numpy(), 8, crop_height=24)
        k24 = crop_readout(k, 24)
        np.testing.assert_allclose(
            cut, rec.net(k24, mask, 8, noise_samples=readout_margin_noise(k, 24)).numpy(), rtol=1e-4, atol=1e-8
        )
        assert not np.allclose(cut, rec.net(k24, mask, 8).numpy())


def test_final_solve_with_espirit_maps_only_corrects_along_them():
    """ESPIRiT maps: the measured lines of every physical coil are kept; a strong pull toward the network's image
    leaves the network's k-space as it was (only the measured lines put back)."""
    k, mask = _batch(C=5)
    torch.manual_seed(0)
    plain = ReconModel(patch_size=8, virtual_coils=3, **SMALL)
    args = dict(patch_size=8, virtual_coils=3, final_solve_iterations=4, final_solve_maps="espirit", **SMALL)
    solved, strong = ReconModel(**args), ReconModel(**{**args, "final_solve_weight": 1e8})
    for net in (solved, strong):
        net.load_state_dict(plain.state_dict())
    with torch.no_grad():
        out = solved(k, mask, 8, return_kspace=True)
        held = strong(k, mask, 8, return_kspace=True)
        before = plain(k, mask, 8, return_kspace=True)
    m = mask.expand_as(out)
    assert torch.equal(out[m], k[m]) and not torch.allclose(out, held)
    torch.testing.assert_close(held, torch.where(m, k, before), rtol=1e-4, atol=1e-9)


def test_espirit_solve_keeps_the_network_image_of_a_slice_without_a_calibration_region():
    """A slice whose sampled centre is under 3 columns (no ESPIRiT calibration possible) is reconstructed by the
    network alone, with a warning, instead of failing; the other slice of the batch still gets its solve."""
    k, mask = _batch(C=5)
    mask[1] = False
    mask[1, ..., 1::4, :] = True
    mask[1, ..., 19:21, :] = True  # a centre of 2 columns
    k = k * mask
    torch.manual_seed(0)
    plain = ReconModel(patch_size=8, virtual_coils=3, **SMALL)
    solved = ReconModel(
        patch_size=8, virtual_coils=3, final_solve_iterations=4, final_solve_maps="espirit", final_solve_trainable=True,
        final_solve_noise_exponent=0.75, final_solve_misfit_exponent=3.5, **SMALL,
    )  # fmt: skip
    solved.load_state_dict(plain.state_dict(), strict=False)  # all but the solve's weight
    low = torch.tensor([8, 2])
    with torch.no_grad(), pytest.warns(UserWarning, match="no ESPIRiT maps for slice 1"):
        out = solved(k, mask, low)
    with torch.no_grad():
        before = plain(k, mask, low)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[1], before[1])
    assert not torch.allclose(out[0], before[0])


def test_solve_weight_reads_sigma2_off_the_noise_samples_compressed_to_the_virtual_coils():
    """final_solve_noise_source=readout_margin: the weight's sigma^2 comes from the noise samples in the virtual coils'
    basis, so the image equals that of the k-space reading with a scaled by (sigma_samples^2 / sigma_kspace^2)^e;
    without samples the two sources give the same image."""
    from mrirecon.physics import coil_basis, compress_coils, kspace_noise_variance, sample_noise_variance

    k, mask = _batch(B=1, C=5)
    args = dict(
        patch_size=8, virtual_coils=3, final_solve_iterations=4, final_solve_maps="espirit", final_solve_trainable=True,
        final_solve_noise_exponent=0.75, **SMALL,
    )  # fmt: skip
    torch.manual_seed(0)
    kspace_net = ReconModel(**args).eval()
    margin_net = ReconModel(final_solve_noise_source="readout_margin", **args).eval()
    margin_net.load_state_dict(kspace_net.state_dict())
    samples = torch.randn(1, 5, 600, dtype=torch.complex64, generator=torch.Generator().manual_seed(1)) * 3e-5
    basis = coil_basis(k, 3)
    ratio = sample_noise_variance(torch.einsum("bcv,bcn->bvn", basis.conj(), samples))
    ratio = ratio / kspace_noise_variance(compress_coils(k, basis))
    with torch.no_grad():
        plain = kspace_net(k, mask, 8)
        torch.testing.assert_close(margin_net(k, mask, 8), plain)
        out = margin_net(k, mask, 8, noise_samples=samples)
        assert not torch.allclose(out, plain)
        kspace_net.final_solve_log_weight += 0.75 * ratio.log().item()
        torch.testing.assert_close(out, kspace_net(k, mask, 8), rtol=1e-4, atol=1e-9)
    with pytest.raises(ValueError, match="final_solve_noise_source"):
        ReconModel(final_solve_noise_source="air", **SMALL)


def test_trainable_espirit_solve_learns_its_weight_and_takes_maps_computed_ahead():
    """A learned solve weight: a gradient reaches it, the measured lines are no longer put back, and maps computed
    ahead by the data loader's transform give the same image as maps computed in the forward."""
    k, mask = _batch(C=5)
    torch.manual_seed(0)
    net_args = dict(
        patch_size=8, virtual_coils=3, final_solve_iterations=4, final_solve_maps="espirit", final_solve_trainable=True,
        **SMALL,
    )  # fmt: skip
    net = ReconModel(**net_args)
    assert net.final_solve_log_weight.item() == pytest.approx(np.log(0.1))
    out = net(k, mask, 8, return_kspace=True)
    m = mask.expand_as(out)
    assert not torch.allclose(out[m], k[m])
    out.square().sum().backward()
    assert net.final_solve_log_weight.grad is not None and net.final_solve_log_weight.grad.abs() > 0
    sample = VarNetSample(k[0], mask[0], 8, torch.zeros(48, 40), "a.h5", 0, 1.0, (48, 40))
    ahead = WithEspiritMaps(lambda *_: sample, 3)()
    assert ahead.espirit_maps.shape == (3, 48, 40, 2) and ahead[:8] == sample[:8]
    assert WithEspiritMaps(lambda *_: sample, 3, crop=1.01)().espirit_maps.abs().max() == 0
    with torch.no_grad():
        torch.testing.assert_close(
            net(k[:1], mask[:1], 8, espirit_maps=ahead.espirit_maps[None]), net(k[:1], mask[:1], 8)
        )
    # an eigenvalue crop keeps the network's image where the maps are zero: above every eigenvalue, the plain network
    blank = ReconModel(**{**net_args, "final_solve_crop": 1.01})
    blank.load_state_dict(net.state_dict())
    plain = ReconModel(patch_size=8, virtual_coils=3, **SMALL)
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if k != "final_solve_log_weight"})
    with torch.no_grad():
        torch.testing.assert_close(blank(k, mask, 8), plain(k, mask, 8))
        assert not torch.allclose(net(k, mask, 8), plain(k, mask, 8))
    # iterations 0 turn the solve off; the learned weight stays, so a codec trained with it still loads
    off = ReconModel(**{**net_args, "final_solve_iterations": 0})
    off.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(off(k, mask, 8), plain(k, mask, 8))
    # the per-scan weight a (sigma^2 / P)^e_noise m^e_misfit: exponents (1, 0) are the plain weight; a misfit
    # exponent makes the weight smaller (m < 1), so the solve moves further from the network
    plain_weight = ReconModel(**{**net_args, "final_solve_noise_exponent": 1.0, "final_solve_misfit_exponent": 0.0})
    misfit_weight = ReconModel(**{**net_args, "final_solve_misfit_exponent": 2.0})
    for model in (plain_weight, misfit_weight):
        model.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(plain_weight(k, mask, 8), net(k, mask, 8))
        solved, network = misfit_weight(k, mask, 8), blank(k, mask, 8)
        assert (solved - network).norm() > (net(k, mask, 8) - network).norm()


def test_shipped_default_runs_the_fitted_per_scan_solve_and_the_noise_floor_and_can_turn_them_off():
    net, _ = load_codec()
    assert (net.final_solve_iterations, net.final_solve_maps, net.final_solve_trainable) == (10, "espirit", True)
    assert net.final_solve_exponents == (0.75, 3.5) and net.final_solve_crop == 0.9
    # 0.3 x 10^5.75 (results/default_v13, default_v19) and the full noise floor (default_v19)
    assert net.final_solve_log_weight.item() == pytest.approx(np.log(168702.4))
    assert net.noise_floor == 1.0 and net.final_solve_support  # default_v19, default_v20
    assert net.final_solve_object == (0.1, 8)  # default_v22
    assert (net.noise_floor_source, net.noise_floor_level) == ("readout_margin", "mean")  # default_v23
    off = load_codec(final_solve_iterations=0, noise_floor=0.0)[0]
    assert off.final_solve_iterations == 0 and off.noise_floor == 0.0


def test_trigger_mode_reaches_the_backbone():
    net = ReconModel(**SMALL, patch_size=8)
    k, mask = _batch()
    with torch.no_grad():
        tokens = net.encoder(k, mask, 8).tokens
        token, off = net.run_backbone(tokens), net.run_backbone(tokens, trigger="off")
        assert torch.equal(net(k, mask, 8), net(k, mask, 8, trigger="token"))
    assert ((token - off).norm() / token.norm()).item() > 1e-5


def test_backbone_registry():
    ref = build_backbone("nirvana", "tiny", seed=3).reference
    assert ref["weights"] == "random-init(seed=3)" and len(ref["sha256"]) == 64
    assert build_backbone("nirvana", "tiny", seed=3).reference["sha256"] == ref["sha256"]
    assert build_backbone("nirvana", "tiny", seed=4).reference["sha256"] != ref["sha256"]
    gdn = build_backbone("gated-deltanet", "tiny")
    assert not any(layer.mixer.has_trigger for layer in gdn.body.layers)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("gpt")


def test_a_backbone_is_one_registry_entry(monkeypatch, tmp_path):
    import types
    import typing

    from mrirecon.codecs import backbones

    assert tuple(backbones.BACKBONE_REGISTRY) == backbones.BACKBONES
    # the option type the command line checks is the registry's names
    hint = typing.get_type_hints(ReconModel.__init__)["backbone"]
    assert typing.get_args(hint) == backbones.BACKBONES

    # a new backbone needs its entry only: build, forward, Trigger queries and the reference follow
    class Doubler(torch.nn.Module):  # called as Hugging Face models are
        def forward(self, inputs_embeds, use_cache=True):
            return types.SimpleNamespace(last_hidden_state=2 * inputs_embeds)

    entry = backbones.BackboneEntry(
        lambda req: backbones.FrozenBackbone(req.name, Doubler(), req.cfg.hidden_size, req.reference), False, "test"
    )
    monkeypatch.setitem(backbones.BACKBONE_REGISTRY, "doubler", entry)
    bb = build_backbone("doubler", "tiny")
    x = torch.randn(1, 3, bb.hidden_size)
    assert bb.num_trigger_layers == 0 and bb.logit_dim == 0 and bb.reference["name"] == "doubler"
    assert torch.equal(bb(x), 2 * x) and torch.equal(bb(x, trigger="off"), 2 * x)
    with pytest.raises(ValueError, match="random weights only"):
        build_backbone("doubler", "tiny", weights=str(tmp_path))
    nirvana = build_backbone("nirvana", "tiny")
    assert nirvana.trigger_aware and nirvana.num_trigger_layers > 0 and nirvana.logit_dim > 0
    assert not build_backbone("none", "tiny").trigger_aware


def test_codec_checkpoint_round_trip_and_tamper(tmp_path):
    net = ReconModel(**SMALL, patch_size=8)
    cfg = {"class_path": "mrirecon.codecs.ReconModel", "init_args": {**SMALL, "patch_size": 8}}
    save_codec(tmp_path / "c", net, cfg, metrics={})
    from safetensors.torch import load_file

    stored = load_file(tmp_path / "c" / "codec.safetensors")
    assert stored and not any(k.startswith("backbone.") for k in stored)
    back, card = load_codec(tmp_path / "c")
    k, mask = _batch()
    with torch.no_grad():
        assert torch.equal(back(k, mask, 8), net.eval()(k, mask, 8))
    assert card["backbone"]["name"] == "nirvana"
    # a foreign class and a changed weights file are refused
    original = (tmp_path / "c" / "card.json").read_text()
    (tmp_path / "c" / "card.json").write_text(json.dumps({**card, "net": {"class_path": "os.system"}}))
    with pytest.raises(ValueError, match="not part of mrirecon"):
        load_codec(tmp_path / "c")
    (tmp_path / "c" / "card.json").write_text(original)
    (tmp_path / "c" / "codec.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="sha256 differs"):
        load_codec(tmp_path / "c")


def _fit_args(root: Path, data: Path, extra: list[str]) -> list[str]:
    args = [
        "--config",
        str(Path(__file__).parents[1] / "codecs" / "base.yaml"),
        "--config",
        str(Path(__file__).parents[1] / "codecs" / "tiny.yaml"),
        f"--data.data_path={data}",
        "--data.num_workers=0",
        "--data.batch_size=1",
        f"--trainer.default_root_dir={root}",
        "--trainer.logger=false",
        "--trainer.callbacks=[]",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=2",
        "--trainer.limit_test_batches=2",
        "--trainer.enable_progress_bar=false",
    ]
    for key, value in {**SMALL, "patch_size": 16}.items():
        args.append(f"--model.net.init_args.{key}={value}")
    return args + extra


def test_fit_keeps_backbone_bit_identical_and_exports(synth_root, tmp_path):
    export = tmp_path / "codec"
    args = _fit_args(
        tmp_path,
        synth_root,
        [
            "--trainer.max_epochs=1",
            "--trainer.callbacks+=mrirecon.training.callbacks.ExportCodec",
            f"--trainer.callbacks.dirpath={export}",
            "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
            f"--trainer.callbacks.dirpath={tmp_path / 'ckpt'}",
            "--trainer.callbacks.save_last=true",
        ],
    )
    cli = fit_main(["fit", *args])
    net = cli.model.net
    fresh = ReconModel(**SMALL, patch_size=16)
    # the backbone is bit-identical to a fresh build of the same reference; the codecs changed
    for (name, a), b in zip(net.backbone.state_dict().items(), fresh.backbone.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not torch.equal(net.encoder.project.weight, fresh.encoder.project.weight)
    card = json.loads((export / "card.json").read_text())
    assert {"val", "test"} <= set(card["metrics"]) and 0 < card["metrics"]["test"]["SSIM"] <= 1
    assert card["backbone"]["sha256"] == fresh.backbone.reference["sha256"]
    assert card["data"]["data_path"] == str(synth_root)
    # Lightning checkpoints hold the codecs only, and training resumes from them
    last = tmp_path / "ckpt" / "last.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)  # our own file, written just above
    assert ckpt["state_dict"] and not any(k.startswith("net.backbone.") for k in ckpt["state_dict"])
    resumed = fit_main(
        ["fit", *_fit_args(tmp_path / "r", synth_root, ["--trainer.max_epochs=2"]), f"--ckpt_path={last}"]
    )
    assert resumed.trainer.current_epoch == 2 and resumed.trainer.global_step == 4
    # predict through the same CLI
    pred = fit_main(["predict", *_fit_args(tmp_path / "p", synth_root, ["--trainer.limit_predict_batches=2"])])
    assert pred.trainer.predict_loop.predictions is not None


def test_fit_off_a_terminal_prints_progress_lines_one_log_folder_and_tables(synth_root, tmp_path, capsys):
    """``make fit > log``: progress lines, CSV and TensorBoard logs in one version folder, a 0644 codec, no
    eval-mode warning, and the test table once per acceleration with zero-filled beside the codec."""
    import warnings

    logs = tmp_path / "logs"
    (logs / "run" / "version_0").mkdir(parents=True)  # an earlier run: this one must take version_1
    args = _fit_args(tmp_path, synth_root, ["--trainer.max_epochs=1", "--trainer.log_every_n_steps=1"])
    args = [a for a in args if a not in ("--trainer.logger=false", "--trainer.enable_progress_bar=false")]
    args = [a for a in args if a != "--trainer.callbacks=[]"] + [
        "--trainer.callbacks=[]",
        "--trainer.callbacks+=lightning.pytorch.callbacks.RichProgressBar",
        "--trainer.callbacks+=mrirecon.training.callbacks.ExportCodec",
        f"--trainer.callbacks.dirpath={tmp_path / 'codec'}",
        f'--trainer.logger=[{{"class_path": "lightning.pytorch.loggers.CSVLogger", '
        f'"init_args": {{"save_dir": "{logs}", "name": "run"}}}}, '
        f'{{"class_path": "lightning.pytorch.loggers.TensorBoardLogger", '
        f'"init_args": {{"save_dir": "{logs}", "name": "run"}}}}]',
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit_main(["fit", *args])
    out = capsys.readouterr()
    assert not [w for w in caught if "eval mode" in str(w.message)]
    assert "frozen and stays in eval mode on purpose" in out.err
    assert re.search(r"epoch 1/1 step 1/2 loss \d\.\d+, [\d.]+ it/s, elapsed 0:\d\d", out.err), out.err
    assert "validation after epoch 1: val_loss" in out.err
    assert sorted(p.name for p in (logs / "run").iterdir()) == ["version_0", "version_1"]
    one = logs / "run" / "version_1"
    assert (one / "metrics.csv").is_file() and list(one.glob("events.out.tfevents.*"))
    for name in ("codec.safetensors", "card.json"):
        assert ((tmp_path / "codec" / name).stat().st_mode & 0o777) == 0o644 & ~_umask()
    for acc in ("4x", "8x"):
        table = out.out[out.out.index(f"{acc} (fastMRI protocol)") :]
        assert "zero-filled" in table.split("ours")[0] and "ours" in table


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_reconstruct_command_can_skip_the_final_solve_and_the_noise_floor(synth_root, tmp_path):
    solve = dict(final_solve_iterations=3, final_solve_maps="espirit", final_solve_trainable=True, noise_floor=1.0)
    args = dict(patch_size=16, **solve, **SMALL)
    torch.manual_seed(0)
    save_codec(tmp_path / "c", ReconModel(**args), {"class_path": "mrirecon.codecs.ReconModel", "init_args": args})
    src = sorted((synth_root / "test").glob("*.h5"))[0]
    images = {}
    for name, extra in (("both", []), ("network", ["--no-final-solve"]), ("no-floor", ["--no-noise-floor"])):
        argv = ["--input", str(src), "--output", str(tmp_path / name), "--checkpoint", str(tmp_path / "c"), *extra]
        assert reconstruct_main(argv) == 0
        with h5py.File(next((tmp_path / name).glob("*.h5"))) as hf:
            images[name] = hf["reconstruction"][()]
            assert (hf.attrs["final_solve"], hf.attrs["noise_floor"]) == (name != "network", name != "no-floor")
    assert not np.allclose(images["both"], images["network"])
    # this file's readout is not oversampled, so the floor does not apply to it (the Reconstructor's gate)
    np.testing.assert_allclose(images["both"], images["no-floor"])
    assert _overrides(None, True, False) == {"noise_floor": 0.0} and _overrides("off", False) == {
        "trigger": "off",
        "final_solve_iterations": 0,
    }


def test_reconstruct_command_good_and_bad_files(synth_root, tmp_path, capsys):
    net = ReconModel(**SMALL, patch_size=16)
    save_codec(tmp_path / "c", net, {"class_path": "mrirecon.codecs.ReconModel", "init_args": {**SMALL}})
    inputs = tmp_path / "in"
    inputs.mkdir()
    for src in [
        *sorted((synth_root / "test_format").glob("*.h5"))[:2],
        *sorted((synth_root / "test").glob("*.h5"))[:1],
    ]:
        (inputs / src.name).write_bytes(src.read_bytes())
    (inputs / "broken.h5").write_bytes(b"not an hdf5 file")
    code = reconstruct_main(
        ["--input", str(inputs), "--output", str(tmp_path / "out"), "--checkpoint", str(tmp_path / "c")]
    )
    err = capsys.readouterr()
    assert code == 1 and "broken.h5" in err.err and "reconstructed 3, skipped 0, failed 1" in err.out
    # off a terminal: one progress line per slice and per file
    assert re.search(r"reconstructing \S+\.h5: slice 1/\d+, [\d.]+ s", err.err), err.err
    assert "reconstruct: file 4/4" in err.err
    outs = sorted((tmp_path / "out").glob("*.h5"))
    assert len(outs) == 3
    with h5py.File(outs[0]) as hf:
        recon = hf["reconstruction"][()]
        assert recon.dtype == np.float32 and recon.shape[1:] == (128, 128) and np.isfinite(recon).all()
    # a second run skips what exists; no temporary files are left behind
    assert (
        reconstruct_main(
            [
                "--input",
                str(inputs / outs[0].name),
                "--output",
                str(tmp_path / "out"),
                "--checkpoint",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    assert not list((tmp_path / "out").glob(".*"))
    assert (
        reconstruct_main(
            ["--input", str(inputs), "--output", str(tmp_path / "o2"), "--checkpoint", str(tmp_path / "none")]
        )
        == 2
    )


def test_kspace_to_dicom_with_the_model(synth_root, tmp_path):
    import pydicom

    from mrirecon.convert import main as convert_main

    net = ReconModel(**SMALL, patch_size=16)
    save_codec(tmp_path / "c", net, {"class_path": "mrirecon.codecs.ReconModel", "init_args": {**SMALL}})
    src = sorted((synth_root / "test_format").glob("*.h5"))[0]
    code = convert_main(
        ["kspace-to-dicom", str(src), str(tmp_path / "dcm"), "--recon-option", f"checkpoint={tmp_path / 'c'}"]
    )
    files = sorted((tmp_path / "dcm").rglob("*.dcm"))
    assert code == 0 and len(files) == 2  # the tiny preset has 2 slices
    ds = pydicom.dcmread(files[0])
    assert ds.SOPClassUID == pydicom.uid.MRImageStorage and (ds.Rows, ds.Columns) == (128, 128)


def test_bf16_autocast_forward_and_backward():
    """bf16-mixed training: U-Nets in bf16, complex FFTs kept in float32."""
    net = ReconModel(**SMALL, patch_size=8)
    k, mask = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(k, mask, 8)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    out.mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_centre_sensitivity_model_equals_fastmri_per_sample():
    from fastmri.models.varnet import SensitivityModel

    from mrirecon.codecs.graph_safe import CentreSensitivityModel

    torch.manual_seed(0)
    ref, ours = SensitivityModel(4, 2), CentreSensitivityModel(4, 2)
    ours.load_state_dict(ref.state_dict())
    mask = torch.zeros(3, 1, 1, 24, 1, dtype=torch.bool)
    mask[..., ::3, :] = True
    mask[..., 10:14, :] = True
    kspace = torch.randn(3, 4, 32, 24, 2) * mask
    widths = torch.tensor([4, 2, 0])  # 0: read off the mask
    with torch.no_grad():
        expected = torch.cat([ref(kspace[i : i + 1], mask[i : i + 1], int(widths[i])) for i in range(3)])
        assert torch.allclose(ours(kspace, mask, widths), expected, atol=1e-6)
        assert torch.allclose(ours(kspace, mask, None), ref(kspace, mask, None), atol=1e-6)


def test_grow_cascades_copies_the_last_ones_and_refuses_shrinking(tmp_path, capsys):
    from mrirecon.codecs.grow import main as grow_main

    args = {**SMALL, "num_cascades": 2, "patch_size": 8}
    net = ReconModel(**args)
    save_codec(tmp_path / "c", net, {"class_path": "mrirecon.codecs.ReconModel", "init_args": args}, metrics={"x": 1})
    assert grow_main([str(tmp_path / "c"), str(tmp_path / "g"), "--cascades", "3"]) == 0
    grown, card = load_codec(tmp_path / "g")
    assert card["net"]["init_args"]["num_cascades"] == 3 and card["metrics"] == {"x": 1}
    assert card["grown_from"]["num_cascades"] == 2 and card["grown_from"]["copied"] == "1-1"
    old, new = net.decoder.cascades, grown.decoder.cascades
    for i, j in [(0, 0), (1, 1), (1, 2)]:  # the new third cascade starts as a copy of the second
        for (name, a), b in zip(old[i].state_dict().items(), new[j].state_dict().values(), strict=True):
            assert torch.equal(a, b), name
    assert new[2].dc_weight.data_ptr() != new[1].dc_weight.data_ptr()  # copies, not shared tensors
    k, mask = _batch()
    with torch.no_grad():
        assert torch.isfinite(grown(k, mask, 8)).all()
    for cascades in ("2", "5"):
        with pytest.raises(SystemExit) as exit_:
            grow_main([str(tmp_path / "c"), str(tmp_path / f"bad{cascades}"), "--cascades", cascades])
        assert exit_.value.code == 2 and "has 2 cascades" in capsys.readouterr().err


def test_support_option_leaves_nothing_outside_the_maps_where_the_noise_floor_fills_it():
    """final_solve_support: the coil images are zero where every ESPIRiT map is zero (there the solve cannot act on
    the network's fold-over residue) and the solve's inside; only in a call with the noise floor on."""
    import fastmri

    k, mask = _batch(B=1, C=5)
    maps = torch.randn(1, 3, 48, 40, 2, generator=torch.Generator().manual_seed(1))
    maps[..., :, :12, :] = 0  # the object's support: columns 12 and up
    torch.manual_seed(0)
    args = dict(
        patch_size=8, virtual_coils=3, final_solve_iterations=4, final_solve_maps="espirit", final_solve_trainable=True,
        noise_floor=1.0, **SMALL,
    )  # fmt: skip
    plain, cut = ReconModel(**args).eval(), ReconModel(final_solve_support=True, **args).eval()
    cut.load_state_dict(plain.state_dict())
    with torch.no_grad():
        run = lambda net, **kw: fastmri.ifft2c(net(k, mask, 8, espirit_maps=maps, return_kspace=True, **kw))  # noqa: E731
        before, after = run(plain), run(cut)
        torch.testing.assert_close(run(cut, noise_floor=0.0), before)  # floor off: support off
    peak = before.abs().max()
    assert after[..., :12, :].abs().max() < 1e-5 * peak and before[..., :12, :].abs().max() > 1e-2 * peak
    torch.testing.assert_close(after[..., 12:, :], before[..., 12:, :], rtol=1e-4, atol=1e-5 * peak.item())


def test_object_option_leaves_the_network_image_alone_off_the_object():
    """final_solve_object_threshold: the solve's correction is kept only inside the object mask of the network's
    combined image, where it is the plain solve's own; outside, the coil images are the network's."""
    import fastmri

    from mrirecon.physics import object_mask, sens_reduce

    k, mask = _batch(B=1, C=4)
    maps = torch.randn(1, 4, 48, 40, 2, generator=torch.Generator().manual_seed(1)) * 0.5
    torch.manual_seed(0)
    args = dict(patch_size=8, final_solve_maps="espirit", final_solve_trainable=True, **SMALL)
    network = ReconModel(final_solve_iterations=0, **args).eval()
    plain = ReconModel(final_solve_iterations=4, **args).eval()
    masked = ReconModel(final_solve_iterations=4, final_solve_object_threshold=0.6, final_solve_object_margin=1, **args)
    for net in (plain, masked.eval()):
        net.load_state_dict(network.state_dict())
    with torch.no_grad():
        run = lambda net: net(k, mask, 8, espirit_maps=maps, return_kspace=True)  # noqa: E731
        before, solved, after = run(network), run(plain), run(masked)
        inside = object_mask(sens_reduce(before, maps), 0.6, 1).bool()[:, 0, ..., 0]  # [1,H,W]
    assert 0 < inside.float().mean() < 0.8
    change = lambda out: (fastmri.ifft2c(out) - fastmri.ifft2c(before)).abs().amax(dim=(1, 4))  # noqa: E731
    peak = fastmri.ifft2c(before).abs().max()
    assert change(after)[~inside].max() < 1e-5 * peak  # off the object: the network's coil images
    assert change(after)[inside].max() > 1e-3 * peak  # on it: corrected, as the plain solve does
    on_object = lambda out: fastmri.ifft2c(out).movedim(1, -2)[inside]  # noqa: E731
    torch.testing.assert_close(on_object(after), on_object(solved), rtol=1e-4, atol=1e-5 * peak.item())
    assert change(solved)[~inside].max() > 1e-3 * peak  # the plain solve acts everywhere
