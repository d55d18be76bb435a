"""One evaluation harness for every method: classical baselines, learned baselines and ours.

    python -m mrirecon.evaluate --data DIR [--truth DIR] [--accelerations 4 8]
        [--mask-type equispaced_fraction] --method NAME[=CHECKPOINT_DIR[:key=value,...]] ...
        [--tune-on VALDIR] [--tuned FILE] [--workers N] [--device cpu|cuda] [--max-volumes K]
        [--max-slices-per-volume K] [--out results/NAME]

``--data`` holds fully sampled files (a mask is drawn per file and acceleration with fastMRI's
per-file seed, so every method sees the same mask) and/or fastMRI test-format files (their stored
mask and ``acceleration`` attribute are used; ground truth ``reconstruction_rss`` is read from the
file of the same name in ``--truth``). Methods: ``zero-filled``, ``sense``, ``l1-wavelet`` (sigpy; ESPIRiT
maps computed once per slice and shared by SENSE and L1-wavelet), ``bart`` (the ``bart`` program:
``ecalib`` + l1-wavelet ``pics``; slices run in a process pool) and learned codec folders ``name=path``
(ours, U-Net, E2E-VarNet), optionally with init-arg overrides,
e.g. ``ours-off=codecs/default:trigger=off``; classical methods take options the same way
(``sense-crop0=sense:crop=0``). ``--tune-on VALDIR`` grid-searches λ and the ESPIRiT crop of ``sense``,
``l1-wavelet`` and ``bart`` per acceleration on a validation folder and writes them to ``--tuned FILE``;
``--tuned FILE`` alone reads them (:mod:`mrirecon.evaluate.tuning`); the tables print the λ and crop used.
Scores follow fastMRI (``mrirecon.metrics``). Writes
into the folder ``OUT``: ``summary.md`` (a table per acceleration), ``summary.csv`` (method x
acceleration) and ``per_volume.csv`` (and ``tuned.json`` from ``--tune-on``); one progress line per file
when the output is not a terminal. A bad input file is reported in one line and skipped; the exit code is then 1.

Modules: :mod:`.methods` (specs, the classical registry :data:`CLASSICAL`: a new baseline is one entry),
:mod:`.cases` (reading cases), :mod:`.run` (running), :mod:`.report` (aggregation and tables),
:mod:`.cli` (the command).
"""

from .cases import Case, find_files, load_cases
from .cli import main
from .methods import (
    CALIBRATIONS,
    CLASSICAL,
    CLASSICAL_METHODS,
    SIGPY_METHODS,
    Classical,
    ClassicalTask,
    MethodSpec,
    UsageError,
    classical_slice,
    describe,
    load_learned,
    parse_method,
    resolved_options,
    shared_espirit,
)
from .report import (
    COLUMNS,
    OUTPUT_NAMES,
    TIMING_NOTE,
    header_line,
    markdown,
    print_tables,
    summarize_frame,
    table_rows,
    tuning_note,
    write_outputs,
)
from .run import describe_machine, evaluate, iter_results

__all__ = [
    "CALIBRATIONS",
    "CLASSICAL",
    "CLASSICAL_METHODS",
    "COLUMNS",
    "OUTPUT_NAMES",
    "SIGPY_METHODS",
    "TIMING_NOTE",
    "Case",
    "Classical",
    "ClassicalTask",
    "MethodSpec",
    "UsageError",
    "classical_slice",
    "describe",
    "describe_machine",
    "evaluate",
    "find_files",
    "header_line",
    "iter_results",
    "load_cases",
    "load_learned",
    "main",
    "markdown",
    "parse_method",
    "print_tables",
    "resolved_options",
    "shared_espirit",
    "summarize_frame",
    "table_rows",
    "tuning_note",
    "write_outputs",
]
