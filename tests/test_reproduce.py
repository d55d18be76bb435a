"""results/reproduce_cpu.py: every command it lists parses with its own entry point, each step names the
README section it backs, and the runner keeps to its limits, skips steps without their inputs and records
everything under the output folder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("reproduce_cpu", ROOT / "results" / "reproduce_cpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("reproduce_cpu", module)
    spec.loader.exec_module(module)
    return module


def test_every_listed_command_parses_and_backs_a_readme_section(tmp_path, capsys):
    repro = _module()
    steps = repro.steps()
    names = [s.name for s in steps]
    assert len(set(names)) == len(names) and {"make-fit", "make-test", "bench-cpu-default"} <= set(names)
    assert all(s.section and 0 < s.limit_s <= 3 * 3600 for s in steps)
    for s in steps:  # every output is written under OUT (datasets, the inputs, where the README puts them)
        flags = [i for i, a in enumerate(s.argv) if a in ("--out", "--json", "--markdown", "--junitxml")]
        assert s.name.startswith("data-") or all(s.argv[i + 1].startswith("{out}") for i in flags), s.argv
    out = tmp_path / "out"
    assert repro.main([str(out), "--check"]) == 0, capsys.readouterr().out
    assert capsys.readouterr().out.count(" ok\n") == len(steps)
    assert not out.exists()  # parsing does no work


def test_check_reports_arguments_the_commands_refuse(tmp_path):
    repro = _module()
    bad = [
        repro.Step("bench", "x", 1, ["{py}", "-m", "mrirecon.bench", "slice", "--repeatz", "3"]),
        repro.Step(
            "fit", "x", 1, ["{py}", "-m", "mrirecon.fit", "fit", "--trainer.max_epochz", "3"], check="lightning"
        ),
        repro.Step("test", "x", 1, ["{py}", "-m", "pytest", "--no-such-option"], cwd="root", check="pytest"),
        repro.Step("study", "x", 1, ["bash", "{root}/codecs/no_such_script.sh"], check="bash"),
    ]
    problems = [repro.check_step(s, tmp_path) for s in bad]
    assert all(problems), problems
    assert "repeatz" in problems[0] and "exit 2" in problems[0] and "no_such_script.sh" in problems[3]


def test_runner_limits_skips_and_summary(tmp_path, monkeypatch, capsys):
    repro = _module()
    py = "{py}"
    monkeypatch.setattr(
        repro,
        "steps",
        lambda: [
            repro.Step("hello", "section A", 60, [py, "-c", "print('hello from a step')"]),
            repro.Step("slow", "section B", 1, [py, "-c", "import time; time.sleep(30)"]),
            repro.Step("later", "section C", 60, [py, "-c", "pass"], needs=["{out}/made_by_slow.json"]),
            repro.Step("broken", "section D", 60, [py, "-c", "raise SystemExit(3)"]),
        ],
    )
    out = tmp_path / "out"
    assert repro.main([str(out)]) == 1  # a step timed out and one failed
    printed = capsys.readouterr().out
    assert "hello (limit 60 s): backs section A" in printed
    assert "hello from a step" in (out / "logs" / "hello.log").read_text()
    summary = (out / "summary.md").read_text()
    assert "| hello | section A | ok |" in summary
    assert "| slow | section B | timed out after 1 s |" in summary
    assert f"| later | section C | skipped: needs {out}/made_by_slow.json |" in summary
    assert "| broken | section D | failed (exit 3, see logs/broken.log) |" in summary
    assert (out / "work" / "codecs").resolve() == ROOT / "codecs"  # recipes' relative paths resolve from OUT/work

    assert repro.main([str(tmp_path / "dry"), "--dry-run", "--only", "broken"]) == 0
    assert "# broken (limit 60 s) backs: section D" in capsys.readouterr().out
    assert not (tmp_path / "dry").exists()
