"""python -m mrirecon.convert: batch HDF5 <-> DICOM, bad inputs, skip/overwrite, identity."""

from __future__ import annotations

import shutil
import subprocess
import sys
import types
from pathlib import Path

import h5py
import numpy as np
import pydicom
import pytest

from mrirecon import convert
from mrirecon.io import dicom
from mrirecon.io.outputs import ENHANCED_NAME

HEADER = """<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
  <subjectInformation><patientName>Doe^Jane</patientName><patientBirthdate>1970-01-02</patientBirthdate>
  </subjectInformation>
  <acquisitionSystemInformation><systemVendor>SIEMENS</systemVendor></acquisitionSystemInformation>
  <encoding>
    <encodedSpace><matrixSize><x>64</x><y>40</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>280</x><y>175</y><z>4.5</z></fieldOfView_mm></encodedSpace>
    <reconSpace><matrixSize><x>32</x><y>32</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>140</x><y>128</y><z>3</z></fieldOfView_mm></reconSpace>
  </encoding>
  <sequenceParameters><TR>2750</TR><TE>27</TE><sequence_type>TurboSpinEcho</sequence_type></sequenceParameters>
</ismrmrdHeader>
"""


def make_h5(path: Path, *, key="reconstruction_rss", shape=(4, 32, 32), seed=0, header=HEADER, **attrs) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    vol = (np.random.default_rng(seed).random(shape) * 3e-4).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=vol)
        if header is not None:
            f["ismrmrd_header"] = header
        f.attrs["patient_id"] = "PID-SECRET-123"
        for k, v in attrs.items():
            f.attrs[k] = v
    return vol


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = convert.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def failed_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("FAILED ")]


# ---------------------------------------------------------------- round trip


def test_round_trip_h5_dicom_h5(tmp_path, capsys):
    vols = {
        "a": make_h5(tmp_path / "in" / "a.h5", seed=1),
        "sub/b": make_h5(tmp_path / "in" / "sub" / "b.h5", seed=2, key="reconstruction"),
        "sub/deeper/c": make_h5(tmp_path / "in" / "sub" / "deeper" / "c.h5", seed=3, header=None),
    }
    keep = "--keep-identity"  # outputs named after the inputs (the default names them by pseudonyms)
    code, out, err = run(capsys, "h5-to-dicom", tmp_path / "in", tmp_path / "dcm", "--workers", "2", keep)
    assert code == 0, err
    assert out.strip().endswith("converted 3, skipped 0, failed 0")
    assert len(list((tmp_path / "dcm" / "sub" / "b").glob("IM*.dcm"))) == 4

    code, out, err = run(capsys, "dicom-to-h5", tmp_path / "dcm", tmp_path / "h5", "--workers", "2", keep)
    assert code == 0, err
    assert "converted 3, skipped 0, failed 0" in out
    for rel, vol in vols.items():
        with h5py.File(tmp_path / "h5" / f"{rel}.h5", "r") as f:
            back = f["reconstruction"][()]
            a = dict(f.attrs)
        slope = float(a["scale_slope"])
        assert slope == pytest.approx(float(vol.max()) / 65535, rel=1e-6)
        assert back.dtype == np.float32 and back.shape == vol.shape
        assert np.abs(back - vol).max() <= slope / 2 + 1e-7 * float(vol.max())
        if rel == "sub/deeper/c":  # no header: the documented default geometry
            assert list(a["pixel_spacing"]) == pytest.approx([1.0, 1.0])
            assert a["slice_thickness"] == pytest.approx(5.0)
        else:  # reconSpace FOV / matrix: rows 128/32, columns 140/32; thickness = FOV z
            assert list(a["pixel_spacing"]) == pytest.approx([4.0, 4.375])
            assert a["slice_thickness"] == pytest.approx(3.0)
            assert a["slice_spacing"] == pytest.approx(3.0)
        assert list(a["image_orientation_patient"]) == pytest.approx([1, 0, 0, 0, 1, 0])
        assert a["image_position_patient"].shape == (4, 3)
        assert a["patient_id"] == "PID-SECRET-123"  # kept end to end

    # Back to DICOM from our own HDF5: the geometry attributes win over defaults.
    code, _, err = run(capsys, "h5-to-dicom", tmp_path / "h5", tmp_path / "dcm2", "--workers", "1", keep)
    assert code == 0, err
    first = pydicom.dcmread(tmp_path / "dcm2" / "a" / "IM00001.dcm")
    orig = pydicom.dcmread(tmp_path / "dcm" / "a" / "IM00001.dcm")
    assert first.PixelSpacing == orig.PixelSpacing and first.ImagePositionPatient == orig.ImagePositionPatient
    assert not list(tmp_path.rglob(".mrirecon-*")), "temporary outputs left behind"


def test_series_uids_distinct_per_file(tmp_path, capsys):
    # The same data in two files must still give two series.
    make_h5(tmp_path / "in" / "x" / "same.h5", seed=5)
    make_h5(tmp_path / "in" / "y" / "same.h5", seed=5)
    assert run(capsys, "h5-to-dicom", tmp_path / "in", tmp_path / "dcm", "--workers", "1")[0] == 0
    uids = {pydicom.dcmread(p).SeriesInstanceUID for p in (tmp_path / "dcm").rglob("IM00001.dcm")}
    assert len(uids) == 2


def test_enhanced_output(tmp_path, capsys):
    vol = make_h5(tmp_path / "in" / "a.h5")
    code, out, err = run(capsys, "h5-to-dicom", tmp_path / "in", tmp_path / "dcm", "--enhanced")
    assert code == 0, err
    [folder] = (tmp_path / "dcm").iterdir()
    files = list(folder.iterdir())
    assert [p.name for p in files] == [ENHANCED_NAME]
    ds = pydicom.dcmread(files[0])
    assert int(ds.NumberOfFrames) == 4 and ds.PatientIdentityRemoved == "YES"
    code, out, err = run(capsys, "dicom-to-h5", tmp_path / "dcm", tmp_path / "h5")
    assert code == 0, err
    [out_h5] = (tmp_path / "h5").iterdir()
    with h5py.File(out_h5, "r") as f:
        assert np.abs(f["reconstruction"][()] - vol).max() <= float(f.attrs["scale_slope"])
        assert list(f.attrs["pixel_spacing"]) == pytest.approx([4.0, 4.375])


# ---------------------------------------------------------------- DICOM clients on CLI output


def test_dicom_tools_accept_cli_output(tmp_path, capsys):
    for tool in ("dciodvfy", "dcmdump", "dcm2pnm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (Debian packages dicom3tools / dcmtk; CI installs them)")
    make_h5(tmp_path / "in" / "a.h5")
    assert run(capsys, "h5-to-dicom", tmp_path / "in", tmp_path / "dcm")[0] == 0
    [folder] = (tmp_path / "dcm").iterdir()
    path = folder / "IM00002.dcm"
    v = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    text = v.stdout + v.stderr
    assert "MRImage" in text and not [ln for ln in text.splitlines() if ln.startswith("Error")], text
    d = subprocess.run(["dcmdump", str(path)], capture_output=True, text=True, timeout=60)
    assert d.returncode == 0 and "(0020,0013) IS [2]" in d.stdout, d.stdout + d.stderr
    r = subprocess.run(["dcm2pnm", str(path), str(tmp_path / "x.pgm")], capture_output=True, timeout=60)
    assert r.returncode == 0 and (tmp_path / "x.pgm").read_bytes().startswith(b"P5")
    hd = pytest.importorskip("highdicom")
    assert hd.imread(path).pixel_array.shape == (32, 32)


# ---------------------------------------------------------------- bad inputs


def test_bad_h5_inputs_reported_and_skipped(tmp_path, capsys):
    src = tmp_path / "in"
    good = make_h5(src / "good.h5")
    (src / "text.h5").write_text("this is not HDF5")
    make_h5(src / "truncated.h5", shape=(8, 64, 64))
    data = (src / "truncated.h5").read_bytes()
    (src / "truncated.h5").write_bytes(data[: len(data) // 2])
    with h5py.File(src / "missing.h5", "w") as f:
        f["kspace"] = np.zeros((2, 4, 4), np.complex64)
    make_h5(src / "rank.h5", shape=(32, 32))
    with h5py.File(src / "complex.h5", "w") as f:
        f["reconstruction_rss"] = np.ones((2, 4, 4), np.complex64)
    bad = (np.ones((2, 8, 8)) * np.array([np.nan])).astype(np.float32)
    with h5py.File(src / "nan.h5", "w") as f:
        f["reconstruction_esc"] = bad

    code, out, err = run(capsys, "h5-to-dicom", src, tmp_path / "dcm", "--workers", "2")
    assert code == 1
    assert "converted 1, skipped 0, failed 6" in out
    lines = {line.split(":", 1)[0].removeprefix("FAILED "): line for line in failed_lines(err)}
    expected = {
        "text.h5": "not an HDF5 file",
        "truncated.h5": "truncated or corrupt",
        "missing.h5": "missing reconstruction dataset",
        "rank.h5": "expected [slices, height, width]",
        "complex.h5": "complex",
        "nan.h5": "NaN or Inf",
    }
    assert {Path(k).name for k in lines} == set(expected)
    for name, problem in expected.items():
        line = lines[str(src / name)]
        assert problem in line, line
    assert "copy or upload the complete file again" in lines[str(src / "truncated.h5")]
    assert "eof" not in lines[str(src / "truncated.h5")]  # h5py's internals only with --verbose
    assert "h5-to-dicom: item 7/7" in err  # progress lines off a terminal
    [folder] = (tmp_path / "dcm").iterdir()
    assert folder.name == dicom.pseudonym("output", str((src / "good.h5").resolve()))
    [series] = dicom.read_series(folder)
    assert np.abs(series.volume - good).max() <= float(series.slope[0])


def test_bad_dicom_inputs_reported_and_skipped(tmp_path, capsys):
    src = tmp_path / "dcm"
    make_h5(tmp_path / "in" / "ok.h5")
    make_h5(tmp_path / "in" / "mixed.h5", seed=4)
    assert run(capsys, "h5-to-dicom", tmp_path / "in", src, "--keep-identity")[0] == 0
    (src / "ok" / "README.txt").write_text("not dicom")
    # Replace one image of the "mixed" series with a smaller image of the same series.
    victim = src / "mixed" / "IM00002.dcm"
    ds = pydicom.dcmread(victim)
    small = dicom.write_series(np.ones((1, 16, 32), np.float32), tmp_path / "tmp", series_uid=ds.SeriesInstanceUID)
    shutil.copy(small[0], victim)

    code, out, err = run(capsys, "dicom-to-h5", src, tmp_path / "h5", "--workers", "2")
    assert code == 1
    assert "converted 1, skipped 0, failed 2" in out
    lines = failed_lines(err)
    assert any("README.txt: not a DICOM file" in line for line in lines), err
    assert any("mixed" in line and "mixed image sizes 32x32 (3 files), 16x32 (1 file)" in line for line in lines), err
    [out_h5] = (tmp_path / "h5").iterdir()
    assert out_h5.name.startswith("ANON-") and out_h5.suffix == ".h5"


# ---------------------------------------------------------------- skip / overwrite


def test_existing_outputs_skipped_unless_overwrite(tmp_path, capsys):
    make_h5(tmp_path / "in" / "a.h5")
    make_h5(tmp_path / "in" / "b.h5")
    assert "converted 2, skipped 0" in run(capsys, "h5-to-dicom", tmp_path / "in", tmp_path / "dcm")[1]
    folder_a = tmp_path / "dcm" / dicom.pseudonym("output", str((tmp_path / "in" / "a.h5").resolve()))
    marker = folder_a / "marker"
    marker.write_text("x")
    code, out, _ = run(capsys, "h5-to-dicom", tmp_path / "in", tmp_path / "dcm")
    assert code == 0 and "converted 0, skipped 2, failed 0" in out and marker.exists()
    code, out, _ = run(capsys, "h5-to-dicom", tmp_path / "in", tmp_path / "dcm", "--overwrite", "--workers", "1")
    assert code == 0 and "converted 2, skipped 0, failed 0" in out
    assert not marker.exists() and len(list(folder_a.glob("IM*.dcm"))) == 4

    assert "converted 2" in run(capsys, "dicom-to-h5", tmp_path / "dcm", tmp_path / "h5")[1]
    assert "converted 0, skipped 2" in run(capsys, "dicom-to-h5", tmp_path / "dcm", tmp_path / "h5")[1]
    code, out, _ = run(capsys, "dicom-to-h5", tmp_path / "dcm", tmp_path / "h5", "--overwrite")
    assert code == 0 and "converted 2, skipped 0" in out
    assert not list(tmp_path.rglob(".mrirecon-*"))


# ---------------------------------------------------------------- identity


def test_deidentified_by_default(tmp_path, capsys):
    make_h5(tmp_path / "in" / "a.h5", patient_name="Smith^John", patient_birth_date="19600101")
    assert run(capsys, "h5-to-dicom", tmp_path / "in", tmp_path / "dcm")[0] == 0
    for p in (tmp_path / "dcm" / "a").glob("*.dcm"):
        ds = pydicom.dcmread(p)
        text = str(ds)
        for secret in ("PID-SECRET-123", "Smith", "Doe", "19600101", "19700102", "1970-01-02"):
            assert secret not in text, secret
        assert ds.PatientBirthDate == "" and ds.PatientID == dicom.pseudonym("a.h5")
        assert ds.PatientIdentityRemoved == "YES"


def test_keep_identity(tmp_path, capsys):
    make_h5(tmp_path / "in" / "a.h5", patient_birth_date="19600101")
    assert run(capsys, "h5-to-dicom", tmp_path / "in", tmp_path / "dcm", "--keep-identity")[0] == 0
    ds = pydicom.dcmread(tmp_path / "dcm" / "a" / "IM00001.dcm")
    assert ds.PatientID == "PID-SECRET-123"
    assert str(ds.PatientName) == "Doe^Jane"  # from the ISMRMRD header
    assert ds.PatientBirthDate == "19600101"  # HDF5 attributes win over the header
    assert run(capsys, "dicom-to-h5", tmp_path / "dcm", tmp_path / "h5", "--keep-identity")[0] == 0
    with h5py.File(tmp_path / "h5" / "a.h5", "r") as f:
        assert f.attrs["patient_id"] == "PID-SECRET-123" and f.attrs["patient_name"] == "Doe^Jane"


# ---------------------------------------------------------------- kspace-to-dicom and CLI surface


def test_kspace_to_dicom_with_reconstruct(tmp_path, capsys, monkeypatch):
    calls = []

    def reconstruct_volume_file(path, **options):
        calls.append((Path(path).name, options))
        if Path(path).name == "broken.h5":
            raise RuntimeError("k-space is corrupt")
        return np.full((3, 16, 16), 2.0, np.float32), HEADER, {"patient_id": "P1"}

    fake = types.ModuleType("mrirecon.reconstruct")
    fake.reconstruct_volume_file = reconstruct_volume_file
    monkeypatch.setitem(sys.modules, "mrirecon.reconstruct", fake)
    for name in ("k1.h5", "broken.h5"):
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / name).write_bytes(b"")
    code, out, err = run(
        capsys, "kspace-to-dicom", tmp_path / "in", tmp_path / "out", "--recon-option", "tta_steps=2",
        "--recon-option", "backbone=none",
    )  # fmt: skip
    assert code == 1 and "converted 1, skipped 0, failed 1" in out
    assert failed_lines(err) == [f"FAILED {tmp_path / 'in' / 'broken.h5'}: RuntimeError: k-space is corrupt"]
    assert sorted(calls) == [
        ("broken.h5", {"tta_steps": 2, "backbone": "none", "keep_identity": True}),
        ("k1.h5", {"tta_steps": 2, "backbone": "none", "keep_identity": True}),
    ]
    [series] = dicom.read_series(tmp_path / "out")
    assert np.allclose(series.volume, 2.0, atol=1e-4)
    assert series.pixel_spacing == pytest.approx((4.0, 4.375))


def test_help_lists_commands():
    proc = subprocess.run(
        [sys.executable, "-m", "mrirecon.convert", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    for command in ("h5-to-dicom", "dicom-to-h5", "kspace-to-dicom"):
        assert command in proc.stdout


def test_missing_input_is_usage_error(tmp_path, capsys):
    code, _, err = run(capsys, "h5-to-dicom", tmp_path / "nope", tmp_path / "out")
    assert code == 2 and "does not exist" in err


def test_output_inside_input_is_refused(tmp_path, capsys):
    make_h5(tmp_path / "data" / "a.h5")
    for command, out in (("h5-to-dicom", "data/dicom"), ("dicom-to-h5", "data"), ("kspace-to-dicom", "data")):
        code, stdout, err = run(capsys, command, tmp_path / "data", tmp_path / out)
        assert code == 2 and "inside it" in err and "converted" not in stdout, err
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["a.h5"]
