"""NIfTI output through ``convert h5-to-dicom --format nifti``: shape, voxel sizes and orientation in nibabel."""

from __future__ import annotations

import h5py
import nibabel as nib
import numpy as np

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
    img = nib.load(tmp_path / "out" / "in.nii.gz")
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
    assert main(["h5-to-dicom", str(tmp_path / "in.h5"), str(tmp_path / "out"), "--format", "nifti"]) == 0
    assert "orientation unknown" in capsys.readouterr().err
    img = nib.load(tmp_path / "out" / "in.nii.gz")
    assert img.shape == (16, 20, 3) and np.allclose(img.header.get_zooms(), (2.0, 1.0, 4.0))
    assert int(img.header["sform_code"]) == 2 and b"orientation unknown" in img.header["descrip"].tobytes()
