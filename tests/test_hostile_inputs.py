"""Hostile HDF5 inputs: nothing outside the file is read, no allocation bombs, degenerate data refused.

Every file is built here with h5py and goes through the public readers (the one input gate).
"""

from pathlib import Path

import h5py
import numpy as np
import pytest

from mrirecon.data import InvalidInputError, Limits, read_target, read_volume, validate_file
from mrirecon.data.ismrmrd import make_header

S, C, H, W = 2, 2, 32, 24
SECRET = b"root:$6$outside-the-input$secret-bytes-that-must-never-be-read\n" * 8


def kspace(shape=(S, C, H, W)) -> np.ndarray:
    rng = np.random.default_rng(1)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def write(path: Path, recon=(16, 16), **datasets) -> Path:
    with h5py.File(path, "w") as hf:
        for key, value in datasets.items():
            hf[key] = value
        hf["ismrmrd_header"] = make_header((H, W), recon, 1.0, C, S)
    return path


@pytest.fixture
def secret(tmp_path) -> Path:
    path = tmp_path / "outside" / "shadow"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    return path


def refused(path: Path, words: str, reader=read_volume) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as exc:
        reader(path)
    assert exc.value.path == str(path) and words in exc.value.problem, str(exc.value)
    assert "\n" not in str(exc.value)
    return exc.value


def test_external_raw_storage_is_refused(tmp_path, secret):
    path = tmp_path / "ext.h5"
    with h5py.File(path, "w") as hf:
        hf.create_dataset("kspace", shape=(1, 1, 16, 16), dtype=np.complex64, external=[(str(secret), 0, 2048)])
    err = refused(path, "external file")
    assert str(secret) not in str(err)  # nor is the outside path echoed back


def test_external_raw_storage_in_target_is_refused(tmp_path, secret):
    path = tmp_path / "target.h5"
    with h5py.File(path, "w") as hf:
        hf.create_dataset("reconstruction_rss", shape=(1, 16, 8), dtype=np.float32, external=[(str(secret), 0, 512)])
    refused(path, "external file", read_target)


def test_external_link_is_refused_whether_or_not_the_target_exists(tmp_path):
    other = tmp_path / "outside" / "other.h5"
    other.parent.mkdir()
    with h5py.File(other, "w") as hf:
        hf["kspace"] = kspace()
    messages = []
    for target in (other, tmp_path / "outside" / "missing.h5"):
        path = tmp_path / "link.h5"
        write(path)
        with h5py.File(path, "a") as hf:
            hf["kspace"] = h5py.ExternalLink(str(target), "/kspace")
        messages.append(refused(path, "link to another file").problem)
    assert messages[0] == messages[1]  # no file-existence oracle


def test_external_link_anywhere_in_the_file_is_refused(tmp_path):
    path = write(tmp_path / "deep.h5", kspace=kspace())
    with h5py.File(path, "a") as hf:
        hf.create_group("a/b")["c"] = h5py.ExternalLink("/etc/passwd.h5", "/x")
    refused(path, "'/a/b/c' is a link to another file")


def test_virtual_dataset_is_refused(tmp_path):
    other = tmp_path / "outside.h5"
    with h5py.File(other, "w") as hf:
        hf["data"] = kspace()
    layout = h5py.VirtualLayout(shape=(S, C, H, W), dtype=np.complex64)
    layout[:] = h5py.VirtualSource(str(other), "data", shape=(S, C, H, W))
    path = write(tmp_path / "vds.h5")
    with h5py.File(path, "a") as hf:
        hf.create_virtual_dataset("kspace", layout)
    refused(path, "virtual dataset")


def test_dangling_soft_link_is_refused(tmp_path):
    path = write(tmp_path / "soft.h5", kspace=kspace())
    with h5py.File(path, "a") as hf:
        hf["reconstruction_rss"] = h5py.SoftLink("/nowhere")
    refused(path, "soft link")


def _declared_only(path: Path, shape, dtype=np.complex64, key="kspace", **more) -> Path:
    """A tiny file declaring a huge compressed dataset that was never written."""
    with h5py.File(path, "w") as hf:
        chunks = (1,) * (len(shape) - 2) + tuple(min(n, 64) for n in shape[-2:])
        hf.create_dataset(key, shape=shape, dtype=dtype, chunks=chunks, compression="gzip")
        for k, v in more.items():
            hf[k] = v
    return path


def test_volume_bomb_refused_before_reading(tmp_path):
    path = _declared_only(tmp_path / "bomb.h5", (1000, 32, 640, 368))
    assert path.stat().st_size < 100_000
    refused(path, "per volume")


def test_slice_bomb_refused_before_reading(tmp_path):
    path = _declared_only(tmp_path / "slice.h5", (1, 100000, 100000))
    refused(path, "above the limit")
    path = _declared_only(tmp_path / "slice2.h5", (2, 1, 8192, 8192))  # 1 GiB volume, 512 MiB slices
    refused(path, "per slice")


def test_caps_are_configurable(tmp_path, monkeypatch):
    path = write(tmp_path / "ok.h5", kspace=kspace())
    validate_file(path)
    monkeypatch.setenv("MRIRECON_MAX_VOLUME_BYTES", "8kb")
    refused(path, "MRIRECON_MAX_VOLUME_BYTES", validate_file)
    with pytest.raises(InvalidInputError, match="per slice"):
        validate_file(path, limits=Limits(max_slice_bytes=1024))


def test_mask_bomb_refused_before_reading(tmp_path):
    path = _declared_only(tmp_path / "mask.h5", (4_000_000_000,), dtype=np.uint8, key="mask", kspace=kspace())
    refused(path, "mask shape")


@pytest.mark.parametrize("side", [1, 8])
def test_tiny_matrix_is_refused(tmp_path, side):
    path = tmp_path / f"tiny{side}.h5"
    with h5py.File(path, "w") as hf:
        hf["kspace"] = kspace((3, 1, side, side))
    refused(path, "too small to reconstruct")


def test_all_zero_kspace_is_refused(tmp_path):
    path = write(tmp_path / "zeros.h5", kspace=np.zeros((S, C, H, W), np.complex64))
    refused(path, "all zeros")


@pytest.mark.parametrize("recon", [(-5, 16), (100000, 16), (16, 0)])
def test_absurd_recon_matrix_is_refused(tmp_path, recon):
    path = write(tmp_path / "matrix.h5", recon=recon, kspace=kspace())
    refused(path, "matrix sizes are not usable")


def test_nan_is_found_slice_by_slice(tmp_path):
    k = kspace()
    k[1, 0, 0, 0] = np.inf
    refused(write(tmp_path / "inf.h5", kspace=k), "NaN or Inf values (slice 1)")
