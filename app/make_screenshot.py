"""Take the README's screenshot of the app with a real reconstruction of a bundled example.

    python app/make_screenshot.py [--checkpoint DIR] [--example example_fully_sampled.h5] [--out app/screenshot.png]
        [--tta-steps N]

Serves the app on a free loopback port, drives Debian's chromium with Playwright (never a downloaded
browser) and saves a full-page PNG.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
from pathlib import Path

from mrirecon.app import CHROMIUM_ARGS
from mrirecon.io.files import write_atomically

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shrink_png(path: Path, colors: int = 128) -> Path:
    """Rewrite a screenshot with a palette of ``colors`` (no dithering): half the bytes, text stays sharp."""
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    return write_atomically(path, lambda tmp: small.save(tmp, format="PNG", optimize=True))


def screenshot(checkpoint: Path, example: str, out: Path, slice_steps: int = 0, tta_steps: int = 0) -> Path:
    """Reconstruct ``example`` in the served app (with ``tta_steps`` of test-time adaptation) and save a
    full-page screenshot to ``out``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from playwright.sync_api import expect, sync_playwright

    from mrirecon.app import build_app

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("Debian's chromium is needed (make tools installs it)")
    demo = build_app(checkpoint=checkpoint)
    port = _free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("#examples button", has_text=example).click()
            expect(page.locator("#kspace-file")).to_contain_text(Path(example).stem, timeout=30_000)
            if tta_steps:
                steps = page.locator("input[aria-label='number input for TTA steps (0 = off)']")
                steps.fill(str(tta_steps))
                steps.press("Enter")
            page.locator("#reconstruct").click()
            expect(page.locator("#metrics")).to_contain_text("slice", timeout=300_000)
            page.wait_for_selector("#img-1 img")
            slider = page.locator("#slice input[type=range]")
            for _ in range(slice_steps):
                slider.focus()
                page.keyboard.press("ArrowRight")
            page.wait_for_timeout(1500)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
            browser.close()
        shrink_png(out)
    finally:
        demo.close()
        demo.mri.close()
    return out


def main(argv: list[str] | None = None) -> int:
    from mrirecon.codecs.checkpoint import DEFAULT_CHECKPOINT

    parser = argparse.ArgumentParser(description="Screenshot the app with a real reconstruction.")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--example", default="example_fully_sampled.h5")
    parser.add_argument("--out", type=Path, default=HERE / "screenshot.png")
    parser.add_argument("--slice-steps", type=int, default=0, help="slider steps to the right before the shot")
    parser.add_argument("--tta-steps", type=int, default=0, help="test-time adaptation steps (0 = off)")
    args = parser.parse_args(argv)
    print(screenshot(args.checkpoint, args.example, args.out, args.slice_steps, args.tta_steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
