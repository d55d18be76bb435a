"""The app's page (Gradio components, no callbacks): the header, the file and settings column, the result
area (slice, window and linked-zoom controls, the four comparison panels with the test-time adaptation note
and the consistency figure under them, the k-space and coil-map tabs, the metrics table) and the
downloads. :func:`mrirecon.app.events.build_app` wires them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from ..data import MASK_TYPES
from .texts import COIL_HINT
from .views import MAX_ZOOM, PANEL_NAMES

if TYPE_CHECKING:
    from .service import MriApp

PANEL_HEIGHT = 480  # px of each image panel (a fullscreen button enlarges one further)
TRIGGER_MODES = ("token", "off", "scan")
ACCELERATIONS = (4, 8)
MAX_TTA_STEPS = 20


@dataclass
class Controls:
    """The file and the reconstruction settings, with the button that starts it."""

    file: Any
    mask_type: Any
    acceleration: Any
    trigger: Any
    tta: Any
    run: Any

    @property
    def inputs(self) -> list[Any]:
        """In the order of the ``reconstruct`` API's arguments."""
        return [self.file, self.mask_type, self.acceleration, self.trigger, self.tta]


@dataclass
class ViewerBlocks:
    """The components of the result area, made by :func:`viewer_blocks` inside the app's Blocks."""

    slider: Any
    black: Any
    white: Any
    zoom: Any
    cx: Any
    cy: Any
    reset: Any
    tta_box: Any
    images: list[Any]
    consistency_text: Any
    residual_measured: Any
    residual_heldout: Any
    kspace: Any
    mask: Any
    coil_button: Any
    coil_text: Any
    coils: Any
    metrics: Any


def _panel(label: str, elem_id: str, height: int = PANEL_HEIGHT) -> Any:
    return gr.Image(label=label, format="png", interactive=False, elem_id=elem_id, buttons=["download", "fullscreen"],
                    height=height)  # fmt: skip


def viewer_blocks() -> ViewerBlocks:
    """Slice, window and linked-zoom controls; the image panels with the adaptation note and the consistency
    figure; k-space and coil-map tabs; the metrics table."""
    slider = gr.Slider(0, 1, value=0, step=1, label="Slice", elem_id="slice", interactive=True)
    with gr.Row():
        black = gr.Slider(0, 100, value=0, step=1, label="Window: black level (% of volume maximum)",
                          elem_id="window-black")  # fmt: skip
        white = gr.Slider(0, 100, value=100, step=1, label="Window: white level (% of volume maximum)",
                          elem_id="window-white")  # fmt: skip
    with gr.Tabs():
        with gr.Tab("Images", elem_id="tab-images"):
            with gr.Row(equal_height=True):
                zoom = gr.Slider(1, MAX_ZOOM, value=1, step=0.5, label="Zoom, all panels (or click a panel)",
                                 elem_id="zoom")  # fmt: skip
                cx = gr.Slider(0, 100, value=50, step=1, label="Zoom centre, left to right (%)", elem_id="zoom-x")
                cy = gr.Slider(0, 100, value=50, step=1, label="Zoom centre, top to bottom (%)", elem_id="zoom-y")
                reset = gr.Button("Whole image", elem_id="zoom-reset", scale=0, min_width=120)
            tta_box = gr.Markdown("", elem_id="tta")
            with gr.Row():
                images = [_panel(name, f"img-{i}") for i, name in enumerate(PANEL_NAMES)]
            consistency_text = gr.Markdown(
                "The consistency with the measured data (no reference needed) appears here with each reconstruction.",
                elem_id="consistency-text",
            )
            with gr.Row():
                residual_measured = _panel("k-space residual on the measured lines (log scale, as the k-space view)",
                                           "residual-measured", PANEL_HEIGHT * 2 // 3)  # fmt: skip
                residual_heldout = _panel("k-space error on held-out measured lines (log scale)", "residual-heldout",
                                          PANEL_HEIGHT * 2 // 3)  # fmt: skip
        with gr.Tab("k-space and mask", elem_id="tab-kspace"):
            kspace = _panel("Measured k-space of this slice (log magnitude, coil RSS; dark columns were not acquired)",
                            "kspace")  # fmt: skip
            mask = gr.Image(label="Sampling mask (white = acquired phase-encode line)", format="png", interactive=False,
                            elem_id="mask", height=80)  # fmt: skip
        with gr.Tab("Coil maps", elem_id="tab-coils"):
            coil_button = gr.Button("Estimate the coil maps of this slice (ESPIRiT)", elem_id="coil-button")
            coil_text = gr.Markdown(COIL_HINT, elem_id="coil-text")
            coils = _panel("Coil sensitivity maps (ESPIRiT, magnitude)", "coils")
    metrics = gr.Dataframe(
        value=[["-", "press Reconstruct"]],
        headers=["metric", "value"],
        label="Metrics (data range = reference volume maximum)",
        elem_id="metrics",
        interactive=False,
    )
    return ViewerBlocks(
        slider=slider,
        black=black,
        white=white,
        zoom=zoom,
        cx=cx,
        cy=cy,
        reset=reset,
        tta_box=tta_box,
        images=images,
        consistency_text=consistency_text,
        residual_measured=residual_measured,
        residual_heldout=residual_heldout,
        kspace=kspace,
        mask=mask,
        coil_button=coil_button,
        coil_text=coil_text,
        coils=coils,
        metrics=metrics,
    )


@dataclass
class Page:
    """Every component the event handlers read or write."""

    key: Any  # gr.State: the cache key of the reconstruction shown
    gate_ok: Any  # gr.State: the upload gate passed the file (API callers skip the gate; the queued step re-checks)
    controls: Controls
    error_box: Any
    summary: Any
    viewer: ViewerBlocks
    dl_h5: Any
    dl_dicom: Any
    dl_png: Any
    details: Any


def checkpoint_label(checkpoint: Path) -> str:
    """The checkpoint as the header names it: relative to the working folder, else its folder name."""
    try:
        return str(checkpoint.resolve().relative_to(Path.cwd()))
    except ValueError:
        return checkpoint.name


def header(app: MriApp) -> None:
    max_label = app.max_file_size if isinstance(app.max_file_size, str) else f"{app.max_bytes / 1024**2:.0f} MB"
    gr.Markdown(
        "# mrirecon: undersampled multi-coil MRI reconstruction\n"
        f"Checkpoint **{checkpoint_label(app.checkpoint)}**: {app.rec.description}, on `{app.rec.device}`.  \n"
        "Upload a fastMRI-style multi-coil k-space file (`.h5`, train/val or test format) or ISMRMRD raw "
        "data, or pick an example, "
        f"then press **Reconstruct**. Uploads are limited to {max_label}.",
        elem_id="header",
    )


def controls(app: MriApp) -> Controls:
    """The file (upload or example) on the left, the reconstruction settings on the right."""
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            file = gr.File(label="k-space file (.h5)", file_types=[".h5"], type="filepath", elem_id="kspace-file")
            if app.examples:
                gr.Examples(
                    examples=[[str(p)] for p in app.examples],
                    inputs=[file],
                    label="Example scans (simulated, served by this server)",
                    elem_id="examples",
                )
        with gr.Column(scale=1, min_width=300):
            mask_type = gr.Dropdown(
                list(MASK_TYPES),
                value="equispaced_fraction",
                label="Mask type (fully sampled files)",
                info="test-format files keep their own mask",
            )
            acceleration = gr.Radio(list(ACCELERATIONS), value=4, label="Acceleration (fully sampled files)")
            trigger = gr.Radio(
                list(TRIGGER_MODES),
                value=app.default_trigger if app.default_trigger in TRIGGER_MODES else "token",
                label="Trigger mode",
                visible=app.has_trigger,
                interactive=app.has_trigger,
            )
            tta = gr.Slider(0, MAX_TTA_STEPS, value=0, step=1, label="TTA steps (0 = off)")
            run = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct")
    return Controls(file, mask_type, acceleration, trigger, tta, run)


def page_layout(app: MriApp) -> Page:
    """The whole page, made inside the app's ``gr.Blocks``."""
    header(app)
    key = gr.State(None)
    gate_ok = gr.State(True)
    inputs = controls(app)
    error = gr.Markdown("", visible=False, elem_id="error-box")
    summary = gr.Markdown("", elem_id="summary")
    viewer = viewer_blocks()
    with gr.Row():
        dl_h5 = gr.DownloadButton("Reconstruction (fastMRI HDF5)", visible=False, elem_id="dl-h5")
        dl_dicom = gr.DownloadButton("DICOM series (zip, de-identified)", visible=False, elem_id="dl-dicom")
        dl_png = gr.DownloadButton("Comparison of the panels shown (PNG)", visible=False, elem_id="dl-png")
    with gr.Accordion("Details (JSON)", open=False):
        details = gr.JSON(label="details")
    return Page(key, gate_ok, inputs, error, summary, viewer, dl_h5, dl_dicom, dl_png, details)
