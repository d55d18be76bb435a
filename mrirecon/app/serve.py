"""Serving the app: :func:`launch` (loopback, no share link, by default) and the command line
``python -m mrirecon.app`` / ``mrirecon app``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from ..codecs.checkpoint import DEFAULT_CHECKPOINT
from .events import build_app
from .service import DEFAULT_EXAMPLES_DIR, DEFAULT_MAX_FILE_SIZE
from .session import parse_size

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# headless Debian chromium on a machine with no network: what the screenshot script and browser tests use
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    share: bool = False,
    checkpoint: str | os.PathLike = DEFAULT_CHECKPOINT,
    max_file_size: str | int = DEFAULT_MAX_FILE_SIZE,
    examples_dir: str | os.PathLike | None = DEFAULT_EXAMPLES_DIR,
    device: str | None = None,
    **launch_kwargs: Any,
) -> Any:
    """Build and serve the app (blocking unless ``prevent_thread_lock=True``); loopback, no share link by default."""
    demo = build_app(checkpoint=checkpoint, examples_dir=examples_dir, max_file_size=max_file_size, device=device)
    demo.queue(default_concurrency_limit=4)
    try:
        demo.launch(
            server_name=host,
            server_port=port,
            share=share,
            max_file_size=max_file_size,
            show_error=False,
            **launch_kwargs,
        )
    finally:
        if not launch_kwargs.get("prevent_thread_lock"):
            demo.close()
            demo.mri.close()
    return demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mrirecon.app",
        description="Gradio web app: upload fastMRI or ISMRMRD raw k-space (or pick a bundled example), "
        "reconstruct, compare, download.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default: 127.0.0.1, loopback only)")
    parser.add_argument("--port", default=DEFAULT_PORT, type=int)
    parser.add_argument("--share", action="store_true", help="also open a public Gradio share link (off by default)")
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, type=Path, help="codec folder (card.json)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    parser.add_argument("--max-file-size", default=DEFAULT_MAX_FILE_SIZE, help="upload cap, e.g. 200mb or 1gb")
    parser.add_argument("--examples", default=DEFAULT_EXAMPLES_DIR, type=Path, help="folder of example .h5 files")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # unwind on `kill` so temporary files are removed
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        parse_size(args.max_file_size)
    except ValueError as err:
        parser.error(str(err))
    try:
        launch(args.host, args.port, args.share, args.checkpoint, args.max_file_size, args.examples, args.device)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: cannot load the checkpoint: {err}", file=sys.stderr)
        return 2
    return 0
