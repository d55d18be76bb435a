"""mrirecon.io.dicom: MR series writing/reading, geometry, and what DICOM tools say about the output."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from mrirecon.io import InputError, dicom

HEADER = """<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
  <subjectInformation><patientName>Doe^Jane</patientName><patientBirthdate>1970-01-02</patientBirthdate>
    <patientGender>F</patientGender></subjectInformation>
  <measurementInformation><patientPosition>FFS</patientPosition></measurementInformation>
  <acquisitionSystemInformation><systemVendor>SIEMENS</systemVendor><systemModel>Skyra</systemModel>
    <systemFieldStrength_T>2.89362</systemFieldStrength_T></acquisitionSystemInformation>
  <encoding>
    <encodedSpace><matrixSize><x>640</x><y>368</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>280</x><y>161</y><z>4.5</z></fieldOfView_mm></encodedSpace>
    <reconSpace><matrixSize><x>320</x><y>320</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>140</x><y>160</y><z>3</z></fieldOfView_mm></reconSpace>
    <echoTrainLength>4</echoTrainLength>
  </encoding>
  <sequenceParameters><TR>2750</TR><TE>27</TE><flipAngle_deg>90</flipAngle_deg>
    <sequence_type>TurboSpinEcho</sequence_type></sequenceParameters>
</ismrmrdHeader>
"""


def volume(shape=(4, 24, 20), seed=0, offset=0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(shape) * 2.5e-4 + offset).astype(np.float32)


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed (Debian packages dicom3tools / dcmtk; CI installs them)")
    return path


def dciodvfy_errors(path: Path) -> tuple[list[str], str]:
    proc = subprocess.run([need("dciodvfy"), str(path)], capture_output=True, text=True, timeout=60)
    text = proc.stdout + proc.stderr
    return [line for line in text.splitlines() if line.startswith("Error")], text


# ---------------------------------------------------------------- ISMRMRD header


def test_geometry_from_ismrmrd_recon_space():
    g = dicom.geometry_from_ismrmrd(HEADER)
    assert g.pixel_spacing == pytest.approx((160 / 320, 140 / 320))  # (rows: y, columns: x)
    assert g.slice_thickness == pytest.approx(3.0)
    assert g.spacing_between_slices == pytest.approx(3.0)


def test_geometry_from_ismrmrd_fallbacks():
    assert dicom.geometry_from_ismrmrd(None) == dicom.DEFAULT_GEOMETRY
    assert dicom.geometry_from_ismrmrd("<not xml") == dicom.DEFAULT_GEOMETRY
    d = dicom.DEFAULT_GEOMETRY
    assert (d.pixel_spacing, d.slice_thickness) == ((1.0, 1.0), 5.0)
    only_encoded = HEADER.split("<reconSpace>")[0] + HEADER.split("</reconSpace>")[1]
    g = dicom.geometry_from_ismrmrd(only_encoded)
    assert g.pixel_spacing == pytest.approx((161 / 368, 280 / 640))
    assert g.slice_thickness == pytest.approx(4.5)


def test_acquisition_and_identity_from_ismrmrd():
    acq = dicom.acquisition_from_ismrmrd(HEADER)
    assert acq.manufacturer == "SIEMENS" and acq.model == "Skyra"
    assert (acq.repetition_time_ms, acq.echo_time_ms, acq.echo_train_length) == (2750, 27, 4)
    assert acq.scanning_sequence == ["SE"] and acq.patient_position == "FFS"
    assert dicom.Acquisition().scanning_sequence == ["RM"]
    ident = dicom.identity_from_ismrmrd(HEADER)
    assert ident == {"PatientName": "Doe^Jane", "PatientBirthDate": "19700102", "PatientSex": "F"}


# ---------------------------------------------------------------- writing and reading


def test_quantise_bounds_and_negative_values():
    v = volume(offset=-1e-5)
    stored, slope, intercept = dicom.quantise(v)
    assert stored.dtype == np.uint16 and stored.max() == 65535 and stored.min() == 0
    assert intercept == pytest.approx(float(v.min()))
    err = np.abs(stored * slope + intercept - v).max()
    assert err <= slope / 2 + 1e-6 * np.abs(v).max()
    with pytest.raises(ValueError, match="NaN"):
        dicom.quantise(np.array([[[np.nan]]]))


def test_round_trip_volume_and_geometry(tmp_path):
    v = volume()
    geom = dicom.Geometry(
        pixel_spacing=(0.5, 0.4), slice_thickness=3.0, slice_spacing=3.5,
        orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0), origin=(10.0, -20.0, 30.0),
    )  # fmt: skip
    paths = dicom.write_series(v, tmp_path / "s", geometry=geom)
    assert [p.name for p in paths] == ["IM00001.dcm", "IM00002.dcm", "IM00003.dcm", "IM00004.dcm"]
    [series] = dicom.read_series(tmp_path / "s")
    slope = float(series.slope[0])
    assert np.abs(series.volume - v).max() <= slope / 2 + 1e-9
    assert series.volume.shape == v.shape
    assert series.pixel_spacing == pytest.approx(geom.pixel_spacing)
    assert series.slice_thickness == pytest.approx(3.0)
    assert series.slice_spacing == pytest.approx(3.5)
    assert series.orientation == pytest.approx(geom.orientation)
    np.testing.assert_allclose(series.positions, geom.positions(v.shape), atol=1e-6)
    assert series.geometry.origin == pytest.approx(geom.origin)


def test_read_sorts_by_geometry_not_file_name(tmp_path):
    v = volume(shape=(5, 16, 16))
    geom = dicom.Geometry(orientation=(1.0, 0.0, 0.0, 0.0, 0.0, -1.0))  # coronal: normal along -y
    paths = dicom.write_series(v, tmp_path / "s", geometry=geom)
    # Rename so that file names and instance numbers disagree with the slice order.
    for i, p in enumerate(reversed(paths)):
        p.rename(p.with_name(f"x{i}.dcm"))
    for p in (tmp_path / "s").glob("*.dcm"):
        ds = pydicom.dcmread(p)
        ds.InstanceNumber = 100 - int(ds.InstanceNumber)
        ds.save_as(p)
    [series] = dicom.read_series(tmp_path / "s")
    normal = geom.normal
    dist = series.positions @ normal
    assert np.all(np.diff(dist) > 0)
    assert np.abs(series.volume - v).max() <= float(series.slope[0])


def test_written_attributes(tmp_path):
    v = volume()
    acq = dicom.acquisition_from_ismrmrd(HEADER)
    paths = dicom.write_series(v, tmp_path / "s", geometry=dicom.geometry_from_ismrmrd(HEADER), acquisition=acq)
    datasets = [pydicom.dcmread(p) for p in paths]
    ds = datasets[0]
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.SOPClassUID == pydicom.uid.MRImageStorage
    assert (ds.Modality, ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation) == ("MR", 16, 16, 0)
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert ds.ScanningSequence == "SE" and ds.EchoTrainLength == 4 and float(ds.RepetitionTime) == 2750
    for kw in ("SequenceVariant", "ScanOptions", "MRAcquisitionType", "EchoTime", "ImageType",
               "PositionReferenceIndicator", "WindowCenter", "WindowWidth", "PatientBirthDate"):  # fmt: skip
        assert kw in ds, kw
    assert [float(x) for x in ds.PixelSpacing] == pytest.approx([0.5, 0.4375])
    assert float(ds.SliceThickness) == 3.0
    # one scale per series, recoverable from the standard and the private attributes
    rw = {(float(d.RealWorldValueMappingSequence[0].RealWorldValueSlope)) for d in datasets}
    assert len(rw) == 1
    block = ds.private_block(dicom.PRIVATE_GROUP, dicom.PRIVATE_CREATOR)
    assert block[0x10].value == pytest.approx(rw.pop())
    assert len({(d.WindowCenter, d.WindowWidth) for d in datasets}) == 1
    # consistent UIDs; instance numbers follow the slice order
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert len({d[key].value for d in datasets}) == 1
    assert len({d.SOPInstanceUID for d in datasets}) == len(datasets)
    assert [d.InstanceNumber for d in datasets] == [1, 2, 3, 4]
    z = [float(d.ImagePositionPatient[2]) for d in datasets]
    assert np.all(np.diff(z) > 0)


def test_pseudonymisation_default_and_keep(tmp_path):
    ident = dicom.identity_from_ismrmrd(HEADER) | {"PatientID": "SECRET-ID", "StudyDate": "20200101"}
    [p] = dicom.write_series(volume((1, 8, 8)), tmp_path / "a", identity=ident, pseudonym_key="f.h5")
    ds = pydicom.dcmread(p)
    assert "Doe" not in str(ds.PatientName) and ds.PatientBirthDate == "" and ds.PatientSex == ""
    assert "SECRET-ID" not in str(ds) and ds.StudyDate == ""
    assert ds.PatientID == dicom.pseudonym("f.h5") and ds.PatientIdentityRemoved == "YES"
    assert dicom.pseudonym("f.h5") == dicom.pseudonym("f.h5") != dicom.pseudonym("g.h5")
    [p] = dicom.write_series(volume((1, 8, 8)), tmp_path / "b", identity=ident, pseudonymise=False)
    ds = pydicom.dcmread(p)
    assert str(ds.PatientName) == "Doe^Jane" and ds.PatientBirthDate == "19700102"
    assert ds.PatientID == "SECRET-ID" and ds.StudyDate == "20200101"
    assert "PatientIdentityRemoved" not in ds


def test_enhanced_round_trip_and_highdicom(tmp_path):
    hd = pytest.importorskip("highdicom")
    v = volume()
    geom = dicom.Geometry(pixel_spacing=(0.5, 0.5), slice_thickness=2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no highdicom complaints (window, names)
        out = dicom.write_enhanced(v, tmp_path / "e" / "enh.dcm", geometry=geom)
    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4.4"  # Legacy Converted Enhanced MR
    assert int(ds.NumberOfFrames) == v.shape[0]
    img = hd.imread(out)
    assert img.pixel_array.shape == v.shape
    [series] = dicom.read_series(tmp_path / "e")
    assert np.abs(series.volume - v).max() <= float(series.slope[0]) / 2 + 1e-9
    np.testing.assert_allclose(series.positions, geom.positions(v.shape), atol=1e-6)
    errors, text = dciodvfy_errors(out)
    assert not errors, text


def test_highdicom_reads_single_frame(tmp_path):
    hd = pytest.importorskip("highdicom")
    v = volume()
    paths = dicom.write_series(v, tmp_path / "s")
    img = hd.imread(paths[0])
    assert img.pixel_array.shape == v.shape[1:]
    assert img.SOPClassUID == pydicom.uid.MRImageStorage


# ---------------------------------------------------------------- inconsistent series


def _series(tmp_path, name="s", shape=(3, 16, 16), **kw) -> list[Path]:
    return dicom.write_series(volume(shape), tmp_path / name, series_uid="1.2.826.0.1.3680043.8.498.1", **kw)


def test_mixed_sizes_rejected(tmp_path):
    files = _series(tmp_path, "a") + _series(tmp_path, "b", shape=(1, 8, 16))
    with pytest.raises(InputError, match="mixed image sizes 16x16 .3 files., 8x16 .1 file."):
        dicom.load_series(files)


def test_mixed_orientation_rejected(tmp_path):
    files = _series(tmp_path, "a")
    ds = pydicom.dcmread(files[1])
    ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
    ds.save_as(files[1])
    with pytest.raises(InputError, match="mixed image orientations"):
        dicom.load_series(files)


def test_duplicate_and_missing_slices_rejected(tmp_path):
    files = _series(tmp_path, "a", shape=(4, 8, 8))
    with pytest.raises(InputError, match="uneven slice spacing"):
        dicom.load_series([files[0], files[1], files[3]])
    with pytest.raises(InputError, match="share one slice position"):
        dicom.load_series(files + _series(tmp_path, "b", shape=(4, 8, 8)))


def test_scan_folder_reports_non_dicom(tmp_path):
    _series(tmp_path, "s")
    (tmp_path / "s" / "notes.txt").write_text("hello")
    (tmp_path / "s" / ".hidden").write_text("ignored")
    groups, problems = dicom.scan_folder(tmp_path)
    assert [len(v) for v in groups.values()] == [3]
    assert [(p.name, "not a DICOM file" in why) for p, why in problems] == [("notes.txt", True)]
    with pytest.raises(InputError, match="notes.txt"):
        dicom.read_series(tmp_path)


# ---------------------------------------------------------------- real DICOM tools


def test_dciodvfy_accepts_mr_image(tmp_path):
    paths = dicom.write_series(
        volume(),
        tmp_path / "s",
        geometry=dicom.geometry_from_ismrmrd(HEADER),
        acquisition=dicom.acquisition_from_ismrmrd(HEADER),
    )
    for p in (paths[0], paths[-1]):
        errors, text = dciodvfy_errors(p)
        assert "MRImage" in text, text  # it did check against the MR Image IOD
        assert not errors, text


def test_dcmtk_dump_and_render(tmp_path):
    paths = dicom.write_series(volume(shape=(2, 24, 20)), tmp_path / "s")
    dump = subprocess.run([need("dcmdump"), str(paths[0])], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0, dump.stderr
    assert "=MRImageStorage" in dump.stdout and "Little Endian Explicit" in dump.stdout
    assert "E:" not in dump.stderr and "W:" not in dump.stderr, dump.stderr
    out = tmp_path / "img.pgm"
    render = subprocess.run([need("dcm2pnm"), str(paths[0]), str(out)], capture_output=True, text=True, timeout=60)
    assert render.returncode == 0, render.stderr
    header = out.read_bytes().split(b"\n", 3)
    assert header[0] == b"P5" and header[1].split() == [b"20", b"24"]


def test_series_problems_are_input_errors_naming_the_series_folder(tmp_path):
    files = _series(tmp_path, "a", shape=(4, 8, 8))
    with pytest.raises(InputError) as caught:
        dicom.load_series([files[0], files[1], files[3]])
    assert caught.value.path == str(tmp_path / "a") and str(caught.value).startswith(f"{tmp_path / 'a'}: series ")


def test_rescale_only_and_position_free_series_are_read(tmp_path):
    """highdicom applies the Modality rescale when there is no Real World Value Mapping; a series without
    plane positions is stacked in InstanceNumber order and has no geometry."""
    v = volume()
    paths = dicom.write_series(v, tmp_path / "r")
    for p in paths:
        ds = pydicom.dcmread(p)
        del ds.RealWorldValueMappingSequence
        for tag in [elem.tag for elem in ds if elem.tag.group == dicom.PRIVATE_GROUP]:
            del ds[tag]
        ds.RescaleSlope, ds.RescaleIntercept = "2", "-1"
        ds.save_as(p)
    [series] = dicom.read_series(tmp_path / "r")
    stored = np.stack([pydicom.dcmread(p).pixel_array for p in paths]).astype(np.float64)
    np.testing.assert_allclose(series.volume, stored * 2 - 1)
    assert list(series.slope) == [2.0] * len(paths) and list(series.intercept) == [-1.0] * len(paths)

    paths = dicom.write_series(v, tmp_path / "n")
    for p in paths:
        ds = pydicom.dcmread(p)
        del ds.ImagePositionPatient, ds.ImageOrientationPatient
        ds.InstanceNumber = len(paths) + 1 - int(ds.InstanceNumber)  # reversed: the order comes from here
        ds.save_as(p)
    [series] = dicom.read_series(tmp_path / "n")
    assert series.geometry is None and series.positions is None
    assert np.abs(series.volume - v[::-1]).max() <= float(series.slope[0])
