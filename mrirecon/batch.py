"""What every batch command shares: output-folder checks, stale-temporary cleanup and the one-line
``FAILED <file>: <problem>`` report.

Outputs are written through :mod:`mrirecon.io.files` under short temporary names
``.mrirecon-<pid>-<8 hex>`` and renamed into place when complete. A temporary whose process is gone
(a killed run) is removed by the next run on the same output folder.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

from mrirecon.io.files import TMP_PREFIX, remove_path, temp_path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def clean_stale_temporaries(folder: str | os.PathLike) -> int:
    """Remove temporaries left under ``folder`` by runs that no longer exist -> how many were removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for path in sorted(folder.rglob(f"{TMP_PREFIX}*"), reverse=True):
        pid_text = path.name[len(TMP_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        remove_path(path)
        removed += 1
    return removed


def check_output_folder(input_path: str | os.PathLike, output: str | os.PathLike) -> str | None:
    """Check once, before any work, that ``output`` can take the results of ``input_path``.

    Returns the problem in one line, or None. Refused: an output that is a file, an output folder equal
    to or inside the input folder (outputs would replace inputs or be read back as inputs), the folder
    holding a single input file, a folder that cannot be created or written.
    """
    src, out = Path(input_path).resolve(), Path(output).resolve()
    if out.exists() and not out.is_dir():
        return f"output {output} exists and is not a folder"
    if src.is_dir() and out.is_relative_to(src):
        return f"output folder {output} is the input folder or inside it; choose a folder outside {input_path}"
    if src.is_file() and out == src.parent:
        return f"output folder {output} is the folder of the input {input_path}; outputs would replace inputs"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = temp_path(out)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        return f"cannot write to output folder {output} ({err.strerror or err})"
    return None


def failure_line(path: str | os.PathLike, err: BaseException, verbose: bool = False) -> str:
    """``FAILED <path>: <problem>`` on one line (plus the traceback when ``verbose``)."""
    text = " ".join(str(err).split()) or type(err).__name__
    if not isinstance(err, ValueError | OSError):
        text = f"{type(err).__name__}: {text}"
    line = f"FAILED {text}" if text.startswith(f"{path}:") else f"FAILED {path}: {text}"
    if verbose:
        detail = getattr(err, "detail", None)  # the library's own message (InvalidInputError)
        line += (f"\n  ({detail})" if detail else "") + "\n" + "".join(traceback.format_exception(err)).rstrip()
    return line
