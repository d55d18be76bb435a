"""The app's events: :class:`Handlers` turns control values into ``{component: update}`` (components left
out keep their state), :func:`wire` connects them to the page, :func:`build_app` makes the Blocks.

A reconstruction runs in two steps: an unqueued gate shows the problem of a hostile or oversized upload at
once, and only a file that passes is reconstructed in the queue (one at a time). Slider, window and zoom
changes re-render from the cache.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from ..codecs.checkpoint import DEFAULT_CHECKPOINT
from ..data import InvalidInputError
from .cache import Entry
from .layout import Page, page_layout
from .service import DEFAULT_EXAMPLES_DIR, DEFAULT_MAX_FILE_SIZE, MriApp
from .session import download_stem, write_downloads
from .texts import COIL_HINT, NO_FILE, details, error_box, metrics_table, summary, tta_note
from .views import PANEL_PIXELS, View, comparison_png, kspace_image, mask_image, slice_images, upscale

log = logging.getLogger(__name__)

Updates = dict[Any, Any]  # component -> its new value or gr.update


def _session(request: gr.Request | None) -> str | None:
    return request.session_hash if request else None


def _window(black: Any, white: Any) -> tuple[float, float]:
    return float(black if black is not None else 0), float(white if white is not None else 100)


def _input_problem(err: InvalidInputError) -> str:
    return f"{Path(err.path).name}: {err.problem}"


class Handlers:
    """The page's event handlers over the shared :class:`MriApp`."""

    def __init__(self, app: MriApp, page: Page) -> None:
        self.app, self.page, self.v = app, page, page.viewer

    # -- pieces of a result ---------------------------------------------------------------------

    def failure(self, message: str) -> Updates:
        """The error shown once, in the error box (no toast as well); every result area says why it is empty."""
        p, v = self.page, self.v
        hide = gr.DownloadButton(visible=False)
        return {
            p.key: None,
            p.error_box: gr.Markdown(error_box(message), visible=True),
            p.summary: "",
            v.slider: gr.Slider(),
            **dict.fromkeys(v.images),
            v.mask: None,
            v.metrics: [["-", "no result: see the error above"]],
            p.dl_h5: hide,
            p.dl_dicom: hide,
            p.details: {"error": message},
            p.dl_png: hide,
            v.black: gr.Slider(),
            v.white: gr.Slider(),
            v.kspace: None,
            v.consistency_text: "No consistency figure: no reconstruction (see the error above).",
            v.residual_measured: None,
            v.residual_heldout: None,
            v.tta_box: "",
            v.zoom: gr.Slider(),
            v.cx: gr.Slider(),
            v.cy: gr.Slider(),
            v.coil_text: COIL_HINT,
            v.coils: None,
        }

    def panel_views(
        self, entry: Entry, s: int, window: tuple[float, float], view: View, session: str | None
    ) -> Updates:
        """The four panels of slice ``s`` as ``view`` zooms them, and the comparison PNG of what they show."""
        imgs = slice_images(entry, s, window, view)
        where = f", {view.label}" if view.label else ""
        panels = [(f"{n} (slice {s}{where})", im) for n, im in imgs.items() if im is not None]
        # one name per slice, window and view: a file being served is never rewritten under the server
        name = (f"{download_stem(entry)}_slice{s:03d}_window{window[0]:g}-{window[1]:g}"
                f"_zoom{view.zoom:g}-{view.cx:g}-{view.cy:g}.png")  # fmt: skip
        png = comparison_png(panels, self.app.sessions.folder(session) / name)
        shown = {
            panel: gr.Image(value=None if im is None else upscale(im, PANEL_PIXELS), visible=im is not None)
            for panel, im in zip(self.v.images, imgs.values(), strict=True)
        }
        return {**shown, self.page.dl_png: gr.DownloadButton(value=str(png), visible=True)}

    def slice_views(
        self, entry: Entry, s: int, window: tuple[float, float], view: View, session: str | None
    ) -> Updates:
        """Panels, comparison PNG, metrics table and k-space of slice ``s``."""
        return {
            **self.panel_views(entry, s, window, view, session),
            self.v.metrics: metrics_table(entry, s),
            self.v.kspace: kspace_image(entry, s),
        }

    def consistency_view(self, entry: Entry, s: int) -> Updates:
        """The consistency figure of slice ``s``; a failure is shown in its place, the page keeps working."""
        v = self.v
        try:
            text, measured, heldout = self.app.consistency(entry, s)
        except InvalidInputError as err:
            text, measured, heldout = error_box(_input_problem(err)), None, None
        except Exception as err:  # keep serving; the traceback goes to the server log only
            log.exception("consistency check failed")
            message = f"the consistency check failed ({type(err).__name__}); see the server log"
            text, measured, heldout = error_box(message), None, None
        maps = (None if m is None else upscale(m, PANEL_PIXELS) for m in (measured, heldout))
        return dict(zip((v.consistency_text, v.residual_measured, v.residual_heldout), (text, *maps), strict=True))

    # -- reconstruct -----------------------------------------------------------------------------

    def gate(self, path: str | None) -> Updates:
        """Unqueued: show the problem of a hostile or oversized file at once; only a file that passes is
        reconstructed (``gate_ok``)."""
        refuse = {self.page.gate_ok: False}
        if not path:
            return {**refuse, **self.failure(NO_FILE)}
        try:
            self.app.precheck(path)
        except InvalidInputError as err:
            return {**refuse, **self.failure(_input_problem(err))}
        except OSError as err:
            return {**refuse, **self.failure(f"{Path(path).name}: cannot read the file ({err.strerror})")}
        return {self.page.gate_ok: True}

    def reconstruct(self, path, mask_type, acceleration, trigger, tta, request: gr.Request, progress=gr.Progress()):  # noqa: B008
        """Reconstruct the file with the page's settings and show its middle slice, whole, full window."""
        if not path:
            return self.failure(NO_FILE)
        name, session = Path(path).name, _session(request)
        try:
            entry, cached = self.app.load_and_reconstruct(path, mask_type, acceleration, trigger, tta, progress)
            h5, archive = write_downloads(entry, self.app.sessions.folder(session))
        except InvalidInputError as err:
            return self.failure(_input_problem(err))
        except (ValueError, TypeError) as err:
            return self.failure(f"{name}: {err}")
        except Exception as err:  # keep serving; the traceback goes to the server log only
            log.exception("reconstruction of %s failed", name)
            return self.failure(f"{name}: reconstruction failed ({type(err).__name__}); see the server log")
        p, v = self.page, self.v
        n = entry.result.recon.shape[0]
        return {
            p.key: entry.key,
            p.error_box: gr.Markdown("", visible=False),
            p.summary: summary(entry, cached),
            v.slider: gr.Slider(minimum=0, maximum=max(n - 1, 1), value=n // 2, step=1, interactive=n > 1),
            **self.slice_views(entry, n // 2, (0.0, 100.0), View(), session),
            v.mask: mask_image(entry.result.mask),
            p.dl_h5: gr.DownloadButton(value=str(h5), visible=True),
            p.dl_dicom: gr.DownloadButton(value=str(archive), visible=True),
            p.details: details(entry, cached, self.app.rec.description),
            v.black: gr.Slider(value=0),  # a new volume starts with the full window and the whole image
            v.white: gr.Slider(value=100),
            **self.consistency_view(entry, n // 2),
            v.tta_box: tta_note(entry),
            v.zoom: gr.Slider(value=1),
            v.cx: gr.Slider(value=50),
            v.cy: gr.Slider(value=50),
            v.coil_text: COIL_HINT,
            v.coils: None,
        }

    def reconstruct_checked(self, ok, path, mask_type, acceleration, trigger, tta, request: gr.Request,
                            progress=gr.Progress()):  # noqa: B008  # fmt: skip
        if not ok:  # refused by the gate: its message is already shown
            return {self.page.key: gr.skip()}
        return self.reconstruct(path, mask_type, acceleration, trigger, tta, request, progress)

    # -- slice, window and zoom -------------------------------------------------------------------

    def render(self, key, s, black, white, zoom, cx, cy, request: gr.Request) -> Updates:
        """Panels, metrics and k-space of slice ``s`` from the cache."""
        entry = self.app.cache.get(key)
        if entry is None:
            note = [["-", "no reconstruction shown: press Reconstruct (results of idle sessions are dropped)"]]
            return {self.v.metrics: note, self.page.dl_png: gr.DownloadButton(visible=False)}
        return self.slice_views(entry, int(s or 0), _window(black, white), View.of(zoom, cx, cy), _session(request))

    def render_panels(self, key, s, black, white, zoom, cx, cy, request: gr.Request) -> Updates:
        """Window/level and zoom change only the panels: the k-space view and the metrics are not sent
        again (Gradio rewrites an identical image's cache file in place, which can cut short a download
        of it that is still running)."""
        updates = self.render(key, s, black, white, zoom, cx, cy, request)
        return {c: u for c, u in updates.items() if c not in (self.v.metrics, self.v.kspace)}

    def render_window(self, key, s, black, white, zoom, cx, cy, request: gr.Request) -> Updates:
        """Window/level leaves the error map as it is (its scale is fixed)."""
        updates = self.render_panels(key, s, black, white, zoom, cx, cy, request)
        return {c: u for c, u in updates.items() if c is not self.v.images[-1]}

    def slice_consistency(self, key, s) -> Updates:
        entry = self.app.cache.get(key)
        if entry is None:
            v = self.v
            text = "No reconstruction to check: press Reconstruct first."
            return {v.consistency_text: text, v.residual_measured: None, v.residual_heldout: None}
        return self.consistency_view(entry, int(s or 0))

    def reset_zoom(self, key, s, black, white, request: gr.Request) -> Updates:
        v = self.v
        return {v.zoom: 1, v.cx: 50, v.cy: 50, **self.render_panels(key, s, black, white, 1, 50, 50, request)}

    def centre_on_click(self, key, s, black, white, zoom, cx, cy, evt: gr.SelectData, request: gr.Request) -> Updates:
        """A click on any panel centres every panel there (and zooms in 2x from the whole image)."""
        entry = self.app.cache.get(key)
        if entry is None or not isinstance(evt.index, list | tuple) or len(evt.index) != 2:
            return self.render_panels(key, s, black, white, zoom, cx, cy, request)
        view, image_shape = View.of(zoom, cx, cy), entry.result.recon.shape[1:]
        shown = upscale(view.apply(np.zeros(image_shape, np.uint8), min_size=1), PANEL_PIXELS).shape
        new = view.centred_on(shown, tuple(evt.index), image_shape)
        v = self.v
        return {
            v.zoom: new.zoom,
            v.cx: new.cx,
            v.cy: new.cy,
            **self.render_panels(key, s, black, white, new.zoom, new.cx, new.cy, request),
        }

    # -- coil maps and sessions -------------------------------------------------------------------

    def coil_maps(self, key, s) -> tuple[str, np.ndarray | None]:
        entry = self.app.cache.get(key)
        if entry is None:
            return "No reconstruction: press Reconstruct first.", None
        try:
            return self.app.coil_maps(entry, int(s or 0))
        except InvalidInputError as err:
            return error_box(_input_problem(err)), None
        except Exception as err:  # e.g. ESPIRiT without a calibration region; keep serving
            log.exception("coil maps failed")
            return error_box(f"the coil maps failed ({type(err).__name__}: {err})"), None

    def drop_session(self, request: gr.Request) -> None:
        self.app.sessions.drop(_session(request))


def wire(page: Page, on: Handlers, demo: gr.Blocks) -> None:
    """Connect the handlers to the page. The output lists fix the order of the API's results."""
    p, v, c = page, page.viewer, page.controls
    checks = [v.consistency_text, v.residual_measured, v.residual_heldout]
    recon_outputs = [p.key, p.error_box, p.summary, v.slider, *v.images, v.mask, v.metrics, p.dl_h5, p.dl_dicom,
                     p.details, p.dl_png, v.black, v.white, v.kspace, *checks, v.tta_box, v.zoom, v.cx, v.cy,
                     v.coil_text, v.coils]  # fmt: skip
    render_inputs = [p.key, v.slider, v.black, v.white, v.zoom, v.cx, v.cy]
    render_outputs = [*v.images, v.metrics, p.dl_png, v.kspace]
    zoom_controls = [v.zoom, v.cx, v.cy]
    quiet = {"trigger_mode": "always_last", "show_progress": "hidden"}

    c.run.click(on.gate, [c.file], [p.gate_ok, *recon_outputs], queue=False, api_visibility="private").then(
        on.reconstruct_checked, [p.gate_ok, *c.inputs], recon_outputs, api_name="reconstruct", concurrency_limit=1
    )
    v.slider.input(on.render, render_inputs, render_outputs, api_name="render", **quiet).then(
        on.slice_consistency, [p.key, v.slider], checks, api_name="consistency", concurrency_limit=1
    )
    for control in (v.black, v.white):
        control.input(on.render_window, render_inputs, render_outputs, api_visibility="private", **quiet)
    for control in zoom_controls:
        control.input(on.render_panels, render_inputs, render_outputs, api_visibility="private", **quiet)
    v.reset.click(on.reset_zoom, render_inputs[:4], [*zoom_controls, *render_outputs], api_visibility="private")
    for image in v.images:
        image.select(on.centre_on_click, render_inputs, [*zoom_controls, *render_outputs], api_visibility="private")
    v.coil_button.click(on.coil_maps, [p.key, v.slider], [v.coil_text, v.coils], api_name="coil_maps",
                        concurrency_limit=1)  # fmt: skip
    demo.unload(on.drop_session)


def build_app(
    checkpoint: str | os.PathLike = DEFAULT_CHECKPOINT,
    examples_dir: str | os.PathLike | None = DEFAULT_EXAMPLES_DIR,
    max_file_size: str | int = DEFAULT_MAX_FILE_SIZE,
    device: str | None = None,
) -> Any:
    """The Gradio Blocks of the app (not launched). ``demo.mri`` is its :class:`MriApp`."""
    app = MriApp(checkpoint, examples_dir, max_file_size, device)
    with gr.Blocks(title="mrirecon: MRI reconstruction", delete_cache=(1800, 3600)) as demo:
        page = page_layout(app)
        wire(page, Handlers(app, page), demo)
    demo.mri = app
    return demo
