"""Batches that never lose work: ``reconstruct`` and ``convert`` with hostile and colliding inputs.

The network is replaced by a root-sum-of-squares stand-in (the batch logic is what is tested here;
tests/test_model.py runs the real network through the same command).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from mrirecon import convert
from mrirecon import reconstruct as recon_cli
from mrirecon.data.ismrmrd import make_header
from mrirecon.io import batch

S, C, H, W = 2, 2, 32, 24


pytestmark = pytest.mark.usefixtures("fake_network")  # conftest: rss stand-in for the network


def scan(path: Path, kspace=None, seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kspace is None:
        rng = np.random.default_rng(seed)
        kspace = (rng.standard_normal((S, C, H, W)) + 1j * rng.standard_normal((S, C, H, W))).astype(np.complex64)
    with h5py.File(path, "w") as hf:
        hf["kspace"] = kspace
        hf["ismrmrd_header"] = make_header((H, W), (16, 16), 1.0, C, S)
    return path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = recon_cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def failed(err: str) -> dict[str, str]:
    lines = [line for line in err.splitlines() if line.startswith("FAILED ")]
    return {Path(line.removeprefix("FAILED ").split(":", 1)[0]).name: line for line in lines}


def test_every_bad_file_is_one_line_and_the_batch_goes_on(tmp_path, capsys):
    src = tmp_path / "in"
    scan(src / "a" / "scan.h5", seed=1)
    scan(src / "b" / "scan.h5", seed=2)
    scan(src / "tiny1.h5", kspace=np.ones((2, 1, 1, 1), np.complex64))
    scan(src / "tiny8.h5", kspace=np.ones((2, 1, 8, 8), np.complex64))
    scan(src / "zeros.h5", kspace=np.zeros((S, C, H, W), np.complex64))
    scan(src / "boom.h5")
    scan(src / "nanout.h5")
    with h5py.File(src / "bomb.h5", "w") as hf:
        hf.create_dataset("kspace", (1000, 32, 640, 368), np.complex64, chunks=(1, 1, 64, 64), compression="gzip")
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "--input", src, "--output", out)
    assert code == 1 and "reconstructed 2, skipped 0, failed 6" in stdout, err
    lines = failed(err)
    assert set(lines) == {"tiny1.h5", "tiny8.h5", "zeros.h5", "boom.h5", "nanout.h5", "bomb.h5"}
    assert "too small" in lines["tiny1.h5"] and "too small" in lines["tiny8.h5"]
    assert "all zeros" in lines["zeros.h5"] and "IndexError" in lines["boom.h5"]
    assert "NaN or Inf" in lines["nanout.h5"] and "per volume" in lines["bomb.h5"]
    assert "Traceback" not in err
    # one output per input path, mirroring the tree; nothing partial, no temporaries
    produced = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert produced == ["a", "a/scan.h5", "b", "b/scan.h5"]
    with h5py.File(out / "a" / "scan.h5") as fa, h5py.File(out / "b" / "scan.h5") as fb:
        assert not np.allclose(fa["reconstruction"][()], fb["reconstruction"][()])
        assert np.isfinite(fa["reconstruction"][()]).all()
    code, _, err = run(capsys, "--input", src / "boom.h5", "--output", tmp_path / "v", "--verbose")
    assert code == 1 and "Traceback" in err and "IndexError" in err


@pytest.mark.parametrize("where", ["same", "inside", "file_parent"])
def test_output_in_the_input_is_refused(tmp_path, capsys, where):
    src = tmp_path / "in"
    raw = scan(src / "scan.h5")
    before = raw.read_bytes()
    target = {"same": src, "inside": src / "recon", "file_parent": src}[where]
    given = raw if where == "file_parent" else src
    code, stdout, err = run(capsys, "--input", given, "--output", target, "--overwrite")
    assert code == 2 and "error: output folder" in err and "reconstructed" not in stdout
    assert raw.read_bytes() == before and sorted(p.name for p in src.iterdir()) == ["scan.h5"]


def test_unusable_output_is_found_before_any_work(tmp_path, capsys, monkeypatch):
    scan(tmp_path / "in" / "scan.h5")
    calls = []
    monkeypatch.setattr(recon_cli, "read_volume", lambda *a, **k: calls.append(a))
    (tmp_path / "afile").write_text("x")
    code, _, err = run(capsys, "--input", tmp_path / "in", "--output", tmp_path / "afile")
    assert code == 2 and "not a folder" in err
    code, _, err = run(capsys, "--input", tmp_path / "in", "--output", tmp_path / "afile" / "sub")
    assert code == 2 and "cannot write to output folder" in err
    assert calls == []


def test_empty_input_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "--input", tmp_path / "empty", "--output", tmp_path / "out")
    assert code == 2 and "no .h5 files found" in err
    code, _, err = convert_run(capsys, "h5-to-dicom", tmp_path / "empty", tmp_path / "out2")
    assert code == 2 and "no input files found" in err


def test_long_names_and_stale_temporaries(tmp_path, capsys):
    long_name = "x" * 236 + ".h5"  # 240 characters: the old temporary name did not fit
    scan(tmp_path / "in" / long_name)
    out = tmp_path / "out"
    out.mkdir()
    dead = 2**22 + 12345  # above the default pid_max: no such process
    stale = [out / f"{batch.TMP_PREFIX}{dead}-0badcafe.h5", out / "sub" / f"{batch.TMP_PREFIX}{dead}-deadbeef"]
    stale[1].mkdir(parents=True)
    stale[0].write_bytes(b"partial")
    live = out / f"{batch.TMP_PREFIX}{os.getpid()}-00000000.h5"  # a run still going
    live.write_bytes(b"in progress")
    code, stdout, err = run(capsys, "--input", tmp_path / "in", "--output", out)
    assert code == 0, err
    assert (out / long_name).is_file()
    assert not any(p.exists() for p in stale) and live.exists()


def convert_run(capsys, *argv) -> tuple[int, str, str]:
    code = convert.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_convert_batches_refuse_and_clean_the_same_way(tmp_path, capsys):
    src = tmp_path / "in"
    for sub in ("site1", "site2"):
        path = src / sub / "scan.h5"
        path.parent.mkdir(parents=True)
        with h5py.File(path, "w") as hf:
            hf["reconstruction_rss"] = np.random.default_rng(len(sub)).random((2, 16, 16)).astype(np.float32)
    with h5py.File(src / "ext.h5", "w") as hf:
        hf.create_dataset("reconstruction_rss", (1, 16, 8), np.float32, external=[("/etc/hostname", 0, 512)])
    out = tmp_path / "dcm"
    code, stdout, err = convert_run(capsys, "h5-to-dicom", src, out)
    assert code == 1 and "converted 2, skipped 0, failed 1" in stdout
    assert "ext.h5: '/reconstruction_rss' stores its data in an external file" in err
    assert len(list(out.iterdir())) == 2  # site1/scan.h5 and site2/scan.h5 do not collide
    code, _, err = convert_run(capsys, "h5-to-dicom", src, src / "dcm")
    assert code == 2 and "inside it" in err


def test_dicom_declaring_huge_images_is_refused_before_decoding(tmp_path, capsys, monkeypatch):
    import pydicom

    from mrirecon.io import dicom

    [path] = dicom.write_series(np.ones((1, 16, 16), np.float32), tmp_path / "dcm" / "big")
    dicom.write_series(np.ones((2, 16, 16), np.float32), tmp_path / "dcm" / "ok")
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = 60000  # declared only; the stored pixels are 16x16
    ds.save_as(path)
    code, stdout, err = convert_run(capsys, "dicom-to-h5", tmp_path / "dcm", tmp_path / "h5")
    assert code == 1 and "converted 1, skipped 0, failed 1" in stdout
    assert "60000x60000 image is above the per-slice limit" in err
    monkeypatch.setenv("MRIRECON_MAX_VOLUME_BYTES", "1kb")
    code, stdout, err = convert_run(capsys, "dicom-to-h5", tmp_path / "dcm" / "ok", tmp_path / "h5b")
    assert code == 1 and "above the per-volume limit" in err


def test_api_refuses_a_non_finite_reconstruction(tmp_path):
    import torch

    from mrirecon.api import Reconstructor
    from mrirecon.data import read_volume

    class NanNet(torch.nn.Module):
        def forward(self, kspace, mask, num_low_frequencies, **_):
            return torch.full(kspace.shape[:1] + kspace.shape[2:4], float("nan"))

    volume = read_volume(scan(tmp_path / "scan.h5"))
    with pytest.raises(ValueError, match="scan.h5: the reconstruction holds NaN or Inf"):
        Reconstructor(NanNet(), device="cpu").reconstruct_volume(volume)
