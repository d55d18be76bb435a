"""BART (Berkeley Advanced Reconstruction Toolbox) as a peer baseline, run as the real ``bart`` program.

One slice in fastMRI's convention (``kspace [C, H, W]`` complex, centred, H = readout, W = phase
encode, unacquired columns zero; ``mask [W]`` bool) goes to BART's own file format in a private
temporary folder, ``bart ecalib -m1`` estimates ESPIRiT maps and ``bart pics -R W:7:0:lamda``
solves the l1-wavelet compressed-sensing problem; the result is the RSS of the coil images
``S_c x`` (``|x|`` where the maps are normalised), ``[H, W]`` float32 at full k-space size (the caller
centre-crops readout-oversampled images to the target, as for every other method).

BART orders dimensions ``[readout, phase, slice, coil, map, ...]``: our ``[C, H, W]`` becomes
``[H, W, 1, C]``. BART's centred unitary FFT uses the same centre (index N//2) as ``fastmri.ifft2c``.
k-space is divided by the maximum of its zero-filled RSS image before BART runs (``pics -w 1`` turns
off BART's own scaling) and the image is scaled back, so ``lamda`` is relative to the image maximum,
as for the sigpy baselines. Each ``bart`` process runs with one OpenMP thread (the harness
parallelises over slices).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..physics import coil_images_rss_np

__all__ = ["BartError", "bart_available", "bart_espirit", "bart_pics", "read_cfl", "write_cfl"]

BART_LAMDA = 0.001  # the value the comparison used; tune with ``mrirecon.evaluate.tuning``
BART_CROP = 0.0  # ESPIRiT eigenvalue crop of the maps (0: maps kept in the background)


class BartError(RuntimeError):
    """``bart`` is missing or one of its commands failed."""


def bart_available() -> str | None:
    """Path of the ``bart`` program, or None."""
    return shutil.which("bart")


# ----------------------------------------------------------------------------------------------
# BART's file format: NAME.hdr (text: "# Dimensions" then the sizes) + NAME.cfl (complex64, column-major)


def write_cfl(name: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (any shape, cast to complex64) as ``NAME.hdr`` + ``NAME.cfl``."""
    array = np.asarray(array, dtype=np.complex64)
    dims = list(array.shape) or [1]
    base = Path(name)
    base.with_name(base.name + ".hdr").write_text("# Dimensions\n" + " ".join(map(str, dims)) + "\n")
    array.ravel(order="F").tofile(base.with_name(base.name + ".cfl"))


def read_cfl(name: str | os.PathLike) -> np.ndarray:
    """Read ``NAME.hdr`` + ``NAME.cfl`` -> complex64 array (trailing singleton dimensions dropped)."""
    base = Path(name)
    lines = [ln for ln in base.with_name(base.name + ".hdr").read_text().splitlines() if ln.strip()]
    try:
        dims = [int(d) for d in lines[lines.index("# Dimensions") + 1].split()]
    except (ValueError, IndexError) as err:
        raise BartError(f"{base}.hdr: no '# Dimensions' line followed by sizes") from err
    data = np.fromfile(base.with_name(base.name + ".cfl"), dtype=np.complex64)
    if data.size != int(np.prod(dims)):
        raise BartError(f"{base}.cfl: {data.size} values, header says {dims}")
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    return data.reshape(dims, order="F")


# ----------------------------------------------------------------------------------------------
# running bart


def _bart(*args: str, cwd: Path) -> None:
    exe = bart_available()
    if exe is None:
        raise BartError("the `bart` program is not installed (Debian/Ubuntu: apt-get install bart)")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([exe, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise BartError(f"bart {args[0]} failed ({proc.returncode}): {tail[0]}")


def _to_bart(kspace: np.ndarray) -> np.ndarray:
    """``[C, H, W] -> [H, W, 1, C]`` (BART: readout, phase, slice, coil)."""
    return np.transpose(kspace, (1, 2, 0))[:, :, None, :]


def _scaled(kspace: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    from .classical import _check_kspace, _check_mask, zero_filled

    kspace = _check_kspace(kspace)
    kspace = kspace * _check_mask(mask, kspace.shape[-1])[None, None, :]
    scale = float(zero_filled(kspace).max())
    if not np.isfinite(scale) or scale <= 0:
        scale = 1.0
    return (kspace / scale).astype(np.complex64), scale


def bart_espirit(
    kspace: np.ndarray, mask: np.ndarray, num_low_frequencies: int, calib: int = 24
) -> tuple[np.ndarray, np.ndarray]:
    """``bart ecalib -m1 -c 0`` on one slice -> (maps ``[C, H, W]`` complex64, eigenvalues ``[H, W]``).

    Maps of any ESPIRiT crop ``c`` are ``maps * (eigenvalues > c)`` (what ``ecalib -c c`` zeroes), so one
    calibration serves every crop. The calibration region is the fully sampled centre, at most
    ``calib`` x ``num_low_frequencies`` (BART finds the fully sampled part itself); the kernel is BART's
    default 6 x 6, narrowed to half the ACS width when that is below 12 columns (as the sigpy path does).
    """
    k, _ = _scaled(kspace, mask)
    C, H, W = k.shape
    region = max(3, min(int(num_low_frequencies), W))
    kernel = min(6, max(2, region // 2))  # BART's default 6, smaller for narrow ACS (8x: 5 columns)
    with tempfile.TemporaryDirectory(prefix="mrirecon-bart-") as tmp:
        cwd = Path(tmp)
        write_cfl(cwd / "ksp", _to_bart(k))
        cal = f"{min(calib, H)}:{region}:1"
        _bart("ecalib", "-m1", "-c", "0", "-r", cal, "-k", f"{kernel}:{kernel}:1", "ksp", "sens", "ev", cwd=cwd)
        sens = read_cfl(cwd / "sens").reshape(H, W, C)
        ev = read_cfl(cwd / "ev").reshape(H, W, -1)[..., 0]
    return np.ascontiguousarray(np.transpose(sens, (2, 0, 1))), np.abs(ev).astype(np.float32)


def bart_pics(
    kspace: np.ndarray,
    mask: np.ndarray,
    num_low_frequencies: int,
    lamda: float = BART_LAMDA,
    crop: float = BART_CROP,
    iterations: int | None = None,
    maps: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """ESPIRiT (``bart ecalib -m1``) + l1-wavelet ``bart pics`` on one slice -> ``[H, W]`` float32.

    Solves ``min_x ||P F S x - y||^2 + lamda ||W x||_1`` (Daubechies wavelets over x and y, BART's
    random cycle spinning, BART's default solver and iteration count unless ``iterations`` is given)
    on k-space scaled to unit zero-filled maximum. ``crop`` zeroes the maps where the ESPIRiT
    eigenvalue is below it. ``maps``: ``(maps [C,H,W], eigenvalues [H,W])`` of :func:`bart_espirit`
    to skip the calibration.
    """
    k, scale = _scaled(kspace, mask)
    if maps is None:
        maps = bart_espirit(k, mask, num_low_frequencies)
    sens, ev = maps
    sens = (sens * (ev > crop)[None]).astype(np.complex64)
    _, H, W = k.shape
    pattern = np.broadcast_to(np.asarray(mask, bool).reshape(1, W), (H, W)).astype(np.complex64)
    args = ["pics", "-w", "1", "-R", f"W:7:0:{lamda:g}", "-p", "pat"]
    if iterations is not None:
        args += ["-i", str(int(iterations))]
    with tempfile.TemporaryDirectory(prefix="mrirecon-bart-") as tmp:
        cwd = Path(tmp)
        write_cfl(cwd / "ksp", _to_bart(k))
        write_cfl(cwd / "sens", _to_bart(sens))
        write_cfl(cwd / "pat", pattern[:, :, None])
        _bart(*args, "ksp", "sens", "img", cwd=cwd)
        x = read_cfl(cwd / "img").reshape(H, W)
    return coil_images_rss_np(sens, x) * np.float32(scale)
