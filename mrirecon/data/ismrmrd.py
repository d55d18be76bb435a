"""A minimal ISMRMRD XML header, enough for fastMRI readers (matrix sizes, FOV, encoding limits)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

NS = "http://www.ismrm.org/ISMRMRD"


def _sub(parent: ET.Element, tag: str, text: object | None = None) -> ET.Element:
    el = ET.SubElement(parent, f"{{{NS}}}{tag}")
    if text is not None:
        el.text = str(text)
    return el


def _space(parent: ET.Element, tag: str, matrix: tuple[int, int, int], fov_mm: tuple[float, float, float]) -> None:
    space = _sub(parent, tag)
    m = _sub(space, "matrixSize")
    for axis, n in zip("xyz", matrix):
        _sub(m, axis, int(n))
    f = _sub(space, "fieldOfView_mm")
    for axis, v in zip("xyz", fov_mm):
        _sub(f, axis, f"{float(v):g}")


def make_header(
    encoded: tuple[int, int],
    recon: tuple[int, int],
    pixel_mm: float,
    num_coils: int,
    num_slices: int,
    slice_mm: float = 5.0,
    field_strength_t: float = 3.0,
    protocol: str = "synthetic",
) -> str:
    """ISMRMRD XML for a Cartesian 2-D multi-slice scan.

    ``encoded`` is the k-space (readout H, phase-encode W) size, ``recon`` the target (h, w) size;
    the phase-encode encoding limits cover all W columns with the centre at W // 2.
    """
    ET.register_namespace("", NS)
    root = ET.Element(f"{{{NS}}}ismrmrdHeader")
    info = _sub(root, "measurementInformation")
    _sub(info, "protocolName", protocol)
    system = _sub(root, "acquisitionSystemInformation")
    _sub(system, "systemVendor", "mrirecon-synth")
    _sub(system, "systemFieldStrength_T", field_strength_t)
    _sub(system, "receiverChannels", num_coils)
    enc = _sub(root, "encoding")
    H, W = encoded
    h, w = recon
    _space(enc, "encodedSpace", (H, W, 1), (H * pixel_mm, W * pixel_mm, slice_mm))
    _space(enc, "reconSpace", (h, w, 1), (h * pixel_mm, w * pixel_mm, slice_mm))
    lims = _sub(enc, "encodingLimits")
    for name, n, center in (
        ("kspace_encoding_step_1", W, W // 2),
        ("kspace_encoding_step_2", 1, 0),
        ("slice", num_slices, num_slices // 2),
    ):
        el = _sub(lims, name)
        _sub(el, "minimum", 0)
        _sub(el, "maximum", n - 1)
        _sub(el, "center", center)
    _sub(enc, "trajectory", "cartesian")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")
