"""The ``mrirecon`` command: one entry point, a subcommand per job.

``mrirecon COMMAND [ARGS...]`` hands ``ARGS`` to that command's module (``mrirecon evaluate ...`` is
``python -m mrirecon.evaluate ...``; both keep working). The dispatcher imports only the module it runs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import NamedTuple


class Command(NamedTuple):
    module: str  # whose ``main(argv)`` runs the command
    summary: str


COMMANDS = {
    "fit": Command("mrirecon.fit", "train, validate, test or predict with a codec or baseline (LightningCLI)"),
    "evaluate": Command("mrirecon.evaluate", "score methods on a test split with fastMRI's metrics (tables)"),
    "reconstruct": Command("mrirecon.reconstruct", "k-space files or ISMRMRD raw data -> HDF5, DICOM or NIfTI"),
    "convert": Command("mrirecon.convert", "batch conversion: HDF5 <-> DICOM, NIfTI, ISMRMRD raw -> k-space HDF5"),
    "app": Command("mrirecon.app", "the web app (Gradio)"),
    "bench": Command("mrirecon.bench.cli", "speed benchmarks: backbone, reconstruction, training step, TTA"),
    "pretrain": Command("mrirecon.pretrain.cli", "language-model pretraining of a Nirvana backbone (LightningCLI)"),
    "synth": Command("mrirecon.data.synth", "write the simulated fastMRI-format dataset"),
}

EXIT_CODES = "exit codes: 0 all done; 1 some inputs failed (each named on a FAILED line); 2 usage error"


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: mrirecon COMMAND [ARGS...]   (mrirecon COMMAND --help: that command's options)", "", "commands:"]
    lines += [f"  {name:<{width}}  {cmd.summary}" for name, cmd in COMMANDS.items()]
    return "\n".join([*lines, "", EXIT_CODES])


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mrirecon COMMAND ARGS...`` -> the exit code (the command's own, 0 when it returns no number)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] == "--version":
        from mrirecon import __version__

        print(f"mrirecon {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"mrirecon: unknown command {name!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    result = importlib.import_module(COMMANDS[name].module).main(rest)
    return result if isinstance(result, int) and not isinstance(result, bool) else 0
