"""De-identification: identifiers pushed through every export path appear in no output file or name.

Paths: ``reconstruct`` (HDF5, DICOM, NIfTI), ``kspace-to-dicom`` (DICOM, HDF5, NIfTI), ``h5-to-dicom``
(single-frame, enhanced, NIfTI), ``dicom-to-h5``, ``ismrmrd-to-h5`` and the app's downloads, from
fastMRI and ISMRMRD raw inputs. The network is the stand-in of test_hostile_batches.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pydicom
import pytest

from mrirecon import convert
from mrirecon import reconstruct as recon_cli
from mrirecon.api import ReconResult
from mrirecon.data.ismrmrd import make_header
from mrirecon.io import deid, dicom

NAME, MRN, BIRTH, BIRTH_ISO = "Smithers^Johnathan", "MRN8675309", "19610203", "1961-02-03"
FREE_TEXT = "knee of Johnathan Smithers"
INSTITUTION, ACCESSION = "St Elsewhere Hospital", "ACC5551234"
SOURCE_UIDS = ("1.2.826.0.1.3680043.8.498.11111", "1.2.826.0.1.3680043.8.498.22222")
IDENTIFIERS = ["Smithers", "Johnathan", MRN, BIRTH, BIRTH_ISO, "Elsewhere", ACCESSION, *SOURCE_UIDS]
PATIENT_FILE = "Smithers_Johnathan_MRN8675309"
S, C, H, W = 2, 2, 32, 24


def identifying_header() -> str:
    xml = make_header((H, W), (16, 16), 1.0, C, S, protocol=f"{FREE_TEXT} {MRN}")
    subject = (
        f"<subjectInformation><patientName>{NAME}</patientName><patientID>{MRN}</patientID>"
        f"<patientBirthdate>{BIRTH_ISO}</patientBirthdate><patientGender>M</patientGender></subjectInformation>"
        f"<studyInformation><studyDate>2020-01-01</studyDate><accessionNumber>{ACCESSION}</accessionNumber>"
        f"<studyInstanceUID>{SOURCE_UIDS[0]}</studyInstanceUID><studyDescription>{FREE_TEXT}</studyDescription>"
        "</studyInformation>"
    )
    xml = xml.replace('ISMRMRD">', 'ISMRMRD">' + subject, 1)
    xml = xml.replace("<protocolName>", f"<seriesDescription>{FREE_TEXT}</seriesDescription><protocolName>", 1)
    return xml.replace(
        "<systemVendor>", f"<institutionName>{INSTITUTION}</institutionName><systemVendor>", 1
    ).replace("<measurementInformation>", f"<measurementInformation><frameOfReferenceUID>{SOURCE_UIDS[1]}"
              "</frameOfReferenceUID>", 1)  # fmt: skip


IDENTITY_ATTRS = {
    "patient_id": MRN,
    "patient_name": NAME,
    "patient_birth_date": BIRTH,
    "series_description": FREE_TEXT,
    "study_instance_uid": SOURCE_UIDS[0],
}


def write_kspace(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    k = (rng.standard_normal((S, C, H, W)) + 1j * rng.standard_normal((S, C, H, W))).astype(np.complex64)
    with h5py.File(path, "w") as hf:
        hf["kspace"] = k
        hf["ismrmrd_header"] = identifying_header()
        for key, value in IDENTITY_ATTRS.items():
            hf.attrs[key] = value
    return path


def write_recon(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as hf:
        hf["reconstruction_rss"] = np.random.default_rng(1).random((S, 16, 16)).astype(np.float32)
        hf["ismrmrd_header"] = identifying_header()
        for key, value in IDENTITY_ATTRS.items():
            hf.attrs[key] = value
    return path


def write_identified_dicom(folder: Path) -> None:
    dicom.write_series(
        np.random.default_rng(2).random((S, 16, 16)).astype(np.float32),
        folder,
        acquisition=dicom.Acquisition(protocol_name=f"{FREE_TEXT} {MRN}"),
        series_description=FREE_TEXT,
        pseudonymise=False,
        identity={"PatientName": NAME, "PatientID": MRN, "PatientBirthDate": BIRTH, "AccessionNumber": ACCESSION},
        study_uid=SOURCE_UIDS[0],
        frame_of_reference_uid=SOURCE_UIDS[1],
    )


def leaks(root: Path) -> list[str]:
    """Every identifier found in a file's bytes (zip members opened) or in a file or folder name."""
    found = []
    for path in [root, *root.rglob("*")]:
        texts = [str(path.relative_to(root.parent))]
        if path.is_file():
            data = path.read_bytes()
            if path.name.endswith(".gz"):  # NIfTI: look inside the compressed stream
                data += gzip.decompress(data)
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as zf:
                    texts += zf.namelist()
                    data += b"".join(zf.read(n) for n in zf.namelist())
            texts.append(data.decode("latin-1"))
        found += [f"{ident} in {path.name}" for ident in IDENTIFIERS for t in texts if ident in t]
    return found


pytestmark = pytest.mark.usefixtures("fake_network")  # conftest: rss stand-in for the network


def test_the_identifiers_are_really_in_the_inputs(tmp_path):
    write_kspace(tmp_path / "in" / f"{PATIENT_FILE}.h5")
    write_identified_dicom(tmp_path / "dcm" / PATIENT_FILE)
    for ident in IDENTIFIERS:
        assert any(ident in t for t in leaks(tmp_path / "in") + leaks(tmp_path / "dcm")), ident


def test_reconstruct_output_strips_the_header(tmp_path, capsys):
    write_kspace(tmp_path / "in" / "scan.h5")  # reconstruct mirrors input names, as fastMRI submissions need
    assert recon_cli.main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]) == 0
    assert leaks(tmp_path / "out") == []
    with h5py.File(tmp_path / "out" / "scan.h5") as hf:
        header = hf["ismrmrd_header"][()].decode()
        assert "<reconSpace>" in header and "patient_id" not in hf.attrs  # geometry kept
    assert recon_cli.main(["--input", str(tmp_path / "in"), "--output", str(tmp_path / "k"), "--keep-identity"]) == 0
    assert leaks(tmp_path / "k")  # the test can see identifiers when they are there


@pytest.mark.parametrize("command", ["h5-to-dicom", "h5-to-dicom --enhanced", "kspace-to-dicom"])
def test_dicom_exports_are_deidentified(tmp_path, capsys, command):
    src = tmp_path / "in" / PATIENT_FILE / f"{PATIENT_FILE}.h5"
    (write_kspace if command == "kspace-to-dicom" else write_recon)(src)
    argv = [*command.split(), str(tmp_path / "in"), str(tmp_path / "out"), "--workers", "1"]
    assert convert.main(argv) == 0, capsys.readouterr().err
    assert leaks(tmp_path / "out") == []
    ds = pydicom.dcmread(next((tmp_path / "out").rglob("*.dcm")))
    assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert ds.PatientID == dicom.pseudonym(f"patient:{MRN}") and "ProtocolName" not in ds
    kept = [*command.split(), str(tmp_path / "in"), str(tmp_path / "kept"), "--workers", "1", "--keep-identity"]
    assert convert.main(kept) == 0
    assert leaks(tmp_path / "kept")


def test_dicom_to_h5_gets_new_uids_and_a_keyed_pseudonym(tmp_path, capsys):
    write_identified_dicom(tmp_path / "dcm" / PATIENT_FILE)
    assert convert.main(["dicom-to-h5", str(tmp_path / "dcm"), str(tmp_path / "h5")]) == 0
    assert leaks(tmp_path / "h5") == []
    [out] = (tmp_path / "h5").iterdir()
    with h5py.File(out) as hf:
        a = dict(hf.attrs)
    assert a["patient_id"].startswith("ANON-") and hashlib.sha256(MRN.encode()).hexdigest()[:12] not in out.read_text(
        "latin-1"
    )
    assert a["study_instance_uid"] != SOURCE_UIDS[0] and a["frame_of_reference_uid"] != SOURCE_UIDS[1]
    assert "series_description" not in a


def test_app_downloads_are_deidentified(tmp_path):
    from mrirecon.app import Entry, write_downloads

    recon = np.random.default_rng(3).random((S, 16, 16)).astype(np.float32)
    result = ReconResult(
        fname=f"{PATIENT_FILE}.h5", recon=recon, zero_filled=recon, target=None, mask=np.ones(W, bool),
        acceleration=1.0, num_low_frequencies=W, metrics=None, seconds=0.0,
    )  # fmt: skip
    entry = Entry("digest|x", result, False, identifying_header(), dict(IDENTITY_ATTRS), None, None)
    out = tmp_path / "downloads"
    out.mkdir()
    write_downloads(entry, out)
    assert leaks(out) == []


def test_pseudonyms_are_keyed_and_unique_per_patient(tmp_path, monkeypatch, capsys):
    for site in ("site1", "site2"):  # same file name, different patients, no PatientID
        path = tmp_path / "in" / site / "scan.h5"
        path.parent.mkdir(parents=True)
        with h5py.File(path, "w") as hf:
            hf["reconstruction_rss"] = np.ones((1, 16, 16), np.float32)
    assert convert.main(["h5-to-dicom", str(tmp_path / "in"), str(tmp_path / "out")]) == 0
    ids = {pydicom.dcmread(p).PatientID for p in (tmp_path / "out").rglob("*.dcm")}
    assert len(ids) == 2
    before = dicom.pseudonym(f"patient:{MRN}")
    monkeypatch.setenv(deid.ENV_KEY, "another installation")
    assert dicom.pseudonym(f"patient:{MRN}") != before


def test_installation_secret_is_created_private(tmp_path, monkeypatch):
    monkeypatch.delenv(deid.ENV_KEY)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    deid._cached_secret.cache_clear()
    try:
        first = deid.pseudonym("x")
        path = deid.secret_path()
        assert path.is_relative_to(tmp_path) and stat.S_IMODE(path.stat().st_mode) == 0o600
        deid._cached_secret.cache_clear()
        assert deid.pseudonym("x") == first  # stable across processes: read back from the file
    finally:
        deid._cached_secret.cache_clear()


# ----------------------------------------------------------------------------------------------
# ISMRMRD raw input, NIfTI output

GENERATE = "ismrmrd_generate_cartesian_shepp_logan"
needs_generator = pytest.mark.skipif(shutil.which(GENERATE) is None, reason="Debian ismrmrd-tools not installed")


def identifying_ismrmrd_xml(xml: str) -> str:
    """The generator's header with identifiers in every place ISMRMRD has for them (schema order)."""
    subject = (
        f"<subjectInformation><patientName>{NAME}</patientName><patientID>{MRN}</patientID>"
        f"<patientBirthdate>{BIRTH_ISO}</patientBirthdate></subjectInformation>"
        f"<studyInformation><studyDescription>{FREE_TEXT}</studyDescription><studyInstanceUID>{SOURCE_UIDS[0]}</studyInstanceUID>"
        "</studyInformation>"
        f"<measurementInformation><patientPosition>HFS</patientPosition><protocolName>{FREE_TEXT} {MRN}"
        f"</protocolName><seriesDescription>{FREE_TEXT}</seriesDescription>"
        f"<frameOfReferenceUID>{SOURCE_UIDS[1]}</frameOfReferenceUID></measurementInformation>"
    )
    user = (
        f"<userParameters><userParameterString><name>comment</name><value>{FREE_TEXT}</value>"
        f"</userParameterString><userParameterString><name>accession</name><value>{ACCESSION}</value>"
        "</userParameterString></userParameters>"  # ISMRMRD's accessionNumber is an integer
    )
    xml = xml.replace("</version>", "</version>" + subject, 1).replace("</ismrmrdHeader>", user + "</ismrmrdHeader>")
    return xml.replace("ISMRM Synthetic Imaging Lab", INSTITUTION)


def write_ismrmrd(path: Path) -> Path:
    """A generated 32x32 two-coil Shepp-Logan scan whose header is full of identifiers."""
    import ismrmrd

    path.parent.mkdir(parents=True, exist_ok=True)
    plain = path.with_name(".plain.h5")
    subprocess.run([GENERATE, "-o", str(plain), "-m", "32", "-c", "2", "-n", "0.01"], check=True, capture_output=True)
    src = ismrmrd.Dataset(str(plain), "dataset", mode="r")
    xml = src.read_xml_header()
    acquisitions = [src.read_acquisition(i) for i in range(src.number_of_acquisitions())]
    src.close()
    plain.unlink()
    out = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    out.write_xml_header(identifying_ismrmrd_xml(xml.decode() if isinstance(xml, bytes) else xml))
    for acq in acquisitions:
        out.append_acquisition(acq)
    out.close()
    return path


@needs_generator
def test_the_ismrmrd_identifiers_are_really_in_the_input(tmp_path):
    from mrirecon.io import read_volume

    path = write_ismrmrd(tmp_path / "in" / f"{PATIENT_FILE}.h5")
    found = leaks(tmp_path / "in")
    for ident in IDENTIFIERS:  # ISMRMRD writes the birth date in ISO form only
        assert ident == BIRTH or any(ident in t for t in found), ident
    assert NAME in read_volume(path).header_xml  # the reader accepts the header


@needs_generator
@pytest.mark.parametrize("fmt", ["h5", "dicom", "nifti"])
def test_reconstruct_of_ismrmrd_input_is_deidentified_in_every_format(tmp_path, capsys, fmt):
    # h5 outputs mirror input names (fastMRI submissions need them); DICOM and NIfTI are named from a pseudonym
    name = "scan.h5" if fmt == "h5" else f"{PATIENT_FILE}.h5"
    write_ismrmrd(tmp_path / "in" / name)
    argv = ["--input", str(tmp_path / "in"), "--format", fmt]
    assert recon_cli.main([*argv, "--output", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert leaks(tmp_path / "out") == []
    outputs = list((tmp_path / "out").iterdir())
    assert len(outputs) == 1 and (fmt == "h5" or outputs[0].name.startswith("ANON-"))
    assert recon_cli.main([*argv, "--output", str(tmp_path / "kept"), "--keep-identity"]) == 0
    if fmt != "nifti":  # NIfTI never holds header identity, even when asked to keep it; only its name does
        assert any(NAME.split("^")[0] in t for t in leaks(tmp_path / "kept"))
    else:
        assert (tmp_path / "kept" / f"{PATIENT_FILE}.nii.gz").exists()


@needs_generator
@pytest.mark.parametrize(
    "command", ["ismrmrd-to-h5", "kspace-to-dicom", "kspace-to-dicom --format h5", "kspace-to-dicom --format nifti"]
)
def test_convert_of_ismrmrd_input_is_deidentified(tmp_path, capsys, command):
    write_ismrmrd(tmp_path / "in" / PATIENT_FILE / f"{PATIENT_FILE}.h5")
    argv = [*command.split(), str(tmp_path / "in"), str(tmp_path / "out"), "--workers", "1"]
    assert convert.main(argv) == 0, capsys.readouterr().err
    assert leaks(tmp_path / "out") == []
    if command == "ismrmrd-to-h5":  # the k-space file keeps the geometry part of the header
        [out] = (tmp_path / "out").iterdir()
        with h5py.File(out) as hf:
            assert "<reconSpace>" in hf["ismrmrd_header"][()].decode() and "source_file" not in hf.attrs
    kept = [*command.split(), str(tmp_path / "in"), str(tmp_path / "kept"), "--workers", "1", "--keep-identity"]
    assert convert.main(kept) == 0
    assert leaks(tmp_path / "kept")


def test_nifti_export_of_a_reconstruction_is_deidentified(tmp_path, capsys):
    """``h5-to-dicom --format nifti``: the NIfTI header (``descrip`` included) holds no free text and
    the file is named from a pseudonym."""
    import nibabel as nib

    write_recon(tmp_path / "in" / PATIENT_FILE / f"{PATIENT_FILE}.h5")
    argv = ["h5-to-dicom", str(tmp_path / "in"), str(tmp_path / "out"), "--format", "nifti", "--workers", "1"]
    assert convert.main(argv) == 0, capsys.readouterr().err
    assert leaks(tmp_path / "out") == []
    [out] = (tmp_path / "out").iterdir()
    header = nib.load(out).header
    assert header["descrip"].tobytes().startswith(b"mrirecon reconstruction")
    assert not header["db_name"].tobytes().strip(b"\0") and not header["aux_file"].tobytes().strip(b"\0")


@pytest.mark.parametrize("fmt", ["h5", "nifti"])
def test_kspace_exports_to_h5_and_nifti_are_deidentified(tmp_path, capsys, fmt):
    """fastMRI k-space with identifying attributes and header -> ``kspace-to-dicom --format h5|nifti``."""
    write_kspace(tmp_path / "in" / PATIENT_FILE / f"{PATIENT_FILE}.h5")
    argv = ["kspace-to-dicom", str(tmp_path / "in"), str(tmp_path / "out"), "--workers", "1", "--format", fmt]
    assert convert.main(argv) == 0, capsys.readouterr().err
    assert leaks(tmp_path / "out") == []
    assert convert.main([*argv[:2], str(tmp_path / "kept"), *argv[3:], "--keep-identity"]) == 0
    assert leaks(tmp_path / "kept")  # at least the mirrored input name
