"""The benchmark harness (``python -m mrirecon.bench``) on the CPU: tiny config, tiny inputs, one repeat."""

from __future__ import annotations

import json
import math
import sys
import types
from pathlib import Path

import pytest
import torch

from mrirecon.bench import ROW_KEYS, main
from mrirecon.bench.timing import wrap

ROOT = Path(__file__).parents[1]

SMALL = ["--config", "tiny", "--coils", "2", "--size", "32", "32", "--repeats", "1", "--warmup", "0"]
TTA = ["--tta-slices", "2", "--tta-steps", "2", "--tta-repeats", "1"]


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: steadier and faster on a small shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(tmp_path, *argv: str) -> tuple[list[dict], list[str]]:
    """Run the harness; -> (its JSON rows, the table rows of its Markdown file)."""
    out, md = tmp_path / "bench.jsonl", tmp_path / "bench.md"
    rows = main(["--json", str(out), "--markdown", str(md), *argv])
    saved = [json.loads(line) for line in out.read_text().splitlines()]
    assert saved == json.loads(json.dumps(rows))  # every row appended, valid JSON (no NaN)
    text = md.read_text()
    assert text.startswith("Machine: ") and "PyTorch" in text.splitlines()[0]
    table = [ln for ln in text.splitlines() if ln.startswith("| ")][1:]  # without the column names
    assert len(table) == len(rows)
    return saved, table


def check_timed(row: dict) -> None:
    assert set(ROW_KEYS) <= set(row)
    assert row["error"] is None
    assert row["device"] and row["torch"] == torch.__version__
    for key in ("ms", "ms_per_slice", "throughput", "copy_ceiling_gbps"):
        assert math.isfinite(row[key]) and row[key] > 0, key
    assert row["ms_per_slice"] == pytest.approx(row["ms"] / (row.get("slices") or row["batch"]))


def test_backbone(tmp_path):
    rows, table = run(tmp_path, "backbone", "--config", "tiny", "--batch", "1", "2", "--tokens", "8", "--repeats", "1")
    assert [r["batch"] for r in rows] == [1, 2] and all(r["bench"] == "backbone" for r in rows)
    for r in rows:
        check_timed(r)
        assert r["tokens_per_s"] == r["throughput"] and r["tflops"] > 0 and r["gbps"] > 0
        assert r["matmul_ceiling_tflops"] is None  # measured on CUDA only
    assert "| backbone | nirvana | tiny | eager | fp32 | 2 |" in table[1]


@pytest.mark.parametrize("bench, batches", [("slice", [1, 2]), ("train", [1])])
def test_slice_and_train_time_ours_and_varnet(tmp_path, bench, batches):
    rows, _ = run(tmp_path, bench, *SMALL, "--batch", *map(str, batches))
    assert [(r["model"], r["batch"]) for r in rows] == [(m, b) for m in ("ours", "varnet") for b in batches]
    for r in rows:
        check_timed(r)
        assert r["bench"] == bench and r["mode"] == "eager" and r["precision"] == "32"
        assert r["flops"] > 0 and r["tflops"] > 0 and r["bytes"] > 0 and r["gbps"] > 0
        assert r["shape"] == f"kspace [{r['batch']}, 2, 32, 32, 2]"
    for ours, varnet in zip(rows[: len(batches)], rows[len(batches) :]):
        assert ours["ratio_vs_varnet"] == pytest.approx(ours["ms"] / varnet["ms"])
        assert varnet["ratio_vs_varnet"] is None
        assert ours["flops"] != varnet["flops"]


def test_slice_bf16_mixed(tmp_path):
    rows, _ = run(tmp_path, "slice", *SMALL, "--precision", "bf16-mixed")
    assert [r["model"] for r in rows] == ["ours", "varnet"]
    for r in rows:
        check_timed(r)
        assert r["precision"] == "bf16-mixed"
    assert rows[0]["ratio_vs_varnet"] > 0


def test_tta_through_the_shipped_codec(tmp_path):
    rows, table = run(tmp_path, "tta", *SMALL, *TTA, "--codec", str(ROOT / "codecs" / "default"))
    (r,) = rows
    check_timed(r)
    assert r["bench"] == "tta" and r["config"] == "codec:default"
    assert r["steps_run"] == 2 and r["slices"] == 2 and r["throughput_unit"] == "slices/s"
    assert "ratio_vs_varnet" in r and r["ratio_vs_varnet"] is None  # VarNet has no Trigger to adapt


def test_all_in_one_run(tmp_path):
    rows, table = run(tmp_path, "all", *SMALL, *TTA, "--tokens", "8", "--backbone-batch", "1")
    benches = [(r["bench"], r["model"]) for r in rows]
    assert benches == [
        ("backbone", "nirvana"),
        ("slice", "ours"),
        ("slice", "varnet"),
        ("train", "ours"),
        ("train", "varnet"),
        ("tta", "ours"),
    ]
    for r in rows:
        check_timed(r)
    assert all(r["ratio_vs_varnet"] > 0 for r in rows if r["model"] == "ours" and r["bench"] != "tta")
    assert [ln.split("|")[1].strip() for ln in table] == [b for b, _ in benches]


def test_graph_needs_cuda(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(SystemExit):
        main(["slice", *SMALL, "--graph"])
    assert "needs a CUDA device" in capsys.readouterr().err


def test_graph_mode_wraps_with_speed_cuda_graphed(monkeypatch):
    """``graph`` imports mrirecon.bench.speed lazily and hands it the callable and the example inputs."""
    calls = []

    def cuda_graphed(fn, *example_args):
        calls.append(example_args)
        return fn

    monkeypatch.setitem(sys.modules, "mrirecon.bench.speed", types.SimpleNamespace(cuda_graphed=cuda_graphed))
    x = torch.ones(3)
    graphed = wrap(lambda t: 2 * t, "graph", (x,))
    assert len(calls) == 1 and calls[0][0] is x
    assert torch.equal(graphed(x), 2 * x)


def test_eager_rows_and_flop_counting_leave_compiled_modules_alone():
    """A model the fast path compiled in place: ``eager`` rows and FLOP counting run its eager code, and
    neither spoils the compiled code for later ``fast`` rows (dynamo once gave up on such modules for good)."""
    from mrirecon.bench.timing import count_flops, wrap

    compiled = []

    def backend(gm, example_inputs):
        compiled.append(gm)
        return gm.forward

    class Net(torch.nn.Module):  # torch.nn's own modules are never compiled as a top-level frame
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.lin(x).relu()

    net = Net()
    net.compile(backend=backend)
    x = torch.randn(2, 4)
    assert count_flops(lambda: net(x)) == 2 * 2 * 4 * 4
    wrap(net, "eager", ())(x)
    assert not compiled
    net(x)
    assert len(compiled) == 1
