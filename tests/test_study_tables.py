"""The study summary (experiments/study_tables.py) on synthetic evaluate outputs with known arithmetic."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

from mrirecon.evaluate import summarize_frame, write_outputs


def _study_tables():
    """The script, loaded by path: experiments/ is outside the package."""
    path = Path(__file__).resolve().parents[1] / "experiments" / "study_tables.py"
    spec = importlib.util.spec_from_file_location("study_tables", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["study_tables"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


_st = _study_tables()
default_shift_rows, load_study, main, markdown = _st.default_shift_rows, _st.load_study, _st.main, _st.markdown
shift_table, tta_table, variant_table = _st.shift_table, _st.tta_table, _st.variant_table

# (split, method, acceleration) -> per seed (SSIM, s/slice); two volumes of 6 slices each score SSIM -/+ 0.01
SCORES = {
    ("test", "zero-filled", 4): [(0.60, 0.001), (0.60, 0.001)],
    ("test", "zero-filled", 8): [(0.50, 0.001), (0.50, 0.001)],
    ("test", "nirvana-token", 4): [(0.80, 0.02), (0.82, 0.02)],
    ("test", "nirvana-token", 8): [(0.70, 0.02), (0.72, 0.02)],
    ("test", "nirvana-token-tta", 4): [(0.80, 0.22), (0.83, 0.22)],
    ("test", "nirvana-token-tta", 8): [(0.70, 0.22), (0.73, 0.22)],
    ("test", "nirvana-token-4x-only", 4): [(0.81, 0.01), (0.81, 0.01)],
    ("test", "nirvana-token-4x-only", 8): [(0.60, 0.01), (0.66, 0.01)],
    ("test", "nirvana-token-4x-only-tta", 8): [(0.63, 0.21), (0.67, 0.31)],
    ("shift", "zero-filled", 4): [(0.65, 0.002), (0.65, 0.002)],
    ("shift", "zero-filled", 8): [(0.55, 0.002), (0.55, 0.002)],
    ("shift", "nirvana-token", 4): [(0.70, 0.03), (0.70, 0.03)],
    ("shift", "nirvana-token", 8): [(0.60, 0.03), (0.62, 0.03)],
    ("shift", "nirvana-token-tta", 4): [(0.75, 0.43), (0.73, 0.53)],
    ("shift", "nirvana-token-tta", 8): [(0.60, 0.43), (0.62, 0.43)],
}


def _write_study(directory, prefix="study", seeds=(0, 1)):
    for seed in seeds:
        for split in ("test", "shift"):
            rows = []
            for (sp, method, acc), per_seed in SCORES.items():
                if sp != split:
                    continue
                ssim, s_slice = per_seed[seed]
                for i, d in enumerate((-0.01, 0.01)):
                    v = ssim + d
                    rows.append(
                        dict(
                            method=method,
                            acceleration=acc,
                            volume=f"v{i}_acc{acc}.h5",
                            slices=6,
                            NMSE=1 - v,
                            PSNR=20 + 10 * v,
                            SSIM=v,
                            seconds=6 * s_slice,
                            maps_seconds=0.0,
                        )  # fmt: skip
                    )
            summary = summarize_frame(pd.DataFrame(rows))
            summary.attrs = {"per_volume": pd.DataFrame(rows)}
            write_outputs(summary, directory / f"{prefix}_s{seed}_{split}", "synthetic", "equispaced_fraction")


def test_arithmetic_of_the_summary(tmp_path):
    _write_study(tmp_path)
    (tmp_path / "study_small.csv").write_text("method,acceleration\nx,4\n")  # other files are ignored
    frame = load_study(tmp_path)
    assert sorted(frame["seed"].unique()) == [0, 1] and set(frame["split"]) == {"test", "shift"}

    var = variant_table(frame).set_index(["split", "acceleration", "method"])
    r = var.loc[("test", 8, "nirvana-token")]
    assert r["SSIM"] == pytest.approx(0.71) and r["SSIM_std"] == pytest.approx(math.sqrt(2) * 0.01)
    assert r["PSNR"] == pytest.approx(27.1) and r["NMSE"] == pytest.approx(0.29) and r["seeds"] == 2
    assert var.loc[("shift", 4, "nirvana-token-tta"), "s_per_slice"] == pytest.approx(0.48)

    shifts = shift_table(frame, default_shift_rows(frame))
    accel = shifts[shifts["shift"] == "4x -> 8x"]
    assert len(accel) == 1  # tested at 8x only
    a = accel.iloc[0]
    assert a["acceleration"] == 8 and a["seeds"] == 2
    assert a["ssim_in_dist"] == pytest.approx(0.71) and a["ssim_shifted"] == pytest.approx(0.63)
    assert a["gap"] == pytest.approx(0.08) and a["gap_std"] == pytest.approx(math.sqrt(2) * 0.02)  # gaps 0.10, 0.06
    assert a["gain"] == pytest.approx(0.02) and a["gain_std"] == pytest.approx(math.sqrt(2) * 0.01)  # 0.03, 0.01
    assert a["closed"] == pytest.approx(0.25)
    assert a["tta_s_volume"] == pytest.approx(0.26 * 16) and a["tta_extra_s_volume"] == pytest.approx(0.25 * 16)

    anat = shifts[shifts["shift"] == "anatomy / coils"].set_index(["label", "acceleration"])
    assert set(anat.index.get_level_values(0)) == {"zero-filled", "nirvana-token"}  # in both splits, TTA rows aside
    n4 = anat.loc[("nirvana-token", 4)]
    assert n4["gap"] == pytest.approx(0.11) and n4["gain"] == pytest.approx(0.04)  # gaps 0.10, 0.12; gains .05, .03
    assert n4["closed"] == pytest.approx(0.04 / 0.11)
    assert n4["tta_s_volume"] == pytest.approx(0.48 * 16) and n4["tta_extra_s_volume"] == pytest.approx(0.45 * 16)
    n8 = anat.loc[("nirvana-token", 8)]
    assert n8["gap"] == pytest.approx(0.10) and n8["gain"] == pytest.approx(0.0, abs=1e-12)
    assert n8["closed"] == pytest.approx(0.0, abs=1e-9)
    zf = anat.loc[("zero-filled", 4)]
    assert zf["gap"] == pytest.approx(-0.05) and math.isnan(zf["gain"]) and math.isnan(zf["closed"])

    tta = tta_table(frame).set_index(["split", "method", "acceleration"])
    t = tta.loc[("test", "nirvana-token", 4)]
    assert t["delta"] == pytest.approx(0.005) and t["delta_std"] == pytest.approx(math.sqrt(2) * 0.005)
    assert t["tta_s_volume"] == pytest.approx(0.22 * 16) and t["tta_extra_s_volume"] == pytest.approx(0.2 * 16)
    assert ("test", "nirvana-token-4x-only", 8) in tta.index and ("test", "nirvana-token-4x-only", 4) not in tta.index

    training = pd.DataFrame(
        {"method": ["none", "none", "transformer"], "steps": [400, 500, 300], "epochs": [7, 8, 5],
         "seconds": [40.0, 41.0, 40.5], "seed": [0, 1, 0]}
    )  # fmt: skip
    text = markdown(frame, training=training)
    assert "| none | 2 | 450 ± 71 | 7.5 ± 0.7 | 40.5 ± 0.7 |" in text  # steps 400, 500: sample std 70.7
    assert "| transformer | 1 | 300 | 5.0 | 40.5 |" in text
    assert "| 4x -> 8x | nirvana-token-4x-only vs nirvana-token | 8x | 2 | 0.7100 | 0.6300 | +0.0800 ± 0.0283 |" in text
    assert "| 0.6500 | +0.0200 ± 0.0141 | 25% | 4.16 | 4.00 |" in text
    assert "| nirvana-token | 2 | 0.7100 ± 0.0141 | 27.10 ± 0.14 | 0.2900 ± 0.0141 | 0.020 |" in text
    assert "| anatomy / coils | nirvana-token | 4x | 2 | 0.8100 | 0.7000 | +0.1100 ± 0.0141 | 0.7400 |" in text
    assert "36%" in text and "| anatomy / coils | zero-filled | 4x | 2 | 0.6000 | 0.6500 | -0.0500 ± 0.0000 |" in text


def test_one_seed_and_the_command(tmp_path, capsys):
    _write_study(tmp_path, prefix="run", seeds=(1,))
    for name, steps in (("nirvana-token", 290), ("none", 480)):  # codec cards of one seed's run folder
        (tmp_path / "s1" / name).mkdir(parents=True)
        card = {"training": {"epochs": 5, "steps": steps, "seconds": 40.5, "device": "NVIDIA H100"}}
        (tmp_path / "s1" / name / "card.json").write_text(json.dumps(card))
    assert main(["--training", str(tmp_path / "s1"), "--out", str(tmp_path / "run_s1_training.csv")]) == 0
    assert main([str(tmp_path), "--prefix", "run"]) == 0
    text = (tmp_path / "run.md").read_text()
    assert "Seeds: 1;" in text
    assert "| nirvana-token | 1 | 290 | 5.0 | 40.5 |" in text and "| none | 1 | 480 | 5.0 | 40.5 |" in text
    # one seed: means only, no ± (seed 1 of the 4x->8x shift: gap 0.06, gain 0.01 -> 17%, flagged nowhere)
    assert "| 4x -> 8x | nirvana-token-4x-only vs nirvana-token | 8x | 1 | 0.7200 | 0.6600 | +0.0600 | 0.6700 |" in text
    assert "| +0.0100 | 17% | 4.96 | 4.80 |" in text
    assert main([str(tmp_path / "none")]) == 2 and "no study_s" in capsys.readouterr().err
