"""Writing files safely and fingerprinting them: the one home of atomic writes and file SHA-256.

Every output is written under a short hidden temporary name ``.mrirecon-<pid>-<8 hex>[suffix]`` in
the folder of its final name (short whatever the final name's length) and renamed into place when
complete, so a reader never sees half a file. A temporary whose process is gone (a killed run) is
removed by :func:`mrirecon.io.batch.clean_stale_temporaries`.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

TMP_PREFIX = ".mrirecon-"

__all__ = [
    "TMP_PREFIX",
    "default_file_mode",
    "file_sha256",
    "remove_path",
    "replace_path",
    "temp_path",
    "write_atomically",
    "write_bytes_atomically",
    "write_text_atomically",
]


def temp_path(folder: str | os.PathLike, suffix: str = "") -> Path:
    """A short unused hidden name in ``folder`` (created if missing) for a file or folder being written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def default_file_mode() -> int:
    """The mode a plainly created file gets (0644 under the usual umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def remove_path(path: str | os.PathLike) -> None:
    """Remove a file or a folder tree if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def replace_path(tmp: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename ``tmp`` to ``dst``, replacing an existing ``dst`` whether a file or a folder."""
    tmp, dst = Path(tmp), Path(dst)
    if dst.is_dir() and not dst.is_symlink():
        trash = temp_path(dst.parent)
        os.replace(dst, trash)
        os.replace(tmp, dst)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp, dst)


def write_atomically(path: str | os.PathLike, write: Callable[[Path], object], suffix: str = "") -> Path:
    """``write(temporary path)`` next to ``path``, then rename it into place -> ``path``.

    ``write`` may create a file or a folder there. A file gets the normal mode (mkstemp and the
    safetensors writer leave files readable by their owner only). ``suffix`` ends the temporary name
    for writers that choose the format by extension (``.nii.gz``) or append one (``np.savez``: ``.npz``).
    On any error nothing is left under either name and an existing ``path`` is untouched.
    """
    path = Path(path)
    tmp = temp_path(path.parent, suffix)
    try:
        write(tmp)
        if tmp.is_file():
            os.chmod(tmp, default_file_mode())
        replace_path(tmp, path)
    finally:
        remove_path(tmp)
    return path


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """``data`` into ``path`` through :func:`write_atomically`."""
    return write_atomically(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 ``text`` into ``path`` through :func:`write_atomically`."""
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def file_sha256(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in ``block``-sized pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()
