"""What the app keeps of a reconstruction: the settings asked for, the :class:`Entry` with everything the
page shows, and a small thread-safe LRU of entries keyed by file content and settings."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..api import ReconResult

CACHE_SIZE = 8


@dataclass(frozen=True)
class ReconSettings:
    """The page's controls for one reconstruction. ``trigger`` is None for a network without a Trigger;
    ``tta_steps`` = 0: no test-time adaptation."""

    mask_type: str = "equispaced_fraction"
    acceleration: int = 4
    trigger: str | None = None
    tta_steps: int = 0

    def cache_key(self, digest: str, test_format: bool) -> str:
        """Key of a file's reconstruction: its content ``digest``; a test-format file keeps its own mask, so
        mask type and acceleration do not count for it."""
        mask = "file" if test_format else f"{self.mask_type}x{self.acceleration}"
        return f"{digest[:32]}|{mask}|{self.trigger or '-'}|tta{self.tta_steps}"

    def net_options(self) -> dict[str, Any]:
        """The network's keyword options (the Trigger mode, when the network has one)."""
        return {"trigger": self.trigger} if self.trigger else {}


@dataclass
class Entry:
    """One reconstructed volume with everything the page shows for it."""

    key: str
    result: ReconResult
    is_test_format: bool
    header_xml: str | None
    attrs: dict[str, Any]
    slice_metrics: list[dict[str, dict[str, float]]] | None  # per slice: {"zero-filled": {...}, "recon": {...}}
    zf_metrics: dict[str, float] | None
    kspace_log: np.ndarray | None = None  # log(1 + coil-RSS |measured k-space|) float32 [S,H,W]
    source: str | None = None  # the file, re-read for the checks of other slices (consistency, coil maps)
    settings: ReconSettings = field(default_factory=ReconSettings)
    timings: dict[str, float] = field(default_factory=dict)
    # per slice: (Markdown, residual on measured lines, error on held-out lines) uint8 [H,W] or None
    consistency: dict[int, tuple[str, np.ndarray | None, np.ndarray | None]] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """The (shortened) content digest of the uploaded file."""
        return self.key.split("|")[0]

    def slice_index(self, s: Any) -> int:
        """``s`` (a control's value, None = 0) clipped to the volume's slices."""
        return int(np.clip(int(s or 0), 0, self.result.recon.shape[0] - 1))


class ReconCache:
    """A small thread-safe LRU of :class:`Entry` by key."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str | None) -> Entry | None:
        with self._lock:
            if key is None or key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, entry: Entry) -> None:
        with self._lock:
            self._items[entry.key] = entry
            self._items.move_to_end(entry.key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
