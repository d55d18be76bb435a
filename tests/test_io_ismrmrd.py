"""ISMRMRD raw input: files of ISMRMRD's own generator against its own reference reconstruction, the
reader's handling of noise scans, averages, slices, repetitions and refused layouts, and the entry points
(reconstruct, convert, evaluate, app) that accept these files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import h5py
import ismrmrd
import nibabel as nib
import numpy as np
import pytest

from mrirecon.data import InvalidInputError, validate_file
from mrirecon.io import detect_format, read_volume, validate_input
from mrirecon.io.ismrmrd_raw import read_ismrmrd

GENERATE = "ismrmrd_generate_cartesian_shepp_logan"
RECON = "ismrmrd_recon_cartesian_2d"
needs_tools = pytest.mark.skipif(
    shutil.which(GENERATE) is None or shutil.which(RECON) is None, reason="Debian ismrmrd-tools not installed"
)
EXAMPLES = Path(__file__).resolve().parents[1] / "app" / "examples"


def generate(path: Path, *args: object) -> Path:
    """Run ISMRMRD's Shepp-Logan generator (``-m`` matrix, ``-c`` coils, ``-a`` acceleration, ...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([GENERATE, "-o", str(path), *map(str, args)], check=True, capture_output=True)
    return path


def reference(path: Path) -> np.ndarray:
    """``ismrmrd_recon_cartesian_2d`` on a copy -> its magnitude image transposed to our [readout, phase]."""
    copy = path.with_name(f"ref_{path.name}")
    shutil.copy(path, copy)
    subprocess.run([RECON, str(copy)], check=True, capture_output=True)
    with h5py.File(copy, "r") as hf:
        image = hf["dataset/cpp/data"][()]
    return np.squeeze(image).T


def agreement(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(Pearson correlation, relative L2 error after the best scale) of two magnitude images."""
    a, b = ours.ravel().astype(np.float64), ref.ravel().astype(np.float64)
    scale = (a @ b) / (b @ b)
    return float(np.corrcoef(a, b)[0, 1]), float(np.linalg.norm(a - scale * b) / np.linalg.norm(a))


# ----------------------------------------------------------------------------------------------
# files of ISMRMRD's generator


@needs_tools
@pytest.mark.parametrize(
    "matrix, coils, noise, extra",
    [(32, 2, 0.0, []), (64, 8, 0.05, ["-C"]), (48, 4, 0.02, ["-O", 1])],
    ids=["32px-2coils-noiseless", "64px-8coils-noise-calibration", "48px-4coils-no-oversampling"],
)
def test_reader_matches_ismrmrd_reference(tmp_path, matrix, coils, noise, extra):
    """The fully sampled RSS image of the reader equals ISMRMRD's reconstruction (up to its FFT scale)."""
    path = generate(tmp_path / "scan.h5", "-m", matrix, "-c", coils, "-n", noise, *extra)
    assert detect_format(path) == "ismrmrd"
    volume = read_ismrmrd(path)
    ref = reference(path)
    # readout cropped to the recon field of view of the header (with -O 1 the generator still declares a
    # 600 mm encoded and a 300 mm recon FOV, so half the readout goes, as in ISMRMRD's reconstruction)
    assert volume.kspace.shape == (1, coils, ref.shape[0], matrix) and ref.shape[1] == matrix
    assert volume.mask is None and not volume.is_test_format and volume.crop_size == ref.shape
    assert volume.attrs["noise_prewhitened"] == int("-C" in extra)
    corr, err = agreement(volume.target[0], ref)
    # prewhitening with a covariance estimated from 128 noise samples reshapes the coil sum slightly
    assert corr > (0.99 if "-C" in extra else 0.99999)
    assert err < (0.05 if "-C" in extra else 1e-3)


@needs_tools
@pytest.mark.parametrize("matrix, coils", [(32, 4), (64, 2)])
def test_reconstruct_fully_sampled_to_nifti_agrees_with_reference(tmp_path, capsys, matrix, coils):
    """``reconstruct --acceleration 1 --format nifti`` on a generated scan: correlation > 0.9 with ISMRMRD's
    own reconstruction; the NIfTI opens with nibabel with shape [W,H,S], the header's voxel sizes and an
    affine that says plainly that the orientation is unknown."""
    from mrirecon import reconstruct

    path = generate(tmp_path / "in" / "scan.h5", "-m", matrix, "-c", coils, "-n", 0.02)
    ref = reference(path)  # leaves its copy next to the input: give the file, not the folder
    args = ["--input", str(path), "--output", str(tmp_path / "out"), "--device", "cpu"]
    assert reconstruct.main([*args, "--acceleration", "1", "--format", "nifti"]) == 0
    err = capsys.readouterr().err
    assert "orientation unknown" in err
    [out] = (tmp_path / "out").iterdir()  # named from a pseudonym without --keep-identity
    assert out.name.startswith("ANON-") and out.name.endswith(".nii.gz")
    img = nib.load(out)
    assert img.shape == (matrix, matrix, 1)
    assert np.allclose(img.header.get_zooms(), (300 / matrix, 300 / matrix, 6.0))  # FOV 300 mm, 6 mm slices
    assert int(img.header["sform_code"]) == 2 and b"orientation unknown" in img.header["descrip"].tobytes()
    assert np.allclose(np.abs(np.diag(img.affine)[:3]), (300 / matrix, 300 / matrix, 6.0))
    corr, _ = agreement(np.asarray(img.dataobj)[:, :, 0].T, ref)
    assert corr > 0.9


@needs_tools
@pytest.mark.parametrize(
    "acceleration, coils, noise, extra",
    [(2, 8, 0.0, []), (4, 4, 0.0, []), (2, 8, 0.05, ["-C"])],
    ids=["2x-8coils", "4x-4coils", "2x-8coils-noise-prewhitened"],
)
def test_undersampled_scans_beat_zero_filled(tmp_path, acceleration, coils, noise, extra):
    """Undersampled generator files keep their own acquired lines and the network beats zero-filling
    (NMSE against the noiseless fully sampled RSS image, by at least 10 %)."""
    from mrirecon.codecs.checkpoint import DEFAULT_CHECKPOINT
    from mrirecon.metrics import volume_metrics
    from mrirecon.reconstruct import _reconstructor

    truth = read_ismrmrd(generate(tmp_path / "truth.h5", "-m", 64, "-c", coils, "-n", 0)).target
    path = generate(tmp_path / "scan.h5", "-m", 64, "-c", coils, "-a", acceleration, "-w", 16, "-n", noise, *extra)
    rec = _reconstructor(DEFAULT_CHECKPOINT, "cpu", {})  # the shipped codec, loaded once per process
    result = rec.reconstruct_file(path)
    assert result.settings["mask_type"] == "from file" and result.acceleration > 1.5
    ours, zf = volume_metrics(truth, result.recon), volume_metrics(truth, result.zero_filled)
    # NMSE (hence PSNR): on the noiseless piecewise-constant phantom the codec's SSIM can trail zero-filling
    assert ours["NMSE"] < 0.9 * zf["NMSE"], (ours, zf)


@needs_tools
def test_mask_and_repetitions_from_acquired_lines(tmp_path):
    """The mask is the set of phase-encode lines acquired in the chosen repetition."""
    path = generate(tmp_path / "scan.h5", "-m", 32, "-c", 2, "-a", 2, "-w", 8, "-r", 2)
    with h5py.File(path, "r") as hf:
        head = hf["dataset/data"]["head"]
        imaging = (head["flags"] & (1 << (ismrmrd.ACQ_IS_NOISE_MEASUREMENT - 1))) == 0
        reps, lines = head["idx"]["repetition"][imaging], head["idx"]["kspace_encode_step_1"][imaging]
    for repetition in (0, 1):
        volume = read_ismrmrd(path, repetition=repetition)
        expected = np.zeros(32, bool)
        expected[lines[reps == repetition]] = True
        assert np.array_equal(volume.mask, expected) and volume.is_test_format
        assert volume.attrs["num_repetitions"] == len(np.unique(reps)) and volume.attrs["acceleration"] == 2
        assert volume.num_low_frequencies >= 8
        assert not volume.kspace[..., ~expected].any()
    assert not np.array_equal(read_ismrmrd(path, 0).mask, read_ismrmrd(path, 1).mask)
    with pytest.raises(InvalidInputError, match="repetition 9 is not in the file"):
        read_ismrmrd(path, repetition=9)


# ----------------------------------------------------------------------------------------------
# files written here with the ismrmrd package


def _lines(path: Path) -> tuple[str, list[ismrmrd.Acquisition]]:
    ds = ismrmrd.Dataset(str(path), "dataset", mode="r")
    try:
        return ds.read_xml_header(), [ds.read_acquisition(i) for i in range(ds.number_of_acquisitions())]
    finally:
        ds.close()


def _write(path: Path, xml: str | bytes, acquisitions: list[ismrmrd.Acquisition]) -> Path:
    ds = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    ds.write_xml_header(xml)
    for acq in acquisitions:
        ds.append_acquisition(acq)
    ds.close()
    return path


def _copy(acq: ismrmrd.Acquisition, data: np.ndarray | None = None, **idx: int) -> ismrmrd.Acquisition:
    out = ismrmrd.Acquisition(acq.getHead())
    out.data[:] = acq.data if data is None else data
    for key, value in idx.items():
        setattr(out.idx, key, value)
    return out


@needs_tools
def test_averages_slices_and_geometry(tmp_path):
    """Two slices, every line twice (average 0/1): lines are averaged, slices sorted along the normal, the
    acquisitions' geometry becomes DICOM attributes and a NIfTI affine in RAS."""
    from mrirecon.io import write_output

    src = generate(tmp_path / "one.h5", "-m", 32, "-c", 2, "-n", 0.0)
    xml, acqs = _lines(src)
    rng = np.random.default_rng(0)
    out = []
    for slice_index, gain, z in ((0, 2.0, 10.0), (1, 1.0, 4.0)):  # slice 0 lies above slice 1
        for acq in acqs:
            delta = (rng.standard_normal(acq.data.shape) * 0.1).astype(np.complex64)
            for average, sign in ((0, 1), (1, -1)):
                line = _copy(acq, gain * acq.data + sign * delta, slice=slice_index, average=average)
                line.read_dir[:] = [0.0, 0.0, -1.0]  # readout head-foot, phase left-right: a coronal slice
                line.phase_dir[:] = [1.0, 0.0, 0.0]
                line.slice_dir[:] = [0.0, 1.0, 0.0]
                line.position[:] = [0.0, z, 0.0]
                out.append(line)
    path = _write(tmp_path / "two.h5", xml, out)
    single, volume = read_ismrmrd(src), read_ismrmrd(path)
    assert volume.kspace.shape == (2, 2, 32, 32)
    # normal = phase x read = (1,0,0) x (0,0,-1) = (0,1,0): ascending y puts slice 1 (y=4) first
    assert list(volume.attrs["slice_indices"]) == [1, 0]
    assert np.allclose(volume.kspace[0], single.kspace[0], atol=1e-4)
    assert np.allclose(volume.kspace[1], 2 * single.kspace[0], atol=1e-4)
    assert volume.attrs["slice_spacing"] == pytest.approx(6.0)
    assert np.allclose(volume.attrs["image_orientation_patient"], [1, 0, 0, 0, 0, -1])
    nifti = tmp_path / "two.nii.gz"
    assert write_output(nifti, "nifti", volume.target, volume.header_xml, volume.attrs, str(path)) is None
    img = nib.load(nifti)
    assert img.shape == (32, 32, 2) and int(img.header["sform_code"]) == 1
    # i along the phase direction (+x LPS = left), j along the readout (feet-ward), k along the normal (+y LPS)
    assert nib.aff2axcodes(img.affine) == ("L", "I", "P")
    dx = 300 / 32
    assert np.allclose(img.header.get_zooms(), (dx, dx, 6.0))
    centre = img.affine @ np.array([16, 16, 0, 1])  # the FOV centre of the first slice (y = 4 in LPS)
    assert np.allclose(centre[:3], [0.0, -4.0, 0.0])


@needs_tools
def test_noise_scans_prewhiten_correlated_coils(tmp_path):
    """Correlated coil noise (noise scans and imaging lines of noise only) is decorrelated by the reader."""
    src = generate(tmp_path / "one.h5", "-m", 32, "-c", 4, "-n", 0.0)
    xml, acqs = _lines(src)
    rng = np.random.default_rng(1)
    mixing = np.array([[1, 0, 0, 0], [0.8, 0.6, 0, 0], [0.5, 0.3, 0.8, 0], [0.2, 0.6, 0.2, 0.7]])

    def noise(n: int) -> np.ndarray:
        white = rng.standard_normal((4, n)) + 1j * rng.standard_normal((4, n))
        return (mixing @ white).astype(np.complex64)

    scan = _copy(acqs[0], np.zeros((4, 64), np.complex64))
    noise_scans = []
    for _ in range(8):
        head = acqs[0].getHead()
        head.number_of_samples, head.center_sample = 64, 0
        acq = ismrmrd.Acquisition(head)
        acq.data[:] = noise(64)
        acq.clear_all_flags()
        acq.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
        noise_scans.append(acq)
    del scan
    lines = [_copy(acq, noise(acq.number_of_samples)) for acq in acqs]
    raw = read_ismrmrd(_write(tmp_path / "without.h5", xml, lines))
    white = read_ismrmrd(_write(tmp_path / "with.h5", xml, noise_scans + lines))
    assert white.attrs["noise_prewhitened"] == 1 and white.attrs["noise_samples"] == 512

    def off_diagonal(kspace: np.ndarray) -> float:
        x = kspace[0].reshape(4, -1)
        corr = np.abs(np.corrcoef(x))
        return float(corr[~np.eye(4, dtype=bool)].max())

    assert off_diagonal(raw.kspace) > 0.5
    assert off_diagonal(white.kspace) < 0.15


@needs_tools
@pytest.mark.parametrize(
    "change, problem",
    [
        ("contrast", "2 contrasts"),
        ("slice_mask", "different phase-encode lines"),
        ("radial", "radial trajectory"),
        ("no_imaging", "no imaging acquisitions"),
        ("bad_xml", "XML header is not valid"),
    ],
)
def test_refused_layouts_are_one_line_errors(tmp_path, change, problem):
    src = generate(tmp_path / "one.h5", "-m", 32, "-c", 2, "-n", 0.0)
    xml, acqs = _lines(src)
    text = xml.decode() if isinstance(xml, bytes) else xml
    if change == "contrast":
        acqs = acqs + [_copy(a, contrast=1) for a in acqs]
    elif change == "slice_mask":
        acqs = acqs + [_copy(a, slice=1) for a in acqs if a.idx.kspace_encode_step_1 % 2]
    elif change == "radial":
        text = text.replace("<trajectory>cartesian</trajectory>", "<trajectory>radial</trajectory>")
    elif change == "no_imaging":
        for a in acqs:
            a.set_flag(ismrmrd.ACQ_IS_NAVIGATION_DATA)
    elif change == "bad_xml":
        text = text.replace("<encoding>", "<encodingg>", 1)
    path = _write(tmp_path / "bad.h5", text, acqs)
    with pytest.raises(InvalidInputError) as info:
        read_volume(path)
    message = str(info.value)
    assert message.startswith(str(path)) and problem in message and "\n" not in message


def test_detect_format_and_container_errors(tmp_path):
    assert detect_format(EXAMPLES / "example_fully_sampled.h5") == "fastmri"
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="empty file"):
        read_volume(tmp_path / "empty.h5")
    with h5py.File(tmp_path / "other.h5", "w") as hf:
        hf["image"] = np.zeros(3)
    with pytest.raises(InvalidInputError, match=r"missing dataset 'kspace' \(fastMRI\) or 'dataset/data'"):
        read_volume(tmp_path / "other.h5")
    with pytest.raises(InvalidInputError, match="missing dataset 'kspace'"):
        validate_file(tmp_path / "other.h5")  # the fastMRI validator keeps its own message


# ----------------------------------------------------------------------------------------------
# entry points


@needs_tools
def test_convert_ismrmrd_to_h5_and_batch_errors(tmp_path, capsys):
    """``convert ismrmrd-to-h5`` writes fastMRI-layout files the fastMRI reader accepts; a bad file in the
    batch is one FAILED line and the exit code says so."""
    from mrirecon.convert import main

    src = tmp_path / "in"
    generate(src / "full.h5", "-m", 32, "-c", 2, "-n", 0.01)
    generate(src / "under.h5", "-m", 32, "-c", 2, "-a", 2, "-w", 8, "-n", 0.01)
    (src / "broken.h5").write_bytes(b"not hdf5")
    assert main(["ismrmrd-to-h5", str(src), str(tmp_path / "out"), "--workers", "1", "--keep-identity"]) == 1
    captured = capsys.readouterr()
    assert f"FAILED {src / 'broken.h5'}: not an HDF5 file" in captured.err
    assert "converted 2, skipped 0, failed 1" in captured.out
    for name in ("full.h5", "under.h5"):
        raw, converted = read_ismrmrd(src / name), read_volume(tmp_path / "out" / name)
        info = validate_file(tmp_path / "out" / name)
        assert np.array_equal(raw.kspace, converted.kspace) and converted.header_xml == raw.header_xml
        assert info.crop_size == raw.crop_size and info.is_test_format == raw.is_test_format
        if raw.target is not None:
            assert np.allclose(converted.target, raw.target)
        else:
            assert np.array_equal(converted.mask, raw.mask) and info.acceleration == 2


@needs_tools
def test_validate_input_and_evaluate_accept_ismrmrd(tmp_path):
    from mrirecon.evaluate import load_cases

    path = generate(tmp_path / "full.h5", "-m", 32, "-c", 2, "-n", 0.01)
    info = validate_input(path)
    assert info.kspace_shape == (1, 2, 32, 32) and not info.is_test_format and info.crop_size == (32, 32)
    cases = load_cases(path, None, [4], "equispaced_fraction", None)
    assert len(cases) == 1 and cases[0].target.shape == (1, 32, 32)
    assert np.allclose(cases[0].target, read_ismrmrd(path).target)


@needs_tools
def test_reconstruct_dicom_output_and_app_path(tmp_path, capsys):
    """``reconstruct --format dicom`` writes a series folder; the app's load path reads ISMRMRD uploads."""
    import pydicom

    from mrirecon import reconstruct
    from mrirecon.app import MriApp

    path = generate(tmp_path / "in" / "scan.h5", "-m", 32, "-c", 2, "-a", 2, "-w", 8, "-n", 0.01)
    args = ["--input", str(path), "--output", str(tmp_path / "out"), "--device", "cpu", "--format", "dicom"]
    assert reconstruct.main(args) == 0
    [series] = (tmp_path / "out").iterdir()
    assert series.name.startswith("ANON-")  # not the input name
    files = sorted(series.glob("*.dcm"))
    assert len(files) == 1
    ds = pydicom.dcmread(files[0])
    assert (ds.Rows, ds.Columns) == (32, 32) and np.allclose([float(v) for v in ds.PixelSpacing], 300 / 32)
    app = MriApp(device="cpu", examples_dir=None)
    try:
        entry, cached = app.load_and_reconstruct(str(path), "equispaced_fraction", 4, None, 0)
        assert not cached and entry.is_test_format and entry.result.recon.shape == (1, 32, 32)
    finally:
        app.close()
