"""The Gradio app: served for real on a free loopback port, driven with gradio_client and with a real
browser (Playwright + Debian's chromium), plus in-process checks of its cache, cleanup and defaults."""

from __future__ import annotations

import inspect
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from mrirecon.app import CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "app" / "examples"
FULL = EXAMPLES / "example_fully_sampled.h5"
TEST_FORMAT = EXAMPLES / "example_test_format_acc4.h5"
TINY = {"backbone_config": "tiny", "num_cascades": 1, "chans": 4, "stem_chans": 8, "token_dim": 16, "sens_chans": 4}
MAX_FILE_SIZE = "8mb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny ReconModel codec (the app only needs something loadable)."""
    from mrirecon.codecs import ReconModel
    from mrirecon.codecs.checkpoint import save_codec

    directory = tmp_path_factory.mktemp("codec")
    save_codec(directory, ReconModel(**TINY), {"class_path": "mrirecon.codecs.ReconModel", "init_args": TINY})
    return directory


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    """``python app/app.py`` in a subprocess on a free loopback port; stopped at the end."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "app.log"
    tmp_root = tmp_path_factory.mktemp("tmp")
    env = {
        **os.environ,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("gradio")),
        "PYTHONUNBUFFERED": "1",
        "TMPDIR": str(tmp_root),
    }
    cmd = [sys.executable, str(ROOT / "app" / "app.py"), "--port", str(port), "--checkpoint", str(checkpoint)]
    cmd += ["--max-file-size", MAX_FILE_SIZE, "--device", "cpu"]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the app did not answer within 90 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        assert len(list(tmp_root.glob("mrirecon-app-*"))) == 1  # its temporary folder (removed at exit)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    assert proc.returncode == 0, log.read_text()[-3000:]  # SIGTERM unwinds cleanly
    assert not list(tmp_root.glob("mrirecon-app-*")), "the app left its temporary folder behind"


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


def _reconstruct(client, path: Path, trigger: str = "token", tta: int = 0, acceleration: int = 4):
    from gradio_client import handle_file

    out = client.predict(
        handle_file(str(path)), "equispaced_fraction", acceleration, trigger, tta, api_name="/reconstruct"
    )
    # outputs: error box, summary, slider, 4 images, mask, metrics, h5, dicom, details, png, window black/white,
    # k-space, consistency text and its two maps, adaptation note, zoom and its centre, coil-map text and image
    # (the State is not in the API)
    return {"error": out[0], "summary": out[1], "slider": out[2], "images": out[3:7], "mask": out[7],
            "metrics": out[8], "h5": out[9], "dicom": out[10], "details": out[11], "png": out[12],
            "kspace": out[15], "consistency": out[16:19], "tta": out[19], "zoom": out[20:23]}  # fmt: skip


def _value(update):
    return update.get("value") if isinstance(update, dict) else update


# ------------------------------------------------------------------------------------------------
# API (gradio_client)


def test_api_reconstructs_example_with_metrics_and_downloads(client):
    out = _reconstruct(client, FULL)
    details = out["details"]
    assert "error" not in details, details
    assert out["error"]["visible"] is False
    assert details["shape"] == [4, 128, 128] and details["test_format"] is False
    assert details["settings"] == {"mask_type": "equispaced_fraction", "trigger": "token"}
    assert 3.5 < details["acceleration"] < 4.5
    for metrics in (details["metrics"], details["zero_filled_metrics"]):
        assert set(metrics) == {"NMSE", "PSNR", "SSIM"} and all(np.isfinite(v) for v in metrics.values())
    assert details["zero_filled_metrics"]["PSNR"] > 15  # the zero-filled image of a 4x example is close to it
    assert out["slider"]["maximum"] == 3 and out["slider"]["value"] == 2
    assert "example_fully_sampled.h5" in out["summary"] and "Timings" in out["summary"]
    from PIL import Image

    mask = np.asarray(Image.open(out["mask"]))
    mask = mask[..., 0] if mask.ndim == 3 else mask
    assert 0.2 < (mask[3:-3, 3:-3] == 255).mean() < 0.3  # about a quarter of the columns acquired

    with h5py.File(_value(out["h5"]), "r") as hf:
        recon = hf["reconstruction"][()]
        assert recon.dtype == np.float32 and recon.shape == (4, 128, 128) and np.isfinite(recon).all()
        assert "ismrmrd_header" in hf and 3.5 < hf.attrs["acceleration"] < 4.5
    import pydicom

    with zipfile.ZipFile(_value(out["dicom"])) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".dcm"))
        assert len(names) == 4
        with zf.open(names[0]) as fh:
            ds = pydicom.dcmread(fh)
    assert ds.Modality == "MR" and str(ds.PatientName).startswith("ANON-")  # de-identified
    assert ds.pixel_array.shape == (128, 128)

    # the same file and settings again: served from the cache
    again = _reconstruct(client, FULL)
    assert again["details"]["cached"] is True and again["details"]["metrics"] == details["metrics"]

    # moving the slider re-renders from the cache: per-slice metrics of slice 1
    imgs = client.predict(1, 0, 100, 1, 50, 50, api_name="/render")
    table = imgs[4]
    assert "reconstruction, slice 1" in table["headers"] and [r[0] for r in table["data"]] == ["SSIM", "PSNR", "NMSE"]
    assert all(_value(i) for i in imgs[:4])  # zero-filled, recon, reference, error map

    # the consistency figure came with the reconstruction (middle slice), no extra request
    text, measured, heldout = out["consistency"]
    assert "slice 2" in text and "held-out measured lines" in text and Path(_value(measured)).is_file()
    assert Path(_value(heldout)).is_file() and "off" in out["tta"]
    text, measured, _ = client.predict(1, api_name="/consistency")  # and for another slice on request
    assert "slice 1" in text and Path(_value(measured)).is_file()

    # linked zoom: 4x around the top-left quarter changes every panel the same way
    zoomed = client.predict(1, 0, 100, 4, 25, 25, api_name="/render")
    for whole, part in zip(imgs[:4], zoomed[:4], strict=True):
        a, b = (np.asarray(Image.open(_value(x)).convert("L"), np.float32) for x in (whole, part))
        assert a.shape == b.shape and np.abs(a - b).mean() > 1  # same panel size, other content


def test_api_test_format_keeps_its_mask_and_has_no_metrics(client):
    out = _reconstruct(client, TEST_FORMAT, trigger="off", acceleration=8)
    details = out["details"]
    assert details["test_format"] is True and details["metrics"] is None
    assert details["settings"]["mask_type"] == "from file" and details["settings"]["trigger"] == "off"
    assert 3.5 < details["acceleration"] < 4.5  # the file's 4x mask, not the 8x asked for
    imgs = client.predict(0, 0, 100, 1, 50, 50, api_name="/render")
    assert _value(imgs[0]) and _value(imgs[1])  # zero-filled and reconstruction
    assert imgs[2]["visible"] is False and imgs[3]["visible"] is False  # no reference, no error map
    table = imgs[4]
    assert "metrics need a fully sampled file" in str(table["data"])  # says why there are no numbers
    assert Path(_value(imgs[6])).is_file()  # the measured k-space view


def test_readme_gradio_client_example_returns_images_and_metrics(server):
    """The README's one-line scripted use, verbatim: images come back as files and the metrics as a table."""
    from gradio_client import Client, handle_file
    from PIL import Image

    out = Client(server, verbose=False).predict(
        handle_file(str(FULL)), "equispaced_fraction", 4, "token", 0, api_name="/reconstruct"
    )
    for panel in out[3:7]:  # zero-filled, reconstruction, reference, error map of the middle slice
        with Image.open(_value(panel)) as im:
            assert min(im.size) >= 128 and np.asarray(im).std() > 0
    table = out[8]
    assert [r[0] for r in table["data"]] == ["SSIM", "PSNR", "NMSE"] and "reconstruction, volume" in table["headers"]
    assert all(c not in ("", None) for r in table["data"] for c in r)
    assert Path(_value(out[12])).suffix == ".png" and Path(_value(out[15])).is_file()


def test_api_bad_inputs_give_messages_and_the_app_keeps_serving(client, tmp_path):
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    out = _reconstruct(client, corrupt)
    assert out["error"]["visible"] is True
    assert "corrupt.h5: not an HDF5 file" in out["error"]["value"] and "Traceback" not in out["error"]["value"]
    assert out["details"] == {"error": "corrupt.h5: not an HDF5 file"}
    assert "no result" in str(out["metrics"]["data"])  # the empty table says why

    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(FULL.read_bytes()[:200_000])
    message = _reconstruct(client, truncated)["error"]["value"]
    assert "truncated.h5: truncated or corrupt HDF5 file" in message and "copy or upload the complete file" in message
    assert "sblock" not in message and "synchronously" not in message  # no h5py internals

    no_kspace = tmp_path / "no_kspace.h5"
    with h5py.File(no_kspace, "w") as hf:
        hf["reconstruction_rss"] = np.zeros((2, 8, 8), np.float32)
    out = _reconstruct(client, no_kspace)
    assert "no_kspace.h5: missing dataset 'kspace'" in out["error"]["value"]

    out = _reconstruct(client, FULL, tta=1)  # per-scan test-time adaptation runs through the reconstructor
    assert out["error"]["visible"] is False and out["details"]["settings"]["tta_steps"] == 1
    assert "before →" in out["tta"] and "adapted result used" in out["tta"]

    too_big = tmp_path / "too_big.h5"
    too_big.write_bytes(b"\0" * 9_000_000)  # above the server's 8 MB cap: refused by the upload route
    with pytest.raises(Exception, match="(?i)maximum file size|413"):
        _reconstruct(client, too_big)

    assert _reconstruct(client, FULL)["details"]["metrics"]["SSIM"] > 0  # still serving


# ------------------------------------------------------------------------------------------------
# browser (Playwright driving Debian's chromium)


def _chromium(sync_api):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (make tools installs it); never `playwright install`")
    return chromium


def _srcs(page, ids) -> list[str | None]:
    return [page.locator(f"#{i} img").get_attribute("src") for i in ids]


def _wait_all_changed(page, ids, before) -> None:
    """Wait until every panel of ``ids`` shows another image than ``before`` (linked panels move together)."""
    page.wait_for_function(
        """([ids, before]) => ids.every((id, k) => {
            const i = document.querySelector('#' + id + ' img'); return i && i.src !== before[k]; })""",
        arg=[ids, before],
        timeout=15_000,
    )


PANELS = [f"img-{i}" for i in range(4)]


def test_browser_viewer(server):
    """The example in Chromium: progress per slice and adaptation step, the consistency figure and the
    adaptation's before/after numbers with the reconstruction, slice slider, window/level and linked zoom
    (sliders and a click) moving all panels, k-space with the mask, coil maps."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = _chromium(sync_api)
    expect = sync_api.expect
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(server)
            header = page.locator("#header")
            expect(header).to_contain_text("ReconModel")
            expect(header).to_contain_text("backbone nirvana")

            # progress moves per slice and per adaptation step on this 4-slice volume (not one jump at the end)
            page.evaluate(
                """() => { window.__seen = new Set();
                new MutationObserver(() => {
                    for (const m of document.body.innerText.matchAll(/(slice|adaptation step) \\d+\\/\\d+/g))
                        window.__seen.add(m[0]);
                }).observe(document.body, {subtree: true, childList: true, characterData: true}); }"""
            )
            page.locator("#examples button", has_text="example_fully_sampled.h5").click()
            expect(page.locator("#kspace-file")).to_contain_text("example_fully_sampled", timeout=15_000)
            tta = page.locator("input[aria-label='number input for TTA steps (0 = off)']")
            tta.fill("2")
            tta.press("Enter")
            page.locator("#reconstruct").click()
            for i in range(4):
                page.wait_for_selector(f"#img-{i} img", timeout=90_000)
            seen = set(page.evaluate("() => [...window.__seen]"))
            assert {"slice 1/4", "slice 2/4", "slice 3/4"} & seen and any("adaptation step" in t for t in seen), seen
            metrics = page.locator("#metrics")
            expect(metrics).to_contain_text("reconstruction, slice 2", timeout=15_000)
            expect(metrics).to_contain_text("SSIM")
            expect(page.locator("#summary")).to_contain_text("Timings")
            expect(page.locator("#dl-dicom")).to_be_visible()
            # with every reconstruction, no button: the adaptation's numbers and the consistency figure
            expect(page.locator("#tta")).to_contain_text("held-out k-space error")
            expect(page.locator("#tta")).to_contain_text("before →")
            expect(page.locator("#tta")).to_contain_text("adapted result used")
            checks = page.locator("#consistency-text")
            expect(checks).to_contain_text("slice 2")
            expect(checks).to_contain_text("held-out measured lines")
            for view in ("residual-measured", "residual-heldout"):
                page.wait_for_selector(f"#{view} img", timeout=15_000)

            before = _srcs(page, PANELS)
            slider = page.locator("#slice input[type=range]")
            slider.focus()
            page.keyboard.press("ArrowRight")
            expect(metrics).to_contain_text("reconstruction, slice 3", timeout=15_000)
            _wait_all_changed(page, PANELS, before)
            assert slider.input_value() == "3"
            expect(checks).to_contain_text("slice 3", timeout=30_000)  # the figure follows the slice

            # panels are large, with a fullscreen button; window/level changes the grey panels
            box = page.locator("#img-1 img").bounding_box()
            assert box and box["height"] >= 400, box
            page.locator("#img-1").hover()
            assert page.locator("#img-1 button[aria-label*='ull' i], #img-1 button[title*='ull' i]").count() >= 1
            grey = PANELS[:3]
            before = _srcs(page, grey)
            white = page.locator("#window-white input[type=range]")
            white.focus()
            for _ in range(30):
                page.keyboard.press("ArrowLeft")
            _wait_all_changed(page, grey, before)

            # linked zoom: the zoom slider changes all four panels, the error map included
            before = _srcs(page, PANELS)
            zoom = page.locator("#zoom input[type=range]")
            zoom.focus()
            page.keyboard.press("ArrowRight")  # one step (a second render could still be on its way after two)
            _wait_all_changed(page, PANELS, before)
            assert zoom.input_value() == "1.5"
            # a click on one panel centres every panel there
            before = _srcs(page, PANELS)
            centre_x = page.locator("#zoom-x input[type=range]")
            box = page.locator("#img-2 img").bounding_box()
            # the square image is centred in its panel: click left of and above its middle
            page.mouse.click(box["x"] + box["width"] * 0.2, box["y"] + box["height"] / 2 - box["width"] * 0.3)
            _wait_all_changed(page, PANELS, before)
            assert (
                int(centre_x.input_value()) < 50 and int(page.locator("#zoom-y input[type=range]").input_value()) < 50
            )
            before = _srcs(page, PANELS)
            page.locator("#zoom-reset").click()
            _wait_all_changed(page, PANELS, before)
            assert zoom.input_value() == "1" and centre_x.input_value() == "50"

            # the k-space tab: log-magnitude k-space of the slice and the sampling mask
            page.get_by_role("tab", name="k-space and mask").click()
            page.wait_for_selector("#kspace img", timeout=15_000)
            page.wait_for_selector("#mask img", timeout=15_000)
            # coil maps of the slice shown, on request
            page.get_by_role("tab", name="Coil maps").click()
            page.locator("#coil-button").click()
            expect(page.locator("#coil-text")).to_contain_text("Coil sensitivity maps of slice 3", timeout=60_000)
            page.wait_for_selector("#coils img", timeout=15_000)
        finally:
            browser.close()


def test_browser_bad_uploads_show_one_clean_message(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = _chromium(sync_api)
    expect = sync_api.expect
    corrupt = tmp_path / "random.h5"
    corrupt.write_bytes(np.random.default_rng(1).bytes(2048))
    truncated = tmp_path / "cut_short.h5"
    truncated.write_bytes(FULL.read_bytes()[:200_000])
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(server)  # a corrupt file
            page.locator("#kspace-file input[type=file]").set_input_files(str(corrupt))
            expect(page.locator("#kspace-file")).to_contain_text("random", timeout=15_000)
            page.locator("#reconstruct").click()
            error = page.locator("#error-box")
            expect(error).to_be_visible(timeout=30_000)
            expect(error).to_contain_text("random.h5: not an HDF5 file")
            assert "Traceback" not in page.content()
            expect(page.locator("#metrics")).to_contain_text("no result: see the error above")  # says why it is empty
            expect(page.locator("#consistency-text")).to_contain_text("no reconstruction")

            page.goto(server)  # a truncated upload: one readable message, shown once (no toast besides it)
            page.locator("#kspace-file input[type=file]").set_input_files(str(truncated))
            expect(page.locator("#kspace-file")).to_contain_text("cut_short", timeout=15_000)
            page.locator("#reconstruct").click()
            expect(error).to_contain_text("cut_short.h5: truncated or corrupt HDF5 file", timeout=30_000)
            expect(error).to_contain_text("copy or upload the complete file again")
            page.wait_for_timeout(1000)  # a toast would have appeared by now
            assert page.get_by_text("truncated or corrupt HDF5 file").count() == 1
            assert "sblock" not in page.content() and "synchronously" not in page.content()
        finally:
            browser.close()
    with urllib.request.urlopen(server, timeout=5) as r:  # still serving
        assert r.status == 200


# ------------------------------------------------------------------------------------------------
# in-process


def test_defaults_bind_loopback_without_share(monkeypatch):
    import mrirecon.app.serve as app_mod

    sig = inspect.signature(app_mod.launch)
    assert sig.parameters["host"].default == "127.0.0.1" and sig.parameters["share"].default is False
    seen = {}

    class FakeDemo:
        mri = type("M", (), {"close": lambda self: None})()

        def queue(self, **kw):
            return self

        def launch(self, **kw):
            seen.update(kw)

        def close(self):
            seen["closed"] = True

    monkeypatch.setattr(app_mod.signal, "signal", lambda *a: None)  # leave pytest's SIGTERM handler alone
    monkeypatch.setattr(app_mod, "build_app", lambda **kw: seen.update(build=kw) or FakeDemo())
    assert app_mod.main(["--checkpoint", "some/dir"]) == 0
    assert (
        seen["server_name"] == "127.0.0.1" and seen["share"] is False and seen["server_port"] == 7860 and seen["closed"]
    )
    assert seen["max_file_size"] == "200mb" and seen["build"]["max_file_size"] == "200mb"
    assert app_mod.parse_size("200mb") == 200 * 2**20 and app_mod.parse_size("2 GB") == 2 * 2**30
    for bad in ("lots", "1.5gb"):  # Gradio's own parser reads the cap: whole numbers of a unit only
        with pytest.raises(ValueError, match="cannot read the size"):
            app_mod.parse_size(bad)
    with pytest.raises(SystemExit):  # refused before the network is loaded
        app_mod.main(["--max-file-size", "1.5gb"])


def _one_slice(tmp_path: Path) -> Path:
    """A 1-slice copy of the fully sampled example (keeps in-process reconstructions fast)."""
    one = tmp_path / "one_slice.h5"
    with h5py.File(FULL, "r") as src, h5py.File(one, "w") as dst:
        dst["kspace"] = src["kspace"][:1]
        dst["reconstruction_rss"] = src["reconstruction_rss"][:1]
        dst["ismrmrd_header"] = src["ismrmrd_header"][()]
        dst.attrs.update(dict(src.attrs))
    return one


def test_baseline_checkpoint_hides_trigger(tmp_path):
    import gradio as gr

    from mrirecon.app import build_app
    from mrirecon.baselines.learned import UNetBaseline
    from mrirecon.codecs.checkpoint import save_codec

    args = {"chans": 4, "num_pool_layers": 2}
    ckpt = save_codec(tmp_path / "unet", UNetBaseline(**args), {"class_path": "mrirecon.baselines.learned.UNetBaseline",
                                                                "init_args": args})  # fmt: skip
    demo = build_app(checkpoint=ckpt, examples_dir=None, device="cpu")
    try:
        radios = [b for b in demo.blocks.values() if isinstance(b, gr.Radio) and b.label == "Trigger mode"]
        assert len(radios) == 1 and radios[0].visible is False
        assert not demo.mri.has_trigger and demo.mri.examples == []
        entry, _ = demo.mri.load_and_reconstruct(str(_one_slice(tmp_path)), "random", 8, "scan", 0)
        assert "trigger" not in entry.result.settings and "|-|" in entry.key  # not passed to a baseline
        assert np.isfinite(entry.result.metrics["SSIM"]) and 6 < entry.result.acceleration < 10  # random U-Net
        text, measured, heldout = entry.consistency[0]  # an image-only network: the figure says why it is empty
        assert "returns images only" in text and measured is None and heldout is None
    finally:
        demo.mri.close()


def test_cache_keys_lru_and_cleanup(checkpoint, tmp_path):
    from mrirecon.app import MriApp, ReconCache, ReconSettings
    from mrirecon.app.views import mask_image, slice_images

    one = _one_slice(tmp_path)
    app = MriApp(checkpoint, examples_dir=EXAMPLES, max_file_size="2mb", device="cpu", cache_size=2)
    try:
        assert [p.name for p in app.examples] == [FULL.name, TEST_FORMAT.name]
        assert app.has_trigger
        entry, cached = app.load_and_reconstruct(str(one), "equispaced_fraction", 4, "token", 0)
        assert not cached and entry.result.recon.shape == (1, 128, 128)
        assert len(entry.slice_metrics) == 1 and set(entry.slice_metrics[0]) == {"zero-filled", "recon"}
        assert app.load_and_reconstruct(str(one), "equispaced_fraction", 4, "token", 0)[1] is True
        keys = {ReconSettings("random", 4, t, n).cache_key("d", False) for t in ("token", "off") for n in (0, 3)}
        assert len(keys) == 4 and ReconSettings("random", 4, "off").cache_key("d", False) != ReconSettings(
            "random", 8, "off"
        ).cache_key("d", False)
        own_mask = ReconSettings("random", 4, "off").cache_key("d", True)
        assert own_mask == ReconSettings("magic", 8, "off").cache_key("d", True)
        imgs = slice_images(entry, 0)
        assert imgs["reconstruction"].dtype == np.uint8 and imgs["|error| x 5"].shape == (128, 128, 3)
        with pytest.raises(ValueError, match="above this server's limit"):
            app.load_and_reconstruct(str(FULL), "equispaced_fraction", 4, "token", 0)

        session = app.sessions.folder("abc123")
        (session / "x.png").write_bytes(b"x")
        app.sessions.drop("abc123")
        assert not session.exists()
    finally:
        app.close()
    assert not app.sessions.root.exists()

    lru = ReconCache(size=2)
    for key in "abc":
        lru.put(type("E", (), {"key": key})())
    assert lru.get("a") is None and lru.get("b") is not None and len(lru) == 2
    stripe = mask_image(np.array([1, 0, 0, 0] * 32, bool))
    inner = stripe[3:-3, 3:-3]
    assert inner.shape[1] >= 512 and abs((inner == 255).mean() - 0.25) < 1e-6 and (stripe[0] == 128).all()


def test_progress_moves_per_slice_and_per_adaptation_step(checkpoint, tmp_path):
    """A 2-slice volume gives a progress step per slice (not one step for the whole volume), and
    test-time adaptation one per step; the adaptation's before/after numbers and the consistency figure of
    the middle slice come with the reconstruction."""
    from mrirecon.app import MriApp
    from mrirecon.app.texts import tta_note
    from mrirecon.app.views import kspace_image, slice_images

    two = tmp_path / "two_slices.h5"
    with h5py.File(FULL, "r") as src, h5py.File(two, "w") as dst:
        dst["kspace"] = src["kspace"][:2]
        dst["reconstruction_rss"] = src["reconstruction_rss"][:2]
        dst["ismrmrd_header"] = src["ismrmrd_header"][()]
    calls = []
    app = MriApp(checkpoint, examples_dir=None, device="cpu")
    try:
        entry, _ = app.load_and_reconstruct(
            str(two), "equispaced_fraction", 4, "token", 2, lambda v, desc=None, unit=None: calls.append((v, desc))
        )
        slices = [v for v, desc in calls if desc and desc.startswith("slice")]
        assert slices == [(0, 2), (1, 2), (2, 2)]
        steps = [v for v, desc in calls if desc and desc.startswith("adaptation step")]
        assert steps and steps[0] == (1, 2)
        assert calls.index(((1, 2), "adaptation step 1/2")) < calls.index(((1, 2), "slice 1/2"))  # adapt first
        assert calls[-1] == (1.0, "consistency check") and set(entry.consistency) == {1}  # n // 2, computed once
        text = tta_note(entry)
        r = entry.result.tta
        assert f"{r.stop_error_before:.6f} before → {r.stop_error_after:.6f} after" in text
        assert f"{r.steps_run} steps run, best at step {r.best_step}" in text and "adapted result used" in text
        k = kspace_image(entry, 1)
        assert k.dtype == np.uint8 and k.shape == entry.kspace_log.shape[1:]
        dark = k.max(axis=0) == 0  # columns never acquired are black
        assert abs(dark.mean() - (1 - entry.result.mask.mean())) < 0.02
        text, measured, heldout = app.consistency(entry, 1)  # reference-free checks of slice 1 (cached)
        assert app.consistency(entry, 1)[1] is measured
        assert "residual on the measured lines" in text and "held-out measured lines" in text
        numbers = [float(x) for x in re.findall(r"\*\*(\d+\.\d{4})\*\*", text)]
        assert len(numbers) == 2 and all(np.isfinite(numbers)) and numbers[1] > 0
        assert measured.shape == heldout.shape == (128, 128)  # k-space after the readout crop to the target
        unmeasured = ~entry.result.mask
        assert (heldout[:, unmeasured] == 0).all() and heldout.max() > 0  # only on held-out measured lines
        text, montage = app.coil_maps(entry, 1)
        assert "Coil sensitivity maps of slice 1" in text
        with h5py.File(two) as hf:
            coils = hf["kspace"].shape[1]
        side = int(np.ceil(np.sqrt(coils)))
        assert montage.dtype == np.uint8 and montage.shape == (-(-coils // side) * 128, side * 128)
        full, narrow = (slice_images(entry, 0, w)["reconstruction"] for w in ((0, 100), (0, 20)))
        assert narrow.mean() > full.mean() and (narrow == 255).mean() > (full == 255).mean()  # window/level
    finally:
        app.close()


def test_linked_zoom_view_and_click():
    from mrirecon.app.views import View

    img = np.arange(128 * 96).reshape(128, 96)  # rows x columns, every pixel different
    assert View().box(128, 96) == (0, 128, 0, 96) and (View().apply(img, min_size=1) == img).all()
    assert View(4, 25, 25).box(128, 96) == (16, 48, 12, 36)  # a quarter of each side around row 32, column 24
    assert View(4, 0, 100).box(128, 96) == (96, 128, 0, 24)  # moved inside at the bottom-left corner
    shown = View(4, 25, 25).apply(img, min_size=512)  # 32 x 24 pixels, each a 22 x 22 block
    assert shown.shape == (704, 528) and (shown[::22, ::22] == img[16:48, 12:36]).all()
    assert View.of(None, None, None) == View() and View.of(99, -5, 150) == View(8, 0, 100)  # clipped
    # a click at the centre of a zoomed panel keeps the view; at a corner it moves the centre there
    view = View(2, 50, 50)
    assert view.centred_on((512, 384), (191.5, 255.5), (128, 96)) == view
    left_top = View().centred_on((512, 384), (0, 0), (128, 96))
    assert left_top.zoom == 2 and left_top.cx < 1 and left_top.cy < 1


def test_tta_note_reads_old_and_new_report_fields():
    from types import SimpleNamespace

    from mrirecon.app.texts import tta_text

    fields = {"stop_error_before": 0.955023, "stop_error_after": 0.955022, "best_step": 7, "steps_run": 10}
    old = SimpleNamespace(**fields)  # a report without used / params / seconds: used = a step improved
    text = tta_text(old, 10)
    assert "0.955023 before → 0.955022 after" in text and "10 steps run, best at step 7" in text
    assert "adapted result used: **yes**" in text and "parameters" not in text
    assert "used: **no**" in tta_text(SimpleNamespace(**{**fields, "best_step": 0}))
    new = SimpleNamespace(**fields, used=False, params="trigger", seconds=2.5)
    text = tta_text(new, 10)  # the guardrail's verdict wins over best_step
    assert "used: **no**" in text and "parameters adapted: trigger" in text and "2.5 s" in text
    assert "off" in tta_text(None) and "no report" in tta_text(None, 3)


def test_hostile_upload_refused_before_queueing(checkpoint, tmp_path):
    """A tiny file declaring 56 GiB, or linking outside itself, is refused by the unqueued gate in
    milliseconds; the reconstruct event only runs after it."""
    from mrirecon.app import MriApp, build_app
    from mrirecon.data import InvalidInputError

    bomb = tmp_path / "bomb.h5"
    with h5py.File(bomb, "w") as hf:
        hf.create_dataset("kspace", (1000, 32, 640, 368), np.complex64, chunks=(1, 1, 64, 64), compression="gzip")
    link = tmp_path / "link.h5"
    with h5py.File(link, "w") as hf:
        hf["kspace"] = h5py.ExternalLink(str(FULL), "/kspace")
    app = MriApp(checkpoint, examples_dir=None, device="cpu")
    try:
        t0 = time.perf_counter()
        with pytest.raises(InvalidInputError, match="per volume"):
            app.precheck(bomb)
        assert time.perf_counter() - t0 < 2
        with pytest.raises(InvalidInputError, match="link to another file"):
            app.load_and_reconstruct(str(link), "equispaced_fraction", 4, "token", 0)
    finally:
        app.close()
    demo = build_app(checkpoint, examples_dir=None, device="cpu")
    try:
        deps = demo.config["dependencies"]
        gate = next(d for d in deps if d.get("targets") and d["targets"][0][1] == "click" and not d["queue"])
        chained = [d for d in deps if d.get("trigger_after") == gate["id"]]
        assert [d["api_name"] for d in chained] == ["reconstruct"]
    finally:
        demo.mri.close()


@pytest.mark.skipif(shutil.which("ismrmrd_generate_cartesian_shepp_logan") is None, reason="ismrmrd-tools missing")
def test_ismrmrd_uploads_pass_the_same_gate_and_caps(checkpoint, tmp_path, monkeypatch):
    """ISMRMRD raw uploads: the unqueued gate reads headers only, refuses links out of the file and
    declared sizes above the server's caps, and lets a good scan through to the queued step."""
    from mrirecon.app import MriApp
    from mrirecon.data import InvalidInputError

    good = tmp_path / "raw.h5"
    subprocess.run(
        ["ismrmrd_generate_cartesian_shepp_logan", "-o", str(good), "-m", "32", "-c", "2", "-a", "2", "-w", "8"],
        check=True,
        capture_output=True,
    )
    link = tmp_path / "link.h5"
    with h5py.File(link, "w") as hf:
        hf["dataset"] = h5py.ExternalLink(str(good), "/dataset")
    bomb = tmp_path / "bomb.h5"
    shutil.copy(good, bomb)
    with h5py.File(bomb, "a") as hf:
        dtype = hf["dataset/data"].dtype
        del hf["dataset/data"]
        hf["dataset"].create_dataset("data", (10**9,), dtype, chunks=(1,), compression="gzip")
    app = MriApp(checkpoint, examples_dir=None, device="cpu")
    try:
        info = app.precheck(good)
        assert info.is_test_format and info.kspace_shape[:2] == (1, 2)
        t0 = time.perf_counter()
        with pytest.raises(InvalidInputError, match="per volume"):
            app.precheck(bomb)
        assert time.perf_counter() - t0 < 2
        with pytest.raises(InvalidInputError, match="link to another file"):
            app.load_and_reconstruct(str(link), "equispaced_fraction", 4, "token", 0)
        app.limits = type(app.limits)(max_slice_bytes=16 << 10)  # the server's caps apply to ISMRMRD too
        with pytest.raises(InvalidInputError, match="per slice"):
            app.precheck(good)
        app.limits = type(app.limits)()
        entry, cached = app.load_and_reconstruct(str(good), "equispaced_fraction", 4, "token", 0)
        assert not cached and entry.is_test_format and entry.result.recon.shape == (1, 32, 32)
    finally:
        app.close()
