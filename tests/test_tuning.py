"""λ / ESPIRiT-crop tuning on the validation split: grid, choice, JSON, and the tables that print it."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mrirecon.evaluate import UsageError, main, tuning

GRID = {"sense": {"lamda": [0.001, 0.3], "crop": [0.0, 0.95]}}


def test_choose_takes_best_ssim_then_psnr():
    scores = pd.DataFrame(
        [
            ("sense", 4, 0.01, 0.0, 0.70, 30.0),
            ("sense", 4, 0.03, 0.0, 0.75, 29.0),
            ("sense", 4, 0.1, 0.9, 0.75, 31.0),
            ("sense", 8, 0.01, 0.0, 0.60, 25.0),
            ("bart", 4, 0.001, 0.0, 0.50, 20.0),
        ],
        columns=["base", "acceleration", "lamda", "crop", "SSIM", "PSNR"],
    )
    chosen = tuning.choose(scores)
    assert chosen == {
        "sense": {"4": {"lamda": 0.1, "crop": 0.9}, "8": {"lamda": 0.01, "crop": 0.0}},
        "bart": {"4": {"lamda": 0.001, "crop": 0.0}},
    }


def test_grid_edges_are_reported():
    record = {
        "grid": {"sense": {"lamda": [0.001, 0.01, 0.1], "crop": [0.0]}},
        "chosen": {"sense": {"4": {"lamda": 0.01, "crop": 0.0}, "8": {"lamda": 0.1, "crop": 0.0}}},
    }
    assert tuning.grid_edges(record) == ["sense at 8x: λ 0.1 is at the edge of the grid [0.001, 0.01, 0.1]"]


def test_tune_reads_only_the_validation_split(synth_root, monkeypatch):
    import mrirecon.evaluate.run as ev  # where the harness looks load_cases up

    read: list[str] = []
    original = ev.load_cases

    def spy(path, *args, **kwargs):
        read.append(str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(ev, "load_cases", spy)
    record = tuning.tune(synth_root / "val", ["sense"], [4, 8], max_slices_per_volume=1, grid=GRID)
    assert read and all(p.startswith(str(synth_root / "val")) for p in read)
    scores = pd.DataFrame(record["scores"])
    assert len(scores) == 2 * 4 and set(scores["method"]) == {"sense"}  # 2 accelerations x 4 grid points
    for acc in (4, 8):
        at = scores[scores["acceleration"] == acc]
        best = at.sort_values(["SSIM", "PSNR"], ascending=False).iloc[0]
        assert record["chosen"]["sense"][str(acc)] == {"lamda": best["lamda"], "crop": best["crop"]}
        assert at["SSIM"].nunique() > 1  # the grid points differ: the choice is not arbitrary
    assert record["validation"] == str(synth_root / "val") and record["grid"] == GRID


def test_cli_tunes_writes_json_and_tables_print_lambda(synth_root, tmp_path, monkeypatch):
    monkeypatch.setattr(tuning, "DEFAULT_GRID", GRID)
    out, tuned = tmp_path / "run", tmp_path / "tuned.json"
    argv = ["--data", str(synth_root / "test"), "--accelerations", "4", "8", "--max-slices-per-volume", "1"]
    argv += [
        "--max-volumes",
        "1",
        "--workers",
        "1",
        "--method",
        "zero-filled",
        "--method",
        "sense",
        "--method",
        "s0=sense:crop=0",
    ]
    argv += ["--tune-on", str(synth_root / "val"), "--tune-max-slices", "1", "--tuned", str(tuned)]
    assert main([*argv, "--out", str(out)]) == 0
    record = json.loads(tuned.read_text())
    assert set(record["chosen"]["sense"]) == {"4", "8"}
    summary = pd.read_csv(out / "summary.csv").set_index(["method", "acceleration"])
    for acc in (4, 8):  # per-acceleration rows carry the validation choice; explicit options win
        chosen = record["chosen"]["sense"][str(acc)]
        assert summary.loc[("sense", acc), "lamda"] == chosen["lamda"]
        assert summary.loc[("sense", acc), "crop"] == chosen["crop"]
        assert summary.loc[("sense", acc), "tuned"] == "lamda+crop"
        assert summary.loc[("s0", acc), "crop"] == 0 and summary.loc[("s0", acc), "tuned"] == "lamda"
    md = (out / "summary.md").read_text()
    assert "## 4x" in md and "## 8x" in md and "| λ | ESPIRiT crop |" in md
    sense_rows = [line for line in md.splitlines() if line.startswith("| sense |")]
    assert len(sense_rows) == 2 and all("(val)" in line for line in sense_rows)
    assert f"validation folder `{synth_root / 'val'}`" in md
    # the saved file is read back without tuning again and gives the same numbers
    again = tmp_path / "again"
    assert main([*argv[:-4], "--tuned", str(tuned), "--out", str(again)]) == 0
    pd.testing.assert_frame_equal(
        pd.read_csv(again / "summary.csv").drop(columns=["s_per_slice", "maps_s_per_slice"]),
        pd.read_csv(out / "summary.csv").drop(columns=["s_per_slice", "maps_s_per_slice"]),
    )


def test_evaluating_on_the_validation_folder_is_refused(synth_root, tmp_path, capsys):
    record = {"validation": str(synth_root / "val"), "chosen": {"sense": {"4": {"lamda": 0.01, "crop": 0.0}}}}
    tuned = tmp_path / "tuned.json"
    tuned.write_text(json.dumps(record))
    argv = ["--data", str(synth_root / "val"), "--method", "sense", "--tuned", str(tuned), "--out", str(tmp_path / "x")]
    assert main(argv) == 2
    assert "tuned on this folder" in capsys.readouterr().err
    assert main([*argv[:-4], "--tune-on", str(synth_root / "val"), "--out", str(tmp_path / "y")]) == 2


def test_bad_tuning_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"validation": "v", "chosen": {"sense": {"4": {"lamda": 0.1, "iters": 3}}}}))
    with pytest.raises(UsageError, match="only lamda and crop"):
        tuning.load_tuned(bad)
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="cannot read the tuning file"):
        tuning.load_tuned(bad)
