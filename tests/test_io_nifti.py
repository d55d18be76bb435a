"""NIfTI output through ``convert h5-to-dicom --format nifti``: shape, voxel sizes and orientation in nibabel."""

from __future__ import annotations

from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from mrirecon.convert import main


def _recon_file(path, attrs):
    volume = np.random.default_rng(0).random((3, 20, 16)).astype(np.float32)  # [S, rows, columns]
    with h5py.File(path, "w") as hf:
        hf["reconstruction"] = volume
        for key, value in attrs.items():
            hf.attrs[key] = value
    return volume


def test_sagittal_geometry_gives_a_scanner_affine(tmp_path, capsys):
    """A sagittal stack (LPS): columns anterior->posterior, rows head->feet, slices along the normal
    row x column = (-1, 0, 0), i.e. towards the patient's right, as dicom-to-h5 sorts them."""
    attrs = {
        "pixel_spacing": [0.8, 0.5],  # between rows, between columns
        "slice_thickness": 3.0,
        "slice_spacing": 3.5,
        "image_orientation_patient": [0, 1, 0, 0, 0, -1],
        "image_position_patient": [[-10.0, -20.0, 30.0], [-13.5, -20.0, 30.0], [-17.0, -20.0, 30.0]],
    }
    volume = _recon_file(tmp_path / "in.h5", attrs)
    assert main(["h5-to-dicom", str(tmp_path / "in.h5"), str(tmp_path / "out"), "--format", "nifti"]) == 0
    assert "orientation unknown" not in capsys.readouterr().err
    [path] = (tmp_path / "out").iterdir()  # named from a pseudonym of the input, never from its name
    assert path.name.startswith("ANON-") and path.name.endswith(".nii.gz")
    img = nib.load(path)
    assert img.shape == (16, 20, 3)  # [columns, rows, slices]
    assert np.allclose(img.header.get_zooms(), (0.5, 0.8, 3.5))
    assert nib.aff2axcodes(img.affine) == ("P", "I", "R")
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 1
    assert np.allclose(img.affine[:3, 3], [10.0, 20.0, 30.0])  # first voxel: LPS (-10,-20,30) -> RAS
    assert np.allclose(np.asarray(img.dataobj), volume.transpose(2, 1, 0))
    # the second slice's first voxel sits where its ImagePositionPatient says
    assert np.allclose((img.affine @ [0, 0, 1, 1])[:3], [13.5, 20.0, 30.0])


def test_missing_orientation_is_said_plainly(tmp_path, capsys):
    _recon_file(tmp_path / "in.h5", {"pixel_spacing": [1.0, 2.0], "slice_thickness": 4.0})
    argv = ["h5-to-dicom", str(tmp_path / "in.h5"), str(tmp_path / "out"), "--format", "nifti", "--keep-identity"]
    assert main(argv) == 0
    assert "orientation unknown" in capsys.readouterr().err
    img = nib.load(tmp_path / "out" / "in.nii.gz")  # --keep-identity keeps the input name
    assert img.shape == (16, 20, 3) and np.allclose(img.header.get_zooms(), (2.0, 1.0, 4.0))
    assert int(img.header["sform_code"]) == 2 and b"orientation unknown" in img.header["descrip"].tobytes()


def test_writer_is_atomic_under_a_short_temporary_name(tmp_path, monkeypatch):
    """The temporary name comes from the batch module (short, cleaned after a killed run); a failed save
    leaves nothing behind."""
    from mrirecon.io import batch
    from mrirecon.io.dicom import Geometry
    from mrirecon.io.nifti import write_nifti

    seen = []

    def failing_save(img, name):
        seen.append(Path(name).name)
        Path(name).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", failing_save)
    long_name = "x" * 240 + ".nii.gz"
    with pytest.raises(OSError, match="disk full"):
        write_nifti(tmp_path / long_name, np.ones((1, 4, 4), np.float32), Geometry(), False)
    assert seen[0].startswith(batch.TMP_PREFIX) and len(seen[0]) < 40
    assert list(tmp_path.iterdir()) == []


def test_kspace_to_nifti_and_h5_use_the_reconstruction_and_its_geometry(tmp_path, capsys):
    """``kspace-to-dicom --format nifti|h5``: the reconstruction function's volume and attributes are written."""
    from mrirecon.io.conversions import kspace_to_image_file

    volume = np.random.default_rng(1).random((2, 12, 10)).astype(np.float32)
    attrs = {
        "pixel_spacing": np.array([1.5, 1.5]),
        "slice_thickness": 5.0,
        "image_orientation_patient": np.array([1.0, 0, 0, 0, 1, 0]),
        "image_position_patient": np.zeros((2, 3)),
    }
    (tmp_path / "scan.h5").write_bytes(b"")  # never read: the reconstruction below stands in for the model

    def fake(path, **options):
        return volume, None, attrs

    nii = kspace_to_image_file(tmp_path / "scan.h5", tmp_path / "scan.nii.gz", reconstruct=fake, fmt="nifti")
    img = nib.load(nii)
    assert img.shape == (10, 12, 2) and nib.aff2axcodes(img.affine) == ("L", "P", "S")
    assert np.allclose(np.asarray(img.dataobj), volume.transpose(2, 1, 0))
    h5 = kspace_to_image_file(tmp_path / "scan.h5", tmp_path / "out.h5", reconstruct=fake, fmt="h5")
    with h5py.File(h5, "r") as hf:
        assert np.array_equal(hf["reconstruction"][()], volume)
        assert np.allclose(hf.attrs["image_orientation_patient"], attrs["image_orientation_patient"])
