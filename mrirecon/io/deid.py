"""De-identification shared by every export path (DICOM series, HDF5 reconstructions, DICOM -> HDF5).

Pseudonyms and replacement UIDs are HMAC-SHA256 digests keyed with a per-installation secret, so
they are stable on one installation (the same patient always gets the same pseudonym) but cannot
be reversed or recomputed elsewhere by hashing guessed record numbers. The secret is

- the environment variable ``MRIRECON_PSEUDONYM_KEY`` when set (tests, or several machines that
  must agree), else
- ``pseudonym.key`` in the user's config folder (``platformdirs.user_config_dir("mrirecon")``),
  32 random bytes created on first use with mode 0600.

:func:`strip_ismrmrd_identity` removes from an ISMRMRD XML header what DICOM PS3.15's Basic
Application Level Confidentiality Profile removes from DICOM: patient and study information, dates
and times, institution and device identifiers, free-text descriptions and protocol names, and
free-text user parameters.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path

from pydicom.uid import UID, generate_uid

__all__ = [
    "ENV_KEY",
    "installation_secret",
    "keyed_digest",
    "keyed_uid",
    "pseudonym",
    "secret_path",
    "strip_ismrmrd_identity",
]

ENV_KEY = "MRIRECON_PSEUDONYM_KEY"
ISMRMRD_NS = "http://www.ismrm.org/ISMRMRD"

# ISMRMRD elements dropped by the basic profile (whole sections, or single children of a section).
_DROP_SECTIONS = {"subjectInformation", "studyInformation"}
_DROP_CHILDREN = {
    "measurementInformation": {
        "measurementID",
        "seriesDate",
        "seriesTime",
        "protocolName",
        "seriesDescription",
        "seriesInstanceUIDRoot",
        "frameOfReferenceUID",
        "referencedImageSequence",
    },
    "acquisitionSystemInformation": {"institutionName", "stationName", "deviceID", "deviceSerialNumber"},
    "userParameters": {"userParameterString", "userParameterBase64"},
}


def secret_path() -> Path:
    """Where the installation secret lives (created by :func:`installation_secret`)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("mrirecon")) / "pseudonym.key"


def _read_or_create(path: Path) -> bytes:
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return bytes.fromhex(path.read_text().strip())


@cache
def _cached_secret(env_value: str | None) -> bytes:
    if env_value:
        return env_value.encode()
    return _read_or_create(secret_path())


def installation_secret() -> bytes:
    """The HMAC key (``MRIRECON_PSEUDONYM_KEY``, else the per-installation key file, created if missing)."""
    return _cached_secret(os.environ.get(ENV_KEY))


def keyed_digest(*parts: object) -> str:
    """Hex HMAC-SHA256 of ``parts`` under the installation secret."""
    message = "\x1f".join(str(p) for p in parts).encode()
    return hmac.new(installation_secret(), message, hashlib.sha256).hexdigest()


def pseudonym(*identity: object) -> str:
    """``ANON-`` + 16 hex digits, keyed and stable for one identity (e.g. a PatientID, or a file path)."""
    return "ANON-" + keyed_digest("pseudonym", *identity)[:16].upper()


def keyed_uid(*parts: object) -> UID:
    """A DICOM UID derived from ``parts`` through the keyed digest (replacement UIDs that cannot be
    traced back to the source UIDs)."""
    return generate_uid(entropy_srcs=[keyed_digest("uid", *parts)])


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def strip_ismrmrd_identity(header_xml: str | None) -> str | None:
    """The header without identifying elements (see the module docstring); None if it is not XML
    (an unreadable header cannot be checked, so it is not passed on)."""
    if header_xml is None:
        return None
    try:
        root = ET.fromstring(header_xml)
    except ET.ParseError:
        return None
    for section in list(root):
        name = _local(section.tag)
        if name in _DROP_SECTIONS:
            root.remove(section)
        elif name in _DROP_CHILDREN:
            for child in list(section):
                if _local(child.tag) in _DROP_CHILDREN[name]:
                    section.remove(child)
    if root.tag.startswith("{"):
        ET.register_namespace("", root.tag[1:].split("}", 1)[0])
    return ET.tostring(root, encoding="unicode")
