"""Gradio web app: upload fastMRI or ISMRMRD raw k-space (or pick a bundled example), reconstruct, compare,
download.

    python -m mrirecon.app [--host 127.0.0.1] [--port 7860] [--checkpoint DIR] [--max-file-size 200mb]

The network is loaded once at start. Reconstructions are cached in memory per (file content, mask type,
acceleration, Trigger mode, TTA steps), so moving the slice slider only re-renders images (and computes
the slice's consistency figure once). Uploads (fastMRI k-space or ISMRMRD raw data) are size-capped and
checked by the input gate (:func:`mrirecon.io.validate_input`: nothing outside the file, declared sizes
within :class:`mrirecon.data.Limits`) in an unqueued step before the reconstruction is queued, so a
hostile file never holds the worker; a bad file shows its problem in the page. Downloads are
de-identified like ``reconstruct`` outputs, and are written to a per-session temporary folder that is
removed when the browser tab closes (and with the process); Gradio's own file cache is pruned by
``delete_cache``.

Modules, in the order of a request: :mod:`.serve` (launch, command line), :mod:`.layout` (the page's
components), :mod:`.events` (handlers and their wiring), :mod:`.service` (:class:`MriApp`: network,
upload gate, reconstruction, per-slice checks), :mod:`.cache` (settings, entries, LRU), :mod:`.session`
(upload cap, session folders, downloads), :mod:`.consistency` (reference-free checks), :mod:`.views`
(images) and :mod:`.texts` (Markdown, tables).
"""

from .cache import Entry, ReconCache, ReconSettings
from .events import build_app
from .serve import CHROMIUM_ARGS, DEFAULT_HOST, DEFAULT_PORT, launch, main
from .service import DEFAULT_EXAMPLES_DIR, DEFAULT_MAX_FILE_SIZE, MriApp
from .session import parse_size, write_downloads

__all__ = [
    "CHROMIUM_ARGS",
    "DEFAULT_EXAMPLES_DIR",
    "DEFAULT_HOST",
    "DEFAULT_MAX_FILE_SIZE",
    "DEFAULT_PORT",
    "Entry",
    "MriApp",
    "ReconCache",
    "ReconSettings",
    "build_app",
    "launch",
    "main",
    "parse_size",
    "write_downloads",
]
