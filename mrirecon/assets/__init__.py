"""What the package carries, found with :mod:`importlib.resources` (works from a wheel and from the source).

The artefacts live in the repository's top-level folders; this package reaches them through symbolic
links, which building a wheel replaces by copies:

- ``backbone/`` -> the repository's ``backbone/`` (configs ``tiny/config.json``, ``nirvana-1.3B/config.json``);
- ``default_codec/`` -> ``codecs/default`` (``card.json`` + ``codec.safetensors``);
- ``examples/`` -> ``app/examples`` (the app's example scans).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def asset(*parts: str) -> Path:
    """Filesystem path of a carried artefact, e.g. ``asset("default_codec")``."""
    return Path(str(files(__name__).joinpath(*parts)))
