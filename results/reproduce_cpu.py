"""Rerun every README number that is computed on the CPU, each step under its own time limit.

    python results/reproduce_cpu.py OUT [--only STEP ...] [--dry-run] [--check] [--list]
    make reproduce OUT=results/reproduced [ONLY="make-fit bench-cpu-default"]

Every output goes under OUT: one log per step (``OUT/logs/STEP.log``), the tables and benchmark files the
step writes, and ``OUT/summary.md`` (step, README section it backs, status, seconds, limit). Training runs
and the study run in ``OUT/work`` (links to the repository's ``codecs/`` and ``data/``), so their ``runs/``
folders land there too. Generated datasets go where the README's commands put them (``data/synth``,
``data/random_eval``); a finished one is reused. A step whose input another step makes (a codec, a tuned
JSON) is skipped, and says so, when that input is missing; a step that fails or runs past its limit is
recorded and the rest carry on; the exit code is 1 if any step failed or timed out.

``--dry-run`` prints the commands, limits and README sections without running anything; ``--check``
parses every command's arguments with the command's own parser (no work is done) and exits 1 on the first
that does not parse. GPU numbers (the H100/H200 benchmarks, the study at 35 s, the default codec's
training) are not here: they need the GPU commands in ``results/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import runpy
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# trained on a GPU: the legs of results/default_v14 to default_v19
GPU_BASELINES = {
    "e2e-varnet": ROOT / "runs" / "varnet_default" / "codec",
    "unet": ROOT / "runs" / "unet_default" / "codec",
}


@dataclass
class Step:
    """One command. ``argv`` may hold ``{py}``, ``{out}``, ``{root}`` and ``{work}``; ``cwd``: "root" or
    "work"; ``needs``: paths (same placeholders) that must exist first; ``check``: how ``--check`` parses
    the arguments ("module": a ``python -m`` argparse entry point, "lightning": ``--print_config``, "pytest",
    "bash": syntax of the script, "script": a Python file that compiles)."""

    name: str
    section: str
    limit_s: int
    argv: list[str]
    cwd: str = "work"
    needs: list[str] = field(default_factory=list)
    check: str = "module"
    env: dict[str, str] = field(default_factory=dict)


def _evaluate(data: str, truth: str | None, methods: list[str], out: str, *extra: str) -> list[str]:
    argv = ["{py}", "-m", "mrirecon.evaluate", "--data", data, *(["--truth", truth] if truth else [])]
    for method in methods:
        argv += ["--method", method]
    return [*argv, *extra, "--workers", "2", "--device", "cpu", "--out", out]


CLASSICAL = ["zero-filled", "sense", "l1-wavelet", "bart"]
RANDOM_METHODS = [*CLASSICAL, "ours={root}/codecs/default"]
RANDOM_DATA = "{root}/data/random_eval"
FULL_DATA = "{root}/data/random_eval_full"  # the dipy and physics volumes fully sampled, for the held-back set's masks
HELD_BACK_SPLITS = {"shift": "dipy", "physics": "physics"}  # FULL_DATA folder: the README row's name
HELD_BACK_MASKS = {"equispaced": "4", "random": "8"}  # issue 15's held-back set: mask type and acceleration
SMALL_DATA = "{root}/data/synth"
BENCH_TTA = ["--codec", "{root}/codecs/default", "--batch", "8", "--coils", "16", "--size", "320", "320",
             "--tta-slices", "16", "--tta-repeats", "1", "--device", "cpu"]  # fmt: skip


def steps() -> list[Step]:
    """The steps in the order they run (later ones use what earlier ones wrote)."""
    random_methods = RANDOM_METHODS + [f"{name}={path}" for name, path in GPU_BASELINES.items() if path.is_dir()]
    return [
        Step("data-small", "The data (the small preset that `make fit` and the small tables use)", 900,
             ["{py}", "-m", "mrirecon.data.synth", "--out", SMALL_DATA, "--quiet"]),
        Step("make-fit", "Two commands: `make fit` time and its per-acceleration table (4x / 8x, zero-filled beside)",
             2700, ["{py}", "-m", "mrirecon.fit", "fit", "--config", "{root}/codecs/base.yaml", "--config",
                     "{root}/codecs/tiny.yaml"], check="lightning"),
        Step("make-test", "Two commands: `make test` count and time", 2700,
             ["{py}", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", "--junitxml", "{out}/make_test.xml"],
             cwd="root", check="pytest"),
        Step("bench-cpu-default", "Results: the shipped default codec, seconds per 640x320 16-coil slice on the "
             "2-core CPU (results/bench_cpu_default.md)", 1200,
             ["{py}", "-m", "mrirecon.bench", "--json", "{out}/bench_cpu_default.jsonl", "--markdown",
              "{out}/bench_cpu_default.md", "slice", "--codec", "{root}/codecs/default", "--device", "cpu",
              "--coils", "16", "--size", "640", "320", "--target-height", "320", "--batch", "1", "--repeats", "3"]),
        Step("bench-cpu-tta", "Results: the study, TTA cost per 16-slice volume on the 2-core CPU "
             "(results/bench_cpu.jsonl, 10 steps)", 1500,
             ["{py}", "-m", "mrirecon.bench", "--json", "{out}/bench_cpu_tta.jsonl", "tta", *BENCH_TTA,
              "--tta-steps", "10"]),
        Step("bench-cpu-no-tta", "Results: the study, the same volume without TTA (results/bench_cpu.jsonl)", 600,
             ["{py}", "-m", "mrirecon.bench", "--json", "{out}/bench_cpu_tta.jsonl", "tta", *BENCH_TTA,
              "--tta-steps", "0"]),
        Step("bench-cpu-tta-default", "Results: per-scan adaptation, seconds per 16-slice 640x320 16-coil volume "
             "with 10 steps of the default adapters on the 2-core CPU (results/default_v2/bench_tta_cpu.md)", 1500,
             ["{py}", "-m", "mrirecon.bench", "--json", "{out}/bench_tta_cpu.jsonl", "tta", "--codec",
              "{root}/codecs/default", "--device", "cpu", "--coils", "16", "--size", "640", "320", "--target-height",
              "320", "--batch", "4", "--tta-slices", "16", "--tta-steps", "10", "--tta-repeats", "1", "--precision",
              "32", "--tta-params", "cascades"]),
        Step("data-random-eval", "Results: generalisation against BART (the evaluation splits)", 2400,
             ["{py}", "-m", "mrirecon.data.synth", "--preset", "random", "--out", RANDOM_DATA, "--train-volumes",
              "0", "--val-volumes", "2", "--test-volumes", "2", "--shift-volumes", "2", "--physics-volumes", "2",
              "--slices", "4", "--workers", "2", "--quiet"]),
        Step("random-test", "Results: generalisation against BART, rows test 4x / 8x (results/random_test)", 9000,
             _evaluate(f"{RANDOM_DATA}/test_format", f"{RANDOM_DATA}/test_truth", random_methods,
                       "{out}/random_test", "--tune-on", f"{RANDOM_DATA}/val", "--tune-max-slices", "1",
                       "--tuned", "{out}/random_tuned.json"), needs=[f"{RANDOM_DATA}/test_format"]),
        Step("random-physics", "Results: generalisation against BART, rows physics 4x / 8x (results/random_physics)",
             9000, _evaluate(f"{RANDOM_DATA}/physics_test_format", f"{RANDOM_DATA}/physics_truth", random_methods,
                             "{out}/random_physics", "--tuned", "{out}/random_tuned.json"),
             needs=["{out}/random_tuned.json"]),
        Step("random-dipy", "Results: generalisation against BART, rows dipy 4x / 8x (results/random_dipy)", 7200,
             _evaluate(f"{RANDOM_DATA}/shift_test_format", f"{RANDOM_DATA}/shift_truth",
                       [*random_methods, "ours-tta={root}/codecs/default:tta_steps=10"],
                       "{out}/random_dipy", "--tuned", "{out}/random_tuned.json"),
             needs=["{out}/random_tuned.json"]),
        Step("background-floor", "Results: generalisation against BART, the background levels (E2E-VarNet's and "
             "the U-Net's only with the GPU-trained codecs of results/default_v18 and default_v19)", 2400,
             ["{py}", "experiments/background_floor.py", RANDOM_DATA], cwd="root", check="script"),
        Step("data-random-eval-full", "Results: the held-back set's masks (the same volumes, fully sampled)", 2400,
             ["{py}", "-m", "mrirecon.data.synth", "--preset", "random", "--out", FULL_DATA, "--train-volumes", "0",
              "--val-volumes", "0", "--test-volumes", "0", "--shift-volumes", "2", "--physics-volumes", "2",
              "--slices", "4", "--workers", "2", "--quiet", "--full-shift-splits"]),
        *[Step(f"masks-{name}-{mask}{acc}", f"Results: the held-back set's masks, row {name}, {mask} {acc}x "
               f"(results/default_v8/masks, results/default_v23/scores/masks)", 5400,
               _evaluate(f"{FULL_DATA}/{split}", None, ["zero-filled", "l1-wavelet", "bart",
                                                        "ours={root}/codecs/default"],
                         f"{{out}}/masks/{name}-{mask}{acc}", "--mask-type", mask, "--accelerations", acc,
                         "--tuned", "{out}/random_tuned.json"),
               needs=[f"{FULL_DATA}/{split}", "{out}/random_tuned.json"])
          for split, name in HELD_BACK_SPLITS.items() for mask, acc in HELD_BACK_MASKS.items()],
        Step("harness-small-test", "results/README.md: harness_small_test (classical baselines tuned on val)", 5400,
             _evaluate(f"{SMALL_DATA}/test_format", f"{SMALL_DATA}/test_truth",
                       [*CLASSICAL[:2], "sense-untuned=sense:lamda=0.003,crop=0.9", *CLASSICAL[2:],
                        "ours={root}/codecs/default"], "{out}/harness_small_test", "--accelerations", "4", "8",
                       "--tune-on", f"{SMALL_DATA}/val", "--tune-max-slices", "3", "--tuned",
                       "{out}/harness_small_tuned.json"), needs=[f"{SMALL_DATA}/test_format"]),
        Step("harness-small-shift", "results/README.md: harness_small_shift (the shift split, tuned above)", 5400,
             _evaluate(f"{SMALL_DATA}/shift_test_format", f"{SMALL_DATA}/shift_truth",
                       [*CLASSICAL, "ours={root}/codecs/default"], "{out}/harness_small_shift", "--accelerations",
                       "4", "8", "--tuned", "{out}/harness_small_tuned.json"),
             needs=["{out}/harness_small_tuned.json"]),
        Step("train-unet", "Results: synth_small (the U-Net baseline, same recipe as `make fit`)", 1800,
             ["{py}", "-m", "mrirecon.fit", "fit", "--config", "{root}/codecs/base.yaml", "--config",
              "{root}/codecs/unet.yaml"], check="lightning"),
        Step("train-varnet", "Results: synth_small (the E2E-VarNet baseline, same recipe as `make fit`)", 3600,
             ["{py}", "-m", "mrirecon.fit", "fit", "--config", "{root}/codecs/base.yaml", "--config",
              "{root}/codecs/varnet.yaml"], check="lightning"),
        Step("synth-small", "Results: what the Trigger adds, `trigger=off` to four decimals (results/synth_small.md)",
             5400, _evaluate(f"{SMALL_DATA}/test_format", f"{SMALL_DATA}/test_truth",
                             ["zero-filled", "sense", "sense-crop0=sense:crop=0", "l1-wavelet",
                              "unet={work}/runs/unet/codec", "varnet={work}/runs/varnet/codec",
                              "ours={work}/runs/tiny/codec", "ours-trigger-off={work}/runs/tiny/codec:trigger=off"],
                             "{out}/synth_small"),
             needs=["{work}/runs/unet/codec", "{work}/runs/varnet/codec", "{work}/runs/tiny/codec"]),
        Step("study-equal-steps", "Results: the study with equal steps (results/study_equal_steps/study.md)", 5400,
             ["bash", "{root}/experiments/study.sh", "part1", "{out}/study_equal_steps", "0"], check="bash",
             env={"EPOCHS": "6", "ACCELERATOR": "cpu", "DEVICE": "cpu", "WORKERS": "1", "PYTHON": "{py}",
                  "DATA": SMALL_DATA}),
    ]  # fmt: skip


def expand(text: str, out: Path) -> str:
    return text.format(py=sys.executable, out=out, root=ROOT, work=out / "work")


def prepare_work(out: Path) -> Path:
    """OUT/work with links to the repository's codecs/ and data/, so relative paths in the recipes resolve
    and their runs/ folders are written under OUT."""
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    (ROOT / "data").mkdir(exist_ok=True)
    for name in ("codecs", "data"):
        link = work / name
        if not link.exists():
            link.symlink_to(ROOT / name, target_is_directory=True)
    return work


def run_step(step: Step, out: Path) -> tuple[str, float]:
    """Run one step under its limit -> (status, seconds); its output goes to OUT/logs/STEP.log."""
    missing = [p for p in (expand(n, out) for n in step.needs) if not Path(p).exists()]
    if missing:
        return f"skipped: needs {', '.join(missing)}", 0.0
    argv = [expand(a, out) for a in step.argv]
    cwd = ROOT if step.cwd == "root" else prepare_work(out)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep)}
    env.update({k: expand(v, out) for k, v in step.env.items()})
    log = out / "logs" / f"{step.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        fh.write(f"$ (cd {cwd} && {' '.join(argv)})\n")
        fh.flush()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=step.limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # the step's own process group (its workers too)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            return f"timed out after {step.limit_s} s", time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    return ("ok" if code == 0 else f"failed (exit {code}, see logs/{step.name}.log)"), seconds


class _StopAfterParsingError(Exception):
    """Raised by the patched parser once the arguments parsed: nothing past parsing runs."""


def check_step(step: Step, out: Path) -> str | None:
    """Parse the step's arguments with its own command-line parser, doing no work -> None if they parse,
    else the problem."""
    argv = [expand(a, out) for a in step.argv]
    if step.check == "bash":
        script = Path(argv[1])
        if not script.is_file():
            return f"{script}: no such script"
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        return f"{script}: {done.stderr.strip()}" if done.returncode else None
    if step.check == "script":
        script = ROOT / argv[1]
        if not script.is_file():
            return f"{script}: no such script"
        try:
            compile(script.read_text(), str(script), "exec")
        except SyntaxError as err:
            return f"{script}: {err}"
        return None
    if argv[1] != "-m":
        return f"{step.name}: expected `python -m MODULE ...`, got {argv[:3]}"
    module, args = argv[2], argv[3:]
    if step.check == "pytest":  # pytest's own parser: collect with every test file ignored (exit 5: none)
        args = [os.devnull if a0 == "--junitxml" else a for a0, a in zip(["", *args], args, strict=False)]
        probe = [sys.executable, "-m", "pytest", *args, "--collect-only", "--ignore-glob=*test_*.py"]
        done = subprocess.run(probe, cwd=ROOT, capture_output=True, text=True)
        return None if done.returncode in (0, 5) else f"pytest {' '.join(args)}: {done.stderr.strip()[-500:]}"
    extra = ["--print_config"] if step.check == "lightning" else []
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, *a, **kw):
        original(self, *a, **kw)
        raise _StopAfterParsingError

    saved_argv, saved_cwd = sys.argv, os.getcwd()
    if step.check == "module":
        argparse.ArgumentParser.parse_args = parse_then_stop
    try:
        os.chdir(ROOT)
        sys.argv = [module, *args, *extra]
        quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
        with quiet[0], quiet[1] as err, warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module was imported before (a rerun)
            try:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            except _StopAfterParsingError:
                return None
            except SystemExit as stop:
                if stop.code in (0, None) and step.check == "lightning":
                    return None
                return f"{module} {' '.join(args)}: exit {stop.code}: {err.getvalue().strip()[-500:]}"
        return f"{module}: ran past argument parsing without stopping"
    finally:
        argparse.ArgumentParser.parse_args = original
        sys.argv = saved_argv
        os.chdir(saved_cwd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python results/reproduce_cpu.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for every output (created)")
    parser.add_argument("--only", nargs="+", metavar="STEP", help="run these steps only (see --list)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and limits, run nothing")
    parser.add_argument("--check", action="store_true", help="parse every command's arguments, run nothing")
    parser.add_argument("--list", action="store_true", help="the step names and the README sections they back")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    chosen = steps()
    names = [s.name for s in chosen]
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error(f"unknown step(s) {', '.join(unknown)}; steps: {', '.join(names)}")
        chosen = [s for s in chosen if s.name in args.only]
    if args.list:
        for s in chosen:
            print(f"{s.name:20s} {s.section}")
        return 0
    if args.dry_run:
        for s in chosen:
            cwd = ROOT if s.cwd == "root" else out / "work"
            env = " ".join(f"{k}={expand(v, out)}" for k, v in s.env.items())
            print(f"# {s.name} (limit {s.limit_s} s) backs: {s.section}")
            print(f"(cd {cwd} && {env + ' ' if env else ''}{' '.join(expand(a, out) for a in s.argv)})")
        return 0
    if args.check:
        for s in chosen:
            problem = check_step(s, out)
            print(f"{s.name:20s} {'ok' if problem is None else problem}")
            if problem is not None:
                return 1
        return 0
    out.mkdir(parents=True, exist_ok=True)
    rows, bad = [], 0
    for s in chosen:
        print(f"[{time.strftime('%H:%M:%S')}] {s.name} (limit {s.limit_s} s): backs {s.section}", flush=True)
        status, seconds = run_step(s, out)
        bad += status.startswith(("failed", "timed out"))
        print(f"[{time.strftime('%H:%M:%S')}] {s.name}: {status} in {seconds:.0f} s", flush=True)
        rows.append(f"| {s.name} | {s.section} | {status} | {seconds:.0f} | {s.limit_s} |")
    table = ["| step | backs (README) | status | seconds | limit |", "|---|---|---|---|---|", *rows]
    summary = out / "summary.md"
    tmp = summary.with_name(".summary.md.tmp")
    tmp.write_text("# CPU reproduction\n\n" + "\n".join(table) + "\n")
    os.replace(tmp, summary)
    print(f"summary: {summary}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
