"""The app's AgingMapGAN controls: target age, one slider per clinical sign, a paintable aging map.

    panel = AMGANPanel(weights=None, outputs=app.outputs)   # in app.App
    with gr.Tab("AgingMapGAN") as tab:                       # inside gr.Blocks
        build_amgan_tab(panel, photo, face_index, slider=NumberSlider, canvas=PaintCanvas, tab=tab)

The canvas (``gr.ImageEditor``) shows the map built from the face's landmarks and the sliders over the
aligned face (:mod:`ui.map_canvas`); strokes painted on it set the map where they fall
(brightness = score) and the edit uses that painted map for the face shown (the largest chosen face;
other faces use the sliders). "Reset to sliders" drops the strokes. Per photo, detection and
alignment run once (a server-side LRU); a slider move or a stroke only re-runs the generator on the
aligned crop (about 0.25 s at 128 px on one core of a busy CPU) and the paste-back. Nothing runs for
AMGAN until its tab is opened. Beside each edit the tab shows where G paints (1 - its attention mask A,
in red over the face shown). Errors are ``gr.Error`` messages.
"""

from __future__ import annotations

import html
import inspect
from typing import NamedTuple

import gradio as gr
import numpy as np

from faceage.amgan.editor import AMGANEditor
from faceage.amgan.maps import SIGNS, build_aging_map, sign_zone_masks
from faceage.cusp.editor import check_controls
from faceage.cusp.map_render import MapRenderer
from faceage.cusp.mask import PRESETS
from faceage.edit.photo_editor import DEFAULT_MODE, parse_ages
from faceage.errors import FaceAgeError
from faceage.provenance import amgan_metadata, model_metadata, weights_note
from ui.components import error_html, with_api_signature
from ui.map_canvas import canvas_picture, for_display, heat_overlay, paint_map
from ui.session_cache import EditorSessions, face_choice

DEFAULT_AGE = 60  # the tab's target age slider starts here
DEFAULT_SCORE = 0.6  # ... and every sign slider here (the normalised default age)
CANVAS_SCALE = 4  # the canvas is 4x the aligned crop (512 px for 128-px crops)
GRAYS = ["#000000", "#404040", "#808080", "#bfbfbf", "#ffffff"]  # brush scores 0, 0.25, 0.5, 0.75, 1

SIGN_LABELS = {
    "forehead": "Forehead wrinkles",
    "glabella": "Glabellar (inter-ocular) wrinkles",
    "under_eye_right": "Under-eye wrinkles, right",
    "under_eye_left": "Under-eye wrinkles, left",
    "nasolabial_right": "Nasolabial fold, right",
    "nasolabial_left": "Nasolabial fold, left",
    "upper_lip": "Upper-lip wrinkles",
    "ptosis_right": "Lower-face ptosis, right",
    "ptosis_left": "Lower-face ptosis, left",
    "lip_corner_right": "Lip-corner wrinkles, right",
    "lip_corner_left": "Lip-corner wrinkles, left",
}
"""Slider labels; right/left are the subject's, as in clinical atlases."""


def _as_is(rgb, metadata=None, name=None):
    return rgb


class AMGANPanel(EditorSessions):
    """The AMGAN editor (or why it is missing), an LRU of opened photos, and the handlers of the tab."""

    missing_title = "AMGAN weights not loaded"

    def __init__(self, weights=None, outputs=None, cusp=None):
        super().__init__(lambda: AMGANEditor.load(weights))
        self.outputs = outputs or _as_is  # (rgb, metadata, name) -> what the output components get
        self.cusp = cusp  # (photo, face or None) -> the app's cached CUSP session: the default renderer's

    @property
    def renderers(self) -> list[tuple[str, str]]:
        """The renderer choices (label, value): CUSP's decodes first (the default), the AMGAN network with its
        model card's status when its weights are loaded."""
        out = [("CUSP decodes blended by the map (default)", "cusp")] if self.cusp is not None else []
        if self.editor is not None:
            status = self.editor.info.get("card_status") or "see its model card"
            out.append((f"AgingMapGAN network ({status.split('.')[0]})", "amgan"))
        return out

    @staticmethod
    def signs(follow_age, scores) -> dict:
        """The sign scores the sliders set, or none (every zone follows the age) when ``follow_age``."""
        return {} if follow_age else dict(zip(SIGNS, scores))

    def _edit(self, session, age, signs, canvas, face_index, mode, source_age):
        """((before, after), the download PNG with the settings in its metadata, the attention preview)."""

        layers = (canvas or {}).get("layers") or []
        face = session.faces[0]
        painted = paint_map(session.aging_map(age, signs), layers, face.landmarks)
        source_age = parse_ages(source_age)
        out, attention = session.edit_with_attention(
            age, signs, [painted] + [None] * (len(session.faces) - 1), mode=mode, source_age=source_age
        )
        meta = amgan_metadata(
            self.editor, age, signs, face_index, painted_strokes=painted is not None, **session.how(mode, source_age)
        )
        download = self.outputs(out, meta, name=f"faceage_amgan_age{float(age):g}.png")
        preview = self.outputs(for_display(heat_overlay(face.crop, 1 - attention[0])))
        return (self.outputs(session.photo), self.outputs(out)), download, preview

    def edit(self, photo, face_index, age, follow_age, *rest):
        """((before, after), download, attention preview) of the photo edited with the sliders and the strokes
        of the canvas (``rest``: the sign scores, the canvas, the edit mode and the faces' own age)."""
        scores, t = _inputs(rest)
        return self._run(photo, face_index, age, follow_age, scores, t, refresh=False)

    def paint(self, photo, face_index, age, follow_age, *rest):
        """A stroke on the canvas: the edit with it; nothing without a photo (the canvas also fires on load)."""
        if photo is None or not self.renderers:
            return gr.skip(), gr.skip(), gr.skip()
        return self.edit(photo, face_index, age, follow_age, *rest)

    def edit_and_refresh(self, photo, face_index, age, follow_age, *rest):
        """The edit and the canvas redrawn for the sliders, keeping the strokes painted so far."""
        scores, t = _inputs(rest)
        return self._run(photo, face_index, age, follow_age, scores, t, refresh=True)

    def reset(self, photo, face_index, age, follow_age, *rest):
        """The canvas of the sliders' map with no strokes, and the edit it gives."""
        scores, t = _inputs(rest, canvas=False)
        return self._run(photo, face_index, age, follow_age, scores, t, refresh=True)

    def when_opened(self, opened, photo, face_index, age, follow_age, *rest):
        """The edit and its canvas (keeping the strokes of the canvas, the last input; None drops them),
        or nothing while the tab was never opened, there is no photo or no weights: a CUSP user pays nothing."""
        scores, t = _inputs(rest)
        if not opened or photo is None or not self.renderers:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return self._run(photo, face_index, age, follow_age, scores, t, refresh=True)

    def _run(self, photo, face_index, age, follow_age, scores, t: Inputs, refresh: bool):
        try:
            signs = self.signs(follow_age, scores)
            face = face_choice(face_index)
            canvas = t.canvas
            if t.renderer == "cusp" and self.cusp is not None:
                if photo is None:
                    raise gr.Error("Upload a photo with a face first.")
                s = self.cusp(photo, face)
                edited = self._render(s, age, signs, t, face)
                crop, landmarks = s.faces[0].aligned.crop, s.faces[0].aligned.landmarks
                current = build_aging_map(landmarks, crop.shape[0], signs, age)
            else:
                s = self.session(photo, face_index)
                edited = self._edit(s, age, signs, canvas, face, t.mode, t.source_age)
                crop, landmarks, current = s.faces[0].crop, s.faces[0].landmarks, s.aging_map(age, signs)
            if not refresh:
                return edited
            layers = [la for la in (canvas or {}).get("layers") or [] if la is not None]
            zones = sign_zone_masks(landmarks, crop.shape[0])
            picture = canvas_picture(crop, current, CANVAS_SCALE, zones)
            return *edited, {"background": self.outputs(picture), "layers": list(layers), "composite": None}
        except FaceAgeError as e:
            raise gr.Error(error_html(str(e))) from None

    def _render(self, session, age, signs, t: Inputs, face_index):
        """The CUSP renderer's ((before, after), download, preview: where the map departs from the age), with
        the CUSP tab's sigmas."""

        canvas, mode, source_age = t.canvas, t.mode, t.source_age
        _, sigma_m, sigma_g = check_controls(age, t.sigma_m, t.sigma_g)
        maps = getattr(session, "map_renderer", None)
        if maps is None:
            maps = session.map_renderer = MapRenderer(session)  # its ladders live as long as the session
        face = session.faces[0]
        layers = (canvas or {}).get("layers") or []
        painted = paint_map(
            build_aging_map(face.aligned.landmarks, face.x.shape[-1], signs, age), layers, face.aligned.landmarks
        )
        source_age = parse_ages(source_age)
        out = maps.render(age, signs, sigma_m, sigma_g, painted, mode, source_age)
        meta = model_metadata(
            session.editor,
            face_index,
            model="cusp_map",
            age=float(age),
            signs=dict(signs),
            painted_map=painted is not None,
            sigma_m=sigma_m,
            sigma_g=sigma_g,
            **session.how(mode, source_age),
        )
        download = self.outputs(out, meta, name=f"faceage_map_age{float(age):g}.png")
        departure = np.abs(maps.age_map(0, age, signs, painted) - float(age)) / 100.0
        preview = self.outputs(for_display(heat_overlay(face.aligned.crop, np.clip(departure * 2, 0, 1))))
        return (self.outputs(session.photo), self.outputs(out)), download, preview


def named(fn, canvas: bool = True):
    """``fn`` (a handler taking the tab's inputs positionally) with a signature that names them, so the API a
    program sees (``gradio_client``'s ``view_api()``) has the sign names as parameters, the painted map
    optional and every control's default: Gradio reads parameter names and defaults from the signature."""
    P = inspect.Parameter
    params = [
        P("photo", P.POSITIONAL_OR_KEYWORD),
        P("face_index", P.POSITIONAL_OR_KEYWORD, default=-1),
        P("age", P.POSITIONAL_OR_KEYWORD, default=DEFAULT_AGE),
        P("follow_age", P.POSITIONAL_OR_KEYWORD, default=True),
    ]
    params += [P(sign, P.POSITIONAL_OR_KEYWORD, default=DEFAULT_SCORE) for sign in SIGNS]
    if canvas:
        params.append(P("aging_map", P.POSITIONAL_OR_KEYWORD, default=None))
    params += [
        P("mode", P.POSITIONAL_OR_KEYWORD, default=DEFAULT_MODE),
        P("source_age", P.POSITIONAL_OR_KEYWORD, default=""),
        P("renderer", P.POSITIONAL_OR_KEYWORD, default="cusp"),
        P("sigma_m", P.POSITIONAL_OR_KEYWORD, default=Inputs.sigma_m),
        P("sigma_g", P.POSITIONAL_OR_KEYWORD, default=Inputs.sigma_g),
    ]
    return with_api_signature(fn, params)


class Inputs(NamedTuple):
    """A handler's inputs after the sign scores, in the order the tab sends them."""

    canvas: dict | None = None
    mode: str = DEFAULT_MODE
    source_age: str | None = ""
    renderer: str = "amgan"  # what a caller from before the renderer choice meant
    sigma_m: float = PRESETS["custom preservation"][0]
    sigma_g: float = PRESETS["custom preservation"][1]


def _inputs(rest, canvas: bool = True) -> tuple[list, Inputs]:
    """(the sign scores, the rest as :class:`Inputs`) of a handler's trailing inputs; missing ones default."""
    rest = list(rest)
    scores, tail = rest[: len(SIGNS)], rest[len(SIGNS) :]
    return scores, Inputs(*tail) if canvas else Inputs(None, *tail)


def how_changed(mode, source_age) -> tuple:
    """The events that re-run an edit when the page's edit mode (a radio) or the faces' own age (a text box: once
    typed, on Enter or on leaving the box, not on every key) change."""
    return mode.change, source_age.submit, source_age.blur


def follow_values(age, follow, *scores):
    """The sign sliders' values: the normalised age while they follow it, else unchanged."""
    return [age / 100 if follow else x for x in scores]


def sign_sliders(slider=gr.Slider, prefix: str = "amgan_", value: float = DEFAULT_SCORE) -> list:
    """One slider per clinical sign (``SIGNS`` order, scores 0..1, starting at ``value``), four to a row,
    ``elem_id`` = prefix + sign."""
    sliders = []
    for row in range(0, len(SIGNS), 4):
        with gr.Row():
            for sign in SIGNS[row : row + 4]:
                sliders.append(slider(0, 1, value=value, step=0.05, label=SIGN_LABELS[sign], elem_id=prefix + sign))
    return sliders


def build_amgan_tab(
    panel: AMGANPanel, photo, face_index, how, slider=gr.Slider, canvas=gr.ImageEditor, loaded=None, tab=None, sigmas=()
) -> None:
    """The AMGAN controls, inside the current Blocks context.

    ``photo`` and ``face_index`` are the page's shared inputs, ``how`` its edit mode radio and face's own age
    text box (then the renderer radio and ``sigmas``, the CUSP tab's sigma sliders, which the CUSP renderer
    uses: the last inputs of every handler); ``slider`` and ``canvas`` the slider and
    image-editor classes (the app's check what API callers send); ``loaded``: an event that puts a new
    photo in ``photo`` (the example gallery); ``tab``: the gr.Tab holding these controls: AMGAN runs on a
    new photo only once it has been opened.
    """
    gr.Markdown(
        "The map (sliders, or paint on it) says how old each part of the face should look. By default "
        "CUSP's own decodes render it (a ladder of ages per face, blended pixel by pixel); the AgingMapGAN "
        "network can render it instead.",
        elem_id="amgan_about",
    )
    if panel.missing:
        gr.Markdown(f"**AgingMapGAN weights not loaded:** {html.escape(panel.missing)}", elem_id="amgan_missing")
    else:
        gr.Markdown(weights_note(panel.editor.info), elem_id="amgan_weights")
    choices = panel.renderers
    renderer = gr.Radio(
        choices, value=choices[0][1] if choices else None, label="Render the map with", elem_id="amgan_renderer"
    )
    with gr.Row():
        result = gr.ImageSlider(label="Before / after (per sign)", type="numpy", format="png", elem_id="amgan_result")
        canvas = canvas(
            label="Aging map: paint on it (white = most)",
            type="numpy",
            image_mode="RGBA",
            format="png",
            transforms=(),
            elem_id="amgan_canvas",
            brush=gr.Brush(colors=GRAYS, default_color="#ffffff", color_mode="defaults", default_size=24),
            eraser=gr.Eraser(default_size=24),
            sources=(),
            layers=gr.LayerOptions(allow_additional_layers=False, layers=["paint"]),
        )
    with gr.Row():
        age = slider(0, 100, value=DEFAULT_AGE, step=1, label="Target age", elem_id="amgan_age")
        follow = gr.Checkbox(
            True, label="Signs follow the target age (untick, or move a sign, to set each)", elem_id="amgan_follow"
        )
        reset = gr.Button("Reset map to sliders", elem_id="amgan_reset")
        apply = gr.Button("Apply", variant="primary", elem_id="amgan_apply")
    with gr.Row():
        download = gr.File(label="Full-size PNG (settings inside)", interactive=False, elem_id="amgan_download")
        attention = gr.Image(
            label="Where the edit acts (red)", type="numpy", interactive=False, height=280, elem_id="amgan_attention"
        )
    gr.Markdown(
        "Red: where the map departs from the target age (CUSP renderer), or 1 - the attention mask A "
        "(AgingMapGAN network: white in A keeps the input).",
        elem_id="amgan_attention_note",
    )
    with gr.Accordion("Clinical signs (scores 0..1; right/left = the subject's)", open=True):
        sliders = sign_sliders(slider, "amgan_")
    controls = [photo, face_index, age, follow, *sliders]
    mode_and_age, how = how, [*how, renderer, *sigmas]
    model = dict(concurrency_id="model")
    canvas_events = dict(trigger_mode="always_last", show_progress="minimal", **model)
    edited, refreshed = [result, download, attention], [result, download, attention, canvas]
    apply.click(named(panel.edit), [*controls, canvas, *how], edited, api_name="amgan_edit", **model)
    reset.click(named(panel.reset, canvas=False), [*controls, *how], refreshed, api_name="amgan_reset", **model)
    # private events get explicit names too: Gradio would name them after the handler ("edit"), and an
    # explicit name the page gives later (CUSP's /edit) would become /edit_1
    private = dict(api_visibility="private")
    canvas.input(panel.paint, [*controls, canvas, *how], edited, api_name="amgan_paint", **private, **canvas_events)
    for s in (age, *sliders):
        # live while dragging (stale moves dropped); the release also redraws the canvas for the new sliders
        s.input(
            panel.paint,
            [*controls, canvas, *how],
            edited,
            api_name="amgan_live",
            trigger_mode="always_last",
            show_progress="hidden",
            **private,
            **model,
        )
        s.release(
            panel.edit_and_refresh,
            [*controls, canvas, *how],
            refreshed,
            api_name="amgan_slider",
            **private,
            **canvas_events,
        )
    # the sign sliders show the age while they follow it; moving one sets the signs individually
    for trigger in (age.change, follow.change):
        trigger(follow_values, [age, follow, *sliders], sliders, api_name="amgan_follow", queue=False, **private)
    for s in sliders:
        s.input(lambda: False, None, follow, api_name="amgan_unfollow", queue=False, **private)
    if not choices:
        return
    opened, no_strokes = gr.State(tab is None), gr.State(None)
    if tab is not None:  # opening the tab: the map of the photo already there (strokes kept)
        tab.select(lambda: True, None, opened, api_name="amgan_opened", queue=False, **private).then(
            panel.when_opened, [opened, *controls, canvas, *how], refreshed, api_name="amgan_show", **private, **model
        )
    for trigger in (*how_changed(*mode_and_age), renderer.change):  # the edit again, once the tab was opened
        trigger(
            panel.when_opened,
            [opened, *controls, canvas, *how],
            refreshed,
            api_name="amgan_how",
            **private,
            **canvas_events,
        )
    for new_photo in (photo.upload, loaded.then if loaded is not None else None):
        if new_photo is not None:  # a new photo: its map on the canvas (no strokes) and its edit
            new_photo(
                panel.when_opened,
                [opened, *controls, no_strokes, *how],
                refreshed,
                api_name="amgan_photo",
                **private,
                **model,
            )
