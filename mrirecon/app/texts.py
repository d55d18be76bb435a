"""The app's texts (no Gradio here): the summary line, the metrics table, the details JSON, the
consistency figure's numbers, the test-time adaptation note and the error box."""

from __future__ import annotations

import dataclasses
from typing import Any

from .cache import Entry

NO_REFERENCE_NOTE = (
    "no reference in a test-format file: metrics need a fully sampled file (train/val format); "
    "see the k-space tab for the measured data"
)
COIL_HINT = "Coil sensitivity maps of the slice shown: press the button above (ESPIRiT takes a few seconds)."
NO_FILE = "choose a .h5 k-space file (upload one or click an example) first"


def error_box(message: str) -> str:
    return f"**Error:** {message}"


def summary(entry: Entry, cached: bool) -> str:
    """Markdown: the file, its shape, mask and settings; the timings of each stage."""
    res, t = entry.result, entry.timings
    mask = (
        f"the file's own mask ({res.acceleration:.1f}x)"
        if entry.is_test_format
        else f"{res.settings.get('mask_type')} mask, {res.acceleration:.1f}x"
    )
    s, h, w = res.recon.shape
    extra = ", ".join(f"{k} = {v}" for k, v in res.settings.items() if k != "mask_type")
    lines = [
        f"**{res.fname}**: {s} slices of {h}x{w}, {mask}, {res.num_low_frequencies} centre lines"
        + (f", {extra}" if extra else ""),
        f"Timings: load + validate {t['load_s']:.2f} s, reconstruction {t['reconstruct_s']:.2f} s "
        f"({t['per_slice_s'] * 1000:.0f} ms per slice), metrics {t['metrics_s']:.2f} s, consistency check "
        f"{t.get('consistency_s', 0.0):.2f} s" + (" (cached result: no new computation)" if cached else ""),
    ]
    return "\n\n".join(lines)


def metrics_table(entry: Entry, s: int) -> Any:
    """SSIM, PSNR and NMSE of slice ``s`` and of the volume, zero-filled and reconstructed (a DataFrame), or
    why there are none."""
    import pandas as pd

    if entry.slice_metrics is None:
        return pd.DataFrame({"metric": ["-"], "note": [NO_REFERENCE_NOTE]})
    s = entry.slice_index(s)
    rows = []
    for name, fmt in (("SSIM", "{:.4f}"), ("PSNR", "{:.2f} dB"), ("NMSE", "{:.5f}")):
        rows.append(
            {
                "metric": name,
                f"zero-filled, slice {s}": fmt.format(entry.slice_metrics[s]["zero-filled"][name]),
                f"reconstruction, slice {s}": fmt.format(entry.slice_metrics[s]["recon"][name]),
                "zero-filled, volume": fmt.format(entry.zf_metrics[name]),
                "reconstruction, volume": fmt.format(entry.result.metrics[name]),
            }
        )
    return pd.DataFrame(rows)


def details(entry: Entry, cached: bool, model: str) -> dict[str, Any]:
    """The details JSON of a reconstruction by the network described by ``model``."""
    res = entry.result
    return {
        "file": res.fname,
        "shape": list(res.recon.shape),
        "test_format": entry.is_test_format,
        "acceleration": res.acceleration,
        "num_low_frequencies": res.num_low_frequencies,
        "settings": res.settings,
        "metrics": res.metrics,
        "zero_filled_metrics": entry.zf_metrics,
        "timings": entry.timings,
        "tta": dataclasses.asdict(res.tta) if res.tta is not None else None,
        "cached": cached,
        "model": model,
    }


def tta_note(entry: Entry) -> str:
    """Test-time adaptation's before/after numbers of this reconstruction (Markdown), or that it was off."""
    return tta_text(entry.result.tta, entry.settings.tta_steps)


def consistency_text(check: Any, s: int, adapted: bool = False) -> str:
    """Markdown of the two reference-free numbers of slice ``s``."""
    text = (
        f"**Consistency with the measured data, slice {s}** (no reference needed): residual on the measured "
        f"lines **{check.measured_error:.4f}** (relative L1: what data consistency leaves); error on "
        f"{check.heldout_lines} held-out measured lines predicted from the others **{check.heldout_error:.4f}** "
        "(1.0 = no better than zeros; the split test-time adaptation learns from)."
    )
    if adapted:
        text += " Computed with the network before the scan's adaptation."
    return text


def tta_text(report: Any, requested_steps: int = 0) -> str:
    """Markdown of test-time adaptation's before/after numbers (:class:`~mrirecon.adapt.tta.TTAReport`; the
    newer fields ``used``, ``params`` and ``seconds`` are read when present), or why there are none."""
    if report is None:
        if requested_steps:
            return f"**Test-time adaptation**: asked for {requested_steps} steps, but no report came back."
        return "**Test-time adaptation**: off (set TTA steps above 0 to adapt the codec to this scan)."
    before, after = float(report.stop_error_before), float(report.stop_error_after)
    change = (after - before) / max(before, 1e-20) * 100.0
    used = getattr(report, "used", None)
    if used is None:  # reports without the field: the unadapted start is kept when no step improved on it
        used = report.best_step > 0
    params, seconds = getattr(report, "params", None), getattr(report, "seconds", None)
    verdict = (
        "**yes**, the adapted result is shown"
        if used
        else "**no**, the unadapted result is shown (adaptation did not lower the held-out error)"
    )
    lines = [
        f"**Test-time adaptation**: held-out k-space error **{before:.6f} before → {after:.6f} after** "
        f"({change:+.3f} %)",
        f"{report.steps_run} steps run, best at step {report.best_step}"
        + (f", parameters adapted: {params}" if params else "")
        + (f", {float(seconds):.1f} s" if seconds else ""),
        f"adapted result used: {verdict}",
    ]
    return "  \n".join(lines)
