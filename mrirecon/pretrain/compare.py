"""Markdown table of pretraining runs: ``python -m mrirecon.pretrain.compare RUN_DIR... [--out table.md]``.

Each RUN_DIR is a run's ``default_root_dir`` (or its ``model/`` folder); the table reads ``pretraining.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..io.files import write_bytes_atomically
from ..io.markdown import markdown_table
from .cli import FACTS_NAME


def load_facts(run: Path) -> dict:
    for path in (run / "model" / FACTS_NAME, run / FACTS_NAME):
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not JSON ({e})") from e
    raise FileNotFoundError(f"{run}: no {FACTS_NAME} (did the run finish?)")


def label(f: dict) -> str:
    return f"nirvana (Trigger {f['trigger']})" if f["architecture"] == "nirvana" else f["architecture"]


def table(runs: list[dict]) -> str:
    """One row per run, plus the n-gram baselines of the first run (all runs share the held-out tokens)."""
    header = [
        "model", "layers", "params (non-embedding)", "tokens seen", "steps", "seconds",
        "held-out loss", "held-out ppl", "bits/byte",
    ]  # fmt: skip
    rows = []
    for f in runs:
        h = f["heldout"]
        params = f"{f['parameters'] / 1e6:.1f}M ({f['non_embedding_parameters'] / 1e6:.1f}M)"
        rows.append(
            [label(f), f["config"]["num_hidden_layers"], params, f"{f['tokens_seen'] / 1e6:.1f}M", f.get("steps", "")]
            + [f.get("seconds", ""), f"{h['loss']:.3f}", f"{h['ppl']:.2f}", f"{h['bits_per_byte']:.3f}"]
        )
    b = runs[0]["baselines"]
    rows.append(["bigram (interpolated)", *[""] * 6, f"{b['bigram_ppl']:.2f}", ""])
    rows.append(["unigram (add-one)", *[""] * 6, f"{b['unigram_ppl']:.2f}", ""])
    notes = []
    if len({f["tokens_seen"] for f in runs}) > 1:
        notes.append("tokens seen differ between runs: a run stopped at its time bound before its step bound.")
    if (
        len({f["data"]["heldout_tokens_scored"] for f in runs}) > 1
        or len({f["data"]["corpus_sha256"] for f in runs}) > 1
    ):
        notes.append("the runs were scored on different held-out data: rows are not comparable.")
    held = runs[0]["data"]["heldout_tokens_scored"]
    foot = f"\nHeld-out: {held:,} tokens of documents never trained on; perplexity per token of the shared tokenizer.\n"
    return "\n".join(markdown_table(header, rows)) + "\n" + foot + "".join(f"\n**Note:** {n}\n" for n in notes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mrirecon.pretrain.compare", description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, help="write the table here (default: print it)")
    args = ap.parse_args(argv)
    facts, failed = [], 0
    for run in args.runs:
        try:
            facts.append(load_facts(run))
        except (FileNotFoundError, ValueError) as e:
            print(f"compare: {e}", file=sys.stderr)
            failed += 1
    if not facts:
        return 1
    text = table(facts)
    if args.out:
        write_bytes_atomically(args.out, text.encode())
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
