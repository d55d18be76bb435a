"""The one batch runner of the file commands (``convert``, ``reconstruct``): output-folder checks,
stale-temporary cleanup, skip-or-overwrite, a process pool, progress, and the one-line
``FAILED <file>: <problem>`` report. A bad input never stops a batch; :class:`Summary` counts what
happened and the command's exit code is 1 when anything failed.

Outputs are written through :mod:`mrirecon.io.files` under short temporary names
``.mrirecon-<pid>-<8 hex>`` and renamed into place when complete. A temporary whose process is gone
(a killed run) is removed by the next run on the same output folder.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mrirecon.io.errors import InputError
from mrirecon.io.files import TMP_PREFIX, remove_path, temp_path

__all__ = [
    "Summary",
    "Task",
    "check_output_folder",
    "clean_stale_temporaries",
    "describe_failure",
    "failure_line",
    "find_h5_inputs",
    "prepare_output",
    "relative_name",
    "run_batch",
]


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


def prepare_output(input_path: str | os.PathLike, output: str | os.PathLike) -> str | None:
    """Before any work: the input must exist and :func:`check_output_folder` pass; then the temporaries
    of killed runs are removed from ``output``. -> the usage problem in one line, or None."""
    if not Path(input_path).exists():
        return f"input {input_path} does not exist"
    problem = check_output_folder(input_path, output)
    if problem is None:
        clean_stale_temporaries(output)
    return problem


def describe_failure(name: str | os.PathLike, err: BaseException) -> str:
    """``<file>: <problem>`` on one line. An :class:`InputError` names its own file; any other error is
    reported against ``name`` (the task's input), with its type unless it is a ValueError or OSError
    (whose messages say enough)."""
    if isinstance(err, InputError):
        return f"{err.path}: {' '.join(err.problem.split())}"
    text = " ".join(str(err).split()) or type(err).__name__
    if not isinstance(err, ValueError | OSError):
        text = f"{type(err).__name__}: {text}"
    return text if text.startswith(f"{name}:") else f"{name}: {text}"


def failure_line(name: str | os.PathLike, err: BaseException, verbose: bool = False) -> str:
    """``FAILED <file>: <problem>`` (:func:`describe_failure`), plus the traceback when ``verbose``."""
    line = f"FAILED {describe_failure(name, err)}"
    if verbose:
        detail = getattr(err, "detail", None)  # the library's own message (InputError)
        line += (f"\n  ({detail})" if detail else "") + "\n" + "".join(traceback.format_exception(err)).rstrip()
    return line


@dataclass
class Task:
    """One unit of a batch: ``fn(*args, **kwargs)`` writes ``dst`` from the input ``name``."""

    name: str  # what a FAILED line names when the error does not name its own file
    dst: Path
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Summary:
    """Counts of a batch run, and its FAILED lines."""

    done: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def fail(self, line: str, stream: Any = None) -> None:
        """Record a FAILED line and print it (``stream.write`` when given, else stderr)."""
        self.failures.append(line)
        if stream is not None:
            stream.write(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def line(self, verb: str = "converted") -> str:
        """``<verb> N, skipped N, failed N``."""
        return f"{verb} {self.done}, skipped {self.skipped}, failed {self.failed}"

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


def _run_task(task: Task, verbose: bool) -> str | None:
    """Run one task -> None, or its FAILED line (a bad input must never stop the batch)."""
    try:
        task.fn(*task.args, **task.kwargs)
    except Exception as err:
        return failure_line(task.name, err, verbose)
    return None


def run_batch(
    tasks: Sequence[Task],
    *,
    label: str,
    workers: int = 1,
    overwrite: bool = False,
    verbose: bool = False,
    stage: str = "item",
    summary: Summary | None = None,
) -> Summary:
    """Run ``tasks`` (in ``workers`` processes when more than one) -> the :class:`Summary`.

    A task whose ``dst`` exists is skipped unless ``overwrite``. Each failure is printed at once as one
    FAILED line; progress is a bar on a terminal, else ``<label>: <stage> 3/10, 4.2 s`` lines.
    Tasks run in a pool must be picklable (module-level functions and plain arguments).
    """
    from mrirecon.progress import Progress

    summary = summary if summary is not None else Summary()
    todo = []
    for task in tasks:
        if Path(task.dst).exists() and not overwrite:
            summary.skipped += 1
        else:
            todo.append(task)
    with Progress(label) as bar:
        if workers <= 1 or len(todo) <= 1:
            _collect((_run_task(task, verbose) for task in todo), len(todo), summary, bar, stage)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(_run_task, task, verbose): task for task in todo}
                lines = (_outcome(futures[f], f) for f in as_completed(futures))
                _collect(lines, len(todo), summary, bar, stage)
    return summary


def _outcome(task: Task, future: Any) -> str | None:
    try:
        return future.result()
    except Exception as err:  # e.g. a worker killed by the OS
        return f"FAILED {task.name}: worker failed ({type(err).__name__}: {err})"


def _collect(lines: Iterable[str | None], total: int, summary: Summary, bar: Any, stage: str) -> None:
    """Count each task's outcome (None: done; else its FAILED line, printed at once) and show progress."""
    for done, line in enumerate(lines, 1):
        if line is None:
            summary.done += 1
        else:
            summary.fail(line, bar)
        bar(stage, done, total)


H5_SUFFIXES = (".h5", ".hdf5", ".hdf")


def find_h5_inputs(root: str | os.PathLike) -> list[Path]:
    """``root`` itself when a file, else the HDF5 files under it (by suffix, recursively, hidden
    files and folders left out: unfinished temporaries start with a dot)."""
    root = Path(root)
    if not root.is_dir():
        return [root]
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in H5_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def relative_name(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """The name of ``path`` in the input tree under ``root`` (mirrored under the output folder)."""
    root, path = Path(root), Path(path)
    return path.relative_to(root) if root.is_dir() else Path(path.name)
