"""Grow a trained codec's decoder by more refinement cascades, so that training can go on from it.

The new cascades start as copies of the last trained ones (cascade ``n + i`` copies cascade
``n - k + i``, ``k`` the number added), so the grown network starts near the trained one rather
than from random refinement. Everything else (encoder, sensitivities, head) is carried over as is.

    python -m mrirecon.codecs.grow codecs/default runs/grown --cascades 12
"""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path

from .checkpoint import load_codec, save_codec


def grow_cascades(source: str | os.PathLike, target: str | os.PathLike, num_cascades: int) -> Path:
    """Write a codec folder ``target``: the codec of ``source`` with ``num_cascades`` refinement cascades."""
    net, card = load_codec(source)
    old = len(net.decoder.cascades)
    if not old < num_cascades <= 2 * old:
        raise ValueError(f"{source}: has {old} cascades; grow to more than {old} and at most {2 * old}")
    config = {**card["net"], "init_args": {**card["net"]["init_args"], "num_cascades": num_cascades}}
    net.decoder.cascades.extend(copy.deepcopy(net.decoder.cascades[2 * old - num_cascades :]))
    extra = {k: v for k, v in card.items() if k not in ("format", "net", "backbone", "stored_dtype", "files")}
    extra["grown_from"] = {"codec": str(source), "num_cascades": old, "copied": f"{2 * old - num_cascades}-{old - 1}"}
    return save_codec(target, net, config, **extra)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mrirecon.codecs.grow", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="codec folder (codec.safetensors + card.json)")
    parser.add_argument("target", help="folder for the grown codec")
    parser.add_argument("--cascades", type=int, required=True, help="refinement cascades of the grown codec")
    args = parser.parse_args(argv)
    try:
        print(grow_cascades(args.source, args.target, args.cascades))
    except (FileNotFoundError, ValueError) as err:
        parser.exit(2, f"error: {err}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
