"""Issue 17's study table (experiments/backbone_study_table.py) on synthetic evaluate outputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]


def _table_module():
    path = ROOT / "experiments" / "backbone_study_table.py"
    spec = importlib.util.spec_from_file_location("backbone_study_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# SSIM per (variant, seed) on the in-distribution 4x split; adaptation adds 0.01; PSNR = 100 x SSIM
SSIM = {("pretrained", 0): 0.80, ("pretrained", 1): 0.82, ("pretrained", 2): 0.84,
        ("random", 0): 0.81, ("random", 1): 0.84, ("random", 2): 0.84}  # fmt: skip


def _summary(rows: list[tuple[str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"method": m, "acceleration": 4, "SSIM": v, "PSNR": 100 * v, "volumes": 3, "slices": 18} for m, v in rows]
    )


@pytest.fixture
def study(tmp_path) -> Path:
    (tmp_path / "eval-test-4").mkdir()
    rows = [(f"{v}-s{s}", x) for (v, s), x in SSIM.items()] + [
        (f"{v}-s{s}+tta", x + 0.01) for (v, s), x in SSIM.items()
    ]
    _summary(rows).to_csv(tmp_path / "eval-test-4" / "summary.csv", index=False)
    (tmp_path / "eval-test-zero-filled").mkdir()
    _summary([("zero-filled", 0.5)]).to_csv(tmp_path / "eval-test-zero-filled" / "summary.csv", index=False)
    for variant, seed in SSIM:
        (tmp_path / f"{variant}-s{seed}").mkdir()
        card = {"training": {"steps": 600, "seconds": 300.0 + seed}}
        (tmp_path / f"{variant}-s{seed}" / "card.json").write_text(json.dumps(card))
    return tmp_path


def test_means_intervals_and_paired_differences(study, tmp_path):
    module = _table_module()
    out = tmp_path / "summary.md"
    assert module.main([str(study), "--out", str(out)]) == 0
    text = out.read_text()
    assert "600–600 steps, 300.0–302.0 s" in text
    half = stats.t.ppf(0.975, 2) * pd.Series([0.80, 0.82, 0.84]).std(ddof=1) / 3**0.5
    # zero-filled: one value, no interval; pretrained: mean and 95% half-width over the three seeds
    assert f"| in distribution | 4x | none | 0.5000 | 0.8200 ± {half:.4f} | 0.8300 ± " in text
    assert f"| in distribution | 4x | 10 steps | 0.5000 | 0.8300 ± {half:.4f} |" in text
    # random - pretrained, paired by seed: differences 0.01, 0.02, 0.00
    diff = pd.Series([0.01, 0.02, 0.0])
    paired_half = stats.t.ppf(0.975, 2) * diff.std(ddof=1) / 3**0.5
    assert f"| in distribution | 4x | none | +0.0100 ± {paired_half:.4f} |" in text
    assert f"| in distribution | 4x | none | +1.00 ± {100 * paired_half:.2f} |" in text
    long = pd.read_csv(out.with_suffix(".csv"))
    assert set(long.variant) == {"zero-filled", "pretrained", "random"} and len(long) == 13
