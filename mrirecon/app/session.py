"""Uploads and downloads: the upload cap, per-session download folders (removed when the browser tab
closes, and with the process) and the de-identified download files of a reconstruction."""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from gradio.utils import _parse_file_size

from ..io import write_output
from ..io.deid import pseudonym
from ..io.files import write_atomically
from ..io.outputs import carried_attrs
from .cache import Entry


def parse_size(size: str | int) -> int:
    """``"200mb"``, ``"1gb"``, ``"500kb"`` (or an int of bytes) -> bytes, read by Gradio's own parser (binary
    units), so that a size accepted here is the cap Gradio enforces. Raises ValueError."""
    try:
        return int(_parse_file_size(size if isinstance(size, int) else str(size).strip().lower()))
    except (ValueError, TypeError) as err:
        raise ValueError(f"cannot read the size {size!r} (a whole number and a unit: e.g. 500kb, 200mb, 1gb)") from err


class SessionFolders:
    """One temporary folder per browser session under a root that lives as long as the app."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="mrirecon-app-")
        self.root = Path(self._tmp.name)

    @staticmethod
    def _name(session: str | None) -> str:
        return re.sub(r"[^A-Za-z0-9_-]", "", session or "")

    def folder(self, session: str | None) -> Path:
        """The session's folder (created); sessions without an id share ``anonymous``."""
        path = self.root / (self._name(session) or "anonymous")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def drop(self, session: str | None) -> None:
        if self._name(session):
            shutil.rmtree(self.root / self._name(session), ignore_errors=True)

    def close(self) -> None:
        self._tmp.cleanup()


def download_stem(entry: Entry) -> str:
    """Name of an entry's downloads: a keyed pseudonym of the uploaded content (upload names often hold
    the patient's name)."""
    return pseudonym("upload", entry.digest)


def write_downloads(entry: Entry, out_dir: Path) -> tuple[Path, Path]:
    """The reconstruction as a fastMRI HDF5 file and as a DICOM series (zip), both de-identified like the
    outputs of ``mrirecon reconstruct`` (:func:`mrirecon.io.write_output`)."""
    res = entry.result
    stem = download_stem(entry)  # download names never carry the upload's name
    attrs = {
        "acceleration": res.acceleration,
        "num_low_frequency": res.num_low_frequencies,
        "seconds": res.seconds,
        **carried_attrs(entry.attrs),
    }
    h5 = out_dir / f"{stem}_recon.h5"
    write_output(h5, "h5", res.recon, entry.header_xml, attrs, f"upload:{entry.digest}")
    archive = out_dir / f"{stem}_dicom.zip"
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        series = Path(tmp) / f"{stem}_dicom"
        write_output(series, "dicom", res.recon, entry.header_xml, attrs, f"upload:{entry.digest}")

        def zip_series(path: Path) -> None:
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
                for f in sorted(series.iterdir()):
                    zf.write(f, f"{series.name}/{f.name}")

        write_atomically(archive, zip_series, ".zip")
    return h5, archive
