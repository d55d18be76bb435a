"""The layout of the app's result area (Gradio components, no callbacks): slice, window and linked-zoom
controls, the four comparison panels with the test-time adaptation note and the consistency figure under
them, the k-space and coil-map tabs and the metrics table. :func:`mrirecon.app.build_app` wires them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from .app_views import MAX_ZOOM

PANEL_HEIGHT = 480  # px of each image panel (a fullscreen button enlarges one further)

COIL_HINT = "Coil sensitivity maps of the slice shown: press the button above (ESPIRiT takes a few seconds)."


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


def viewer_blocks(panel_names: list[str]) -> ViewerBlocks:
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
                images = [_panel(name, f"img-{i}") for i, name in enumerate(panel_names)]
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
