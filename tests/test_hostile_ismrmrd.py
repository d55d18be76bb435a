"""Hostile ISMRMRD raw files: the ISMRMRD reader goes through the input gate of fastMRI files (links and
external storage refused, declared sizes against the same :class:`Limits`) before ``ismrmrd.Dataset``
reads anything; each case is one clear line, and a batch goes on past it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import h5py
import pytest

from mrirecon.data import InvalidInputError, Limits
from mrirecon.io import ismrmrd_raw, read_volume, validate_input

GENERATE = "ismrmrd_generate_cartesian_shepp_logan"
pytestmark = pytest.mark.skipif(shutil.which(GENERATE) is None, reason="Debian ismrmrd-tools not installed")
SECRET = b"root:$6$outside-the-input$secret-bytes-that-must-never-be-read\n" * 8


def generate(path: Path, *args: object) -> Path:
    """ISMRMRD's Shepp-Logan generator: 32x32 (64 readout samples, 2x oversampled), 2 coils."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([GENERATE, "-o", str(path), "-m", "32", "-c", "2", *map(str, args)], check=True, capture_output=True)
    return path


@pytest.fixture
def no_dataset_reads(monkeypatch):
    """Fails the test if ``ismrmrd.Dataset`` is opened: the gate must refuse the file first."""

    def opened(*args, **kwargs):
        raise AssertionError("ismrmrd.Dataset opened a file the gate should have refused")

    monkeypatch.setattr(ismrmrd_raw.ismrmrd, "Dataset", opened)


def refused(path: Path, words: str, reader=read_volume) -> str:
    with pytest.raises(InvalidInputError) as info:
        reader(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and words in message and "\n" not in message, message
    return message


def test_an_external_link_to_the_raw_group_is_refused(tmp_path, no_dataset_reads):
    """The whole ``dataset`` group living in another file (which exists and is valid) is never followed."""
    target = generate(tmp_path / "elsewhere" / "real.h5")
    path = tmp_path / "link.h5"
    with h5py.File(path, "w") as hf:
        hf["dataset"] = h5py.ExternalLink(str(target), "/dataset")
    refused(path, "link to another file")
    refused(path, "link to another file", reader=validate_input)


def test_external_raw_storage_inside_the_raw_group_is_refused(tmp_path, no_dataset_reads):
    secret = tmp_path / "outside" / "shadow"
    secret.parent.mkdir()
    secret.write_bytes(SECRET)
    path = generate(tmp_path / "scan.h5")
    with h5py.File(path, "a") as hf:
        hf["dataset"].create_dataset(
            "waveform", shape=(len(SECRET),), dtype="u1", external=[(str(secret), 0, len(SECRET))]
        )
    message = refused(path, "external file")
    assert "outside-the-input" not in message


def test_a_huge_declared_acquisition_table_is_refused_before_any_read(tmp_path, no_dataset_reads):
    """A few-kB file declaring a billion acquisitions (compressed chunks, never written)."""
    path = generate(tmp_path / "scan.h5")
    with h5py.File(path, "a") as hf:
        dtype = hf["dataset/data"].dtype
        del hf["dataset/data"]
        hf["dataset"].create_dataset("data", (10**9,), dtype, chunks=(1,), compression="gzip")
    assert path.stat().st_size < 1 << 20
    refused(path, "above the limit of 4.0 GiB per volume (MRIRECON_MAX_VOLUME_BYTES)")


def test_declared_sizes_use_the_same_caps_as_fastmri_files(tmp_path, monkeypatch, no_dataset_reads):
    """The samples the acquisition headers declare, and the k-space the XML matrix implies, are checked
    against ``Limits`` (environment variables included) before a sample is read."""
    path = generate(tmp_path / "scan.h5")
    # 32 lines x 2 coils x 64 samples x 8 bytes = 32 KiB of samples
    refused(
        path,
        "acquisitions declare 32.0 KiB of samples, above the limit of 16.0 KiB",
        reader=lambda p: read_volume(p, limits=Limits(16 << 10)),
    )
    monkeypatch.setenv("MRIRECON_MAX_VOLUME_BYTES", "16kb")
    refused(path, "MRIRECON_MAX_VOLUME_BYTES")
    monkeypatch.delenv("MRIRECON_MAX_VOLUME_BYTES")

    with h5py.File(path, "a") as hf:  # a header declaring 10 million phase-encode lines
        xml = hf["dataset/xml"][0].decode()
        hf["dataset/xml"][0] = xml.replace("<y>32</y>", "<y>10000000</y>", 1).encode()
    refused(path, "the assembled k-space would be (1, 2, 64, 10000000)")
    monkeypatch.setenv("MRIRECON_MAX_SLICE_BYTES", "16kb")  # one slice: 2 x 64 x 32 x 8 bytes = 32 KiB
    with h5py.File(path, "a") as hf:
        hf["dataset/xml"][0] = xml.encode()
    refused(path, "per slice (MRIRECON_MAX_SLICE_BYTES)")


def test_tiny_matrices_and_all_zero_kspace_are_refused(tmp_path):
    path = generate(tmp_path / "scan.h5")
    refused(
        path,
        "too small to reconstruct (at least 64 per side)",
        reader=lambda p: read_volume(p, limits=Limits(min_matrix=64)),
    )
    with h5py.File(path, "a") as hf:
        data = hf["dataset/data"]
        rows = data[()]
        for row in rows:
            row["data"][:] = 0
        data[...] = rows
    refused(path, "all zeros")


def test_a_good_file_still_reads_and_the_cheap_check_reads_no_sample(tmp_path, monkeypatch):
    path = generate(tmp_path / "scan.h5", "-a", 2, "-w", 8)
    info = validate_input(path, check_values=False, limits=Limits())
    assert info.is_test_format and info.kspace_shape == (1, 2, 64, 32)
    volume = read_volume(path)
    assert volume.is_test_format and volume.kspace.shape == (1, 2, 32, 32)
    full = validate_input(generate(tmp_path / "full.h5"), check_values=False)
    assert not full.is_test_format


def test_reconstruct_batch_reports_hostile_ismrmrd_in_one_line_and_goes_on(tmp_path, capsys, fake_network):
    from mrirecon import reconstruct

    src = tmp_path / "in"
    generate(src / "good.h5")
    with h5py.File(src / "link.h5", "w") as hf:
        hf["dataset"] = h5py.ExternalLink(str(src / "good.h5"), "/dataset")
    code = reconstruct.main(["--input", str(src), "--output", str(tmp_path / "out"), "--format", "nifti"])
    err = capsys.readouterr()
    assert code == 1 and "reconstructed 1, skipped 0, failed 1" in err.out
    failed = [line for line in err.err.splitlines() if line.startswith("FAILED")]
    assert failed == [
        f"FAILED {src / 'link.h5'}: '/dataset' is a link to another file; links outside the file are refused"
    ]
    assert "Traceback" not in err.err and len(list((tmp_path / "out").glob("*.nii.gz"))) == 1
