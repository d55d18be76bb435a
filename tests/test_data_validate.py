"""Every kind of bad input gets one InvalidInputError naming the file and the problem."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from mrirecon.data import FastMRIDataModule, InvalidInputError, ValidatedSliceDataset, read_volume, validate_file
from mrirecon.data.ismrmrd import make_header


def write(path: Path, kspace=None, target=None, mask=None, header=True, attrs=None) -> Path:
    S, H, W = 2, 32, 24
    if kspace is None:
        rng = np.random.default_rng(0)
        kspace = (rng.standard_normal((S, 4, H, W)) + 1j * rng.standard_normal((S, 4, H, W))).astype(np.complex64)
    with h5py.File(path, "w") as hf:
        if kspace is not False:
            hf["kspace"] = kspace
        if target is not None:
            hf["reconstruction_rss"] = target
        if mask is not None:
            hf["mask"] = mask
        if header:
            hf["ismrmrd_header"] = make_header((H, W), (16, 16), 1.0, 4, S)
        for k, v in (attrs or {}).items():
            hf.attrs[k] = v
    return path


def good_target():
    return np.ones((2, 16, 16), np.float32)


def test_good_file_passes(tmp_path):
    info = validate_file(write(tmp_path / "ok.h5", target=good_target()))
    assert info.challenge == "multicoil" and not info.is_test_format
    assert info.kspace_shape == (2, 4, 32, 24) and info.crop_size == (16, 16)
    assert info.recon_key == "reconstruction_rss" and (info.padding_left, info.padding_right) == (0, 24)


def _cplx(shape, dtype=np.complex64):
    return np.ones(shape, dtype=dtype)


BAD = {
    "empty": (lambda p: p.write_bytes(b""), "empty file"),
    "not_hdf5": (lambda p: p.write_text("this is not HDF5\n" * 20), "not an HDF5 file"),
    "missing_kspace": (lambda p: write(p, kspace=False, target=good_target()), "missing dataset 'kspace'"),
    "real_kspace": (lambda p: write(p, kspace=np.ones((2, 4, 32, 24), np.float32)), "real-valued"),
    "int_kspace": (lambda p: write(p, kspace=np.ones((2, 4, 32, 24), np.int16)), "dtype int16"),
    "rank2": (lambda p: write(p, kspace=_cplx((32, 24))), "rank 2"),
    "rank5": (lambda p: write(p, kspace=_cplx((1, 2, 4, 32, 24))), "rank 5"),
    "nan": (lambda p: write(p, kspace=_cplx((2, 4, 32, 24)) * np.array(np.nan, np.complex64)), "NaN or Inf"),
    "inf": (lambda p: write(p, target=np.full((2, 16, 16), np.inf, np.float32)), "NaN or Inf"),
    "mask_len": (lambda p: write(p, mask=np.ones(23, bool)), "does not match the k-space width 24"),
    "mask_values": (lambda p: write(p, mask=np.full(24, 2, np.int8)), "0/1"),
    "target_slices": (lambda p: write(p, target=np.ones((3, 16, 16), np.float32)), "target shape mismatch"),
    "target_small": (lambda p: write(p, target=np.ones((2, 8, 16), np.float32)), "target shape mismatch"),
    "target_rank": (lambda p: write(p, target=np.ones((2, 16), np.float32)), "target shape mismatch"),
    "bad_header": (lambda p: write(p, header=False, attrs={}) and _add(p, "ismrmrd_header", "<oops"), "not valid XML"),
}


def _add(path, key, value):
    with h5py.File(path, "a") as hf:
        hf[key] = value
    return path


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_file_one_clear_error(tmp_path, case):
    make, words = BAD[case]
    path = tmp_path / f"{case}.h5"
    make(path)
    with pytest.raises(InvalidInputError) as exc:
        validate_file(path)
    err = exc.value
    assert isinstance(err, ValueError)
    assert err.path == str(path)
    assert words in err.problem
    assert str(err) == f"{path}: {err.problem}"
    with pytest.raises(InvalidInputError, match=case):  # the file name is in the message
        read_volume(path)


def test_truncated_hdf5(tmp_path):
    path = write(tmp_path / "trunc.h5", target=good_target())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match="truncated") as exc:
        validate_file(path)
    assert exc.value.path == str(path)


def test_missing_file(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        validate_file(tmp_path / "nope.h5")


def test_challenge_mismatch(tmp_path):
    path = write(tmp_path / "mc.h5")
    with pytest.raises(InvalidInputError, match="singlecoil expects"):
        validate_file(path, challenge="singlecoil")


def test_nan_found_at_read_time_when_not_prechecked(tmp_path):
    k = _cplx((2, 4, 32, 24))
    k[1, 0, 3, 3] = np.nan
    folder = tmp_path / "d"
    folder.mkdir()
    path = write(folder / "late_nan.h5", kspace=k, target=good_target())
    ds = ValidatedSliceDataset(folder, check_values=False)
    ds[0]  # slice 0 is clean
    with pytest.raises(InvalidInputError, match="late_nan.h5.*slice 1"):
        ds[1]
    with pytest.raises(InvalidInputError, match="NaN"):
        ValidatedSliceDataset(folder, check_values=True)
    assert path.exists()


def test_datamodule_setup_names_bad_file(synth_root, tmp_path):
    import shutil

    root = tmp_path / "copy"
    for split in ("train", "val"):
        shutil.copytree(synth_root / split, root / split)
    (root / "val" / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 10)
    dm = FastMRIDataModule(root, synth=False)
    with pytest.raises(InvalidInputError) as exc:
        dm.setup("fit")
    assert exc.value.path.endswith("broken.h5")
