"""Progress that moves, on a terminal and in a log file.

:class:`Progress` draws a tqdm bar when its stream is a terminal and otherwise prints one plain line
per step (``reconstructing scan.h5: slice 3/16, 2.1 s``), so ``command > log 2>&1`` shows how far a run
got. Training has its own line-based callback, :class:`mrirecon.training.callbacks.LineProgress`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

# stage name, steps done, steps in all (e.g. ("slice", 3, 16) or ("adaptation step", 2, 10))
ProgressCallback = Callable[[str, int, int], None]


def is_terminal(stream: TextIO | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


class Progress:
    """Progress of one task in named stages; call it as a :data:`ProgressCallback`.

    ``desc``: what is being done (``reconstructing scan.h5``). On a terminal each stage gets a tqdm bar;
    elsewhere each step prints ``<desc>: <stage> <done>/<total>, <elapsed> s`` on its own line.
    """

    def __init__(self, desc: str, stream: TextIO | None = None, bars: bool | None = None) -> None:
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.bars = is_terminal(self.stream) if bars is None else bars
        self._t0 = time.perf_counter()
        self._bar: Any = None
        self._stage: str | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.bars:
            self._draw(stage, done, total)
        else:
            elapsed = time.perf_counter() - self._t0
            print(f"{self.desc}: {stage} {done}/{total}, {elapsed:.1f} s", file=self.stream, flush=True)

    def _draw(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self._stage or self._bar is None:
            self.close()
            self._bar = tqdm(
                total=total, desc=f"{self.desc} ({stage})", unit=stage.split()[-1], file=self.stream, leave=False
            )
            self._stage = stage
        self._bar.update(done - self._bar.n)

    def write(self, line: str) -> None:
        """Print a line (e.g. a FAILED report) without breaking a bar."""
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
