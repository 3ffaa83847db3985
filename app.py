"""faceage web app (Gradio): age a face with CUSP, choose how much facial structure survives.

    python app.py            # http://127.0.0.1:7860, offline, on the shipped weights in assets/

Per photo, detection, alignment, the CUSP mask and the encoders run once (cached in a server-side
session); a slider move only re-runs the skip blur and the decoder. Slider events use
``trigger_mode="always_last"`` so stale results are dropped.

Outputs: the chosen face before/after (streamed while a slider moves: ``.input`` with ``always_last``,
the face alone), the whole photo before/after, a pinned result to compare with (A/B), the settings as
text (``faceage.settings``: copied, pasted, URL parameters or a result PNG restore them), the full-resolution result as a PNG whose text chunks carry the
settings (``faceage.provenance``), the mask M with the effect of the skip blur, and on request an age
progression (strip, GIF, MP4; ``faceage.progression``). The example gallery is gathered at start-up
(``faceage.examples``: ``$FACEAGE_EXAMPLES``, else the UTKFace test split when present) and never shipped.

Bad input gets a ``gr.Error`` that says what was wrong and what to do, never a server error: the
upload is read by ``faceage.io`` (limits, modes, EXIF), not decoded by Gradio first, and numbers sent
through the API are checked before Gradio's own handling would fail on them. Limits:
``docs/reliability.md``.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import shutil
import tempfile
import threading
import urllib.parse
import weakref
from pathlib import Path
from typing import Callable

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from faceage import progression as prog  # noqa: E402
from faceage import settings  # noqa: E402
from faceage.cusp_mask import PRESETS, SIGMA_MAX, blur_skip  # noqa: E402
from faceage.map_canvas import for_display, heat_overlay  # noqa: E402
from faceage.errors import CheckpointError, FaceAgeError, MissingWeightsError  # noqa: E402
from faceage.examples import ENV as EXAMPLES_ENV, MAX_EXAMPLES, gather_examples  # noqa: E402
from faceage.io import MAX_BYTES, save_png  # noqa: E402
from faceage.photo_editor import DEFAULT_MODE, parse_ages, resize_square  # noqa: E402
from faceage.provenance import edit_metadata, weights_note  # noqa: E402
from faceage.session_cache import SessionCache  # noqa: E402
from faceage.ui_amgan import AMGANPanel, build_amgan_tab, how_changed  # noqa: E402
from faceage.ui_video import build_video_tab  # noqa: E402

MAX_SESSIONS = 8  # photos kept in the server-side cache (LRU)
QUEUE_SIZE = 32  # requests waiting beyond this are refused ("queue is full") instead of piling up
FACE_VIEW = 768  # px: the face view's largest side (a face smaller in the photo is shown at its own resolution)
FACE_VIEW_HEIGHT = 560  # px on screen: the face view is shown large whatever its resolution
FACE_MARGIN = 0.2  # the face view's margin around the canonical face frame, as a fraction of its side
THUMBNAIL = 128  # px: the face picker's pictures
GRID_TILE = 256  # px: each face of the presets grid
KEPT_OUTPUTS = 64  # result files kept for Gradio to copy (it does so as soon as a handler returns)


# Gradio writes type stubs for these component subclasses to app.pyi on import (git ignores it).
class PhotoInput(gr.Image):
    """``gr.Image`` that hands the uploaded file's path to the handler unopened.

    Stock ``gr.Image`` decodes the upload with PIL before the handler runs, so a corrupt file or a
    decompression bomb fails there as an opaque server error; ``faceage.io`` reads it instead.
    """

    is_template = True  # rendered by the frontend as a plain image component

    def preprocess(self, payload):
        if payload is None or payload.path is None:  # nothing, or an inline data: URL
            return super().preprocess(payload)
        return payload.path


class PaintCanvas(gr.ImageEditor):
    """``gr.ImageEditor`` that answers an unreadable painted layer from an API caller with a message.

    Stock ``gr.ImageEditor`` decodes the layers with PIL before the handler runs, so a corrupt file would
    fail there as an opaque server error (a browser always sends PNG).
    """

    is_template = True

    def preprocess(self, payload):
        from PIL import Image

        try:
            return super().preprocess(payload)
        except (OSError, ValueError, Image.DecompressionBombError):
            raise gr.Error("The painted aging map could not be read: its background and layers must be PNG "
                           "images (API callers: send the canvas value the app returns).") from None


class NumberSlider(gr.Slider):
    """``gr.Slider`` that refuses a non-number or out-of-range value from an API caller with a message."""

    is_template = True

    def preprocess(self, payload):
        return super().preprocess(checked_number(self.label, payload, self.minimum, self.maximum))


class NumberBox(gr.Number):
    """``gr.Number`` that refuses a non-number from an API caller with a message (empty is allowed)."""

    is_template = True

    def preprocess(self, payload):
        if payload is not None:
            checked_number(self.label, payload, -math.inf, math.inf)
        return super().preprocess(payload)


def checked_number(label: str, value, low: float, high: float) -> float:
    """``value`` if it is a finite number in ``low..high``, else a ``gr.Error`` naming the control."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        wanted = f"a number from {low:g} to {high:g}" if math.isfinite(high) else "a finite number"
        raise gr.Error(error_html(f"{label} must be {wanted}, got {value!r}: "
                                  "set the control again (API callers: send a number)."))
    return value


def error_html(text: str) -> str:
    """``text`` made safe for ``gr.Error``, which renders HTML (quotes are harmless in text, kept readable)."""
    return html.escape(text, quote=False)


class OutputFiles:
    """The files a handler returns (images, the download, animations): named by content, written once, atomically.

    Handlers return these paths instead of arrays because Gradio 6.31 saves a returned array by
    rewriting ``<cache>/<hash of the PNG>/image.png`` in place: when two requests give the same
    image (the "before" photo and the mask on every slider move) a download of the first copy in
    progress is cut short ("peer closed connection"), which the load test caught. A returned file
    is instead copied into Gradio's cache under a temporary name and renamed, once.
    Each file lies in its own folder ``<content hash>/<name>``, so a download keeps a readable name.
    """

    def __init__(self, keep: int = KEPT_OUTPUTS):
        self.folder = Path(tempfile.mkdtemp(prefix="faceage-outputs-"))
        self.keep = keep
        self._lock = threading.Lock()
        weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)

    def __call__(self, rgb: np.ndarray, metadata: dict | None = None, name: str = "image.png") -> str:
        """``rgb`` as a PNG (with ``metadata`` as text chunks)."""
        rgb = np.ascontiguousarray(rgb)
        key = str(rgb.shape).encode() + rgb.tobytes() + json.dumps(metadata, sort_keys=True).encode()
        return self.file(key, name, lambda path: save_png(rgb, path, metadata))

    def file(self, key: bytes, name: str, write: Callable[[Path], object]) -> str:
        """The file ``name`` for content ``key``, made by ``write(path)`` unless it exists already."""
        path = self.folder / hashlib.sha1(key + name.encode()).hexdigest() / name
        with self._lock:
            if path.exists():
                os.utime(path.parent)  # newest again: not pruned before Gradio copies it
                return str(path)
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_name(".tmp-" + name)  # same suffix: writers pick the format from it
            try:
                write(tmp)
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            for old in sorted(self.folder.iterdir(), key=lambda d: d.stat().st_mtime)[:-self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        return str(path)


class App:
    """Holds the editor (or the reason it could not load), an LRU of opened photos and the result files."""

    def __init__(self, weights=None, examples=None, amgan_weights=None):
        from faceage.editor import CUSPEditor

        try:
            self.editor, self.missing = CUSPEditor.load(weights), None
        except (MissingWeightsError, CheckpointError) as e:  # the page still serves, saying why
            self.editor, self.missing = None, str(e)
        self.cache = SessionCache(self.editor, MAX_SESSIONS)
        self._last = None  # (session, controls, edited photo): the download reuses the edit just shown
        self.outputs = OutputFiles()
        # the per-sign tab (faceage.ui_amgan): CUSP renders its maps by default, through this app's sessions
        self.amgan = AMGANPanel(amgan_weights, self.outputs, cusp=self.session if self.editor is not None else None)
        self.examples = self._gather_examples(examples)

    def _gather_examples(self, folder) -> list[tuple[str, str]]:
        """``[(photo, label)]`` for the gallery (``faceage.examples``); ``[]`` if there are none or they fail."""
        dest = Path(tempfile.mkdtemp(prefix="faceage-examples-"))
        weakref.finalize(self, shutil.rmtree, dest, ignore_errors=True)
        try:
            return gather_examples(dest, folder)
        except (OSError, FaceAgeError) as e:  # a broken folder costs the gallery, not the app
            print(f"faceage: no example gallery ({e})")
            return []

    def session(self, path, face_index: int | None):
        """The cached session of the photo file at ``path`` (opened from its bytes: no path in messages)."""
        if self.editor is None:
            raise gr.Error(error_html(self.missing), title="Weights not loaded")
        return self.cache.get(path, face_index)

    def _edited(self, photo, face_index, age, sigma_m, sigma_g, mode=DEFAULT_MODE, source_age=""):
        """(session, face, edited full-resolution photo) of the photo file ``photo`` at these controls."""
        if photo is None:
            raise gr.Error("Upload a photo with a face first.")
        face = _face(face_index)
        s = self.session(photo, face)
        source_age = parse_ages(source_age)
        controls = (age, sigma_m, sigma_g, mode, source_age)
        last = self._last
        if last is not None and last[0] is s and last[1] == controls:
            return s, face, last[2]
        out = s.edit(age, sigma_m, sigma_g, mode=mode, source_age=source_age)
        self._last = (s, controls, out)
        return s, face, out

    def edit(self, photo, face_index, age, sigma_m, sigma_g, mode=DEFAULT_MODE, source_age=""):
        """Age every chosen face of the photo file ``photo``: PNG paths of (before, after) and the mask preview.

        ``mode``: "detail" (the model's change on the photo's own pixels) or "replace" (the generated face);
        ``source_age``: the faces' own age as typed (:func:`faceage.photo_editor.parse_ages`; empty: the
        classifier's reading, which :meth:`face_ages` shows)."""
        try:
            s, _, out = self._edited(photo, face_index, age, sigma_m, sigma_g, mode, source_age)
            return (self.outputs(s.photo), self.outputs(out)), self.outputs(mask_preview(s, sigma_m, sigma_g))
        except FaceAgeError as e:
            raise gr.Error(error_html(str(e))) from None

    def edit_if_photo(self, photo, *controls):
        """:meth:`edit` once there is a photo (settings restored before any upload change only the controls)."""
        return (gr.skip(), gr.skip()) if photo is None else self.edit(photo, *controls)

    def download(self, photo, face_index, age, sigma_m, sigma_g, mode=DEFAULT_MODE, source_age=""):
        """The edited photo at full resolution as a PNG whose text chunks carry the settings."""
        try:
            s, face, out = self._edited(photo, face_index, age, sigma_m, sigma_g, mode, source_age)
            how = s.how(mode, parse_ages(source_age))
        except FaceAgeError as e:
            raise gr.Error(error_html(str(e))) from None
        meta = edit_metadata(self.editor, age, sigma_m, sigma_g, face, **how)
        return self.outputs(out, meta, name=f"faceage_age{age:g}.png")

    def face_view(self, photo, face_index, age, sigma_m, sigma_g, mode=DEFAULT_MODE, source_age=""):
        """The first chosen face (the largest when all), before and after, upright and with a margin, at its own
        resolution (at most ``FACE_VIEW`` px): what the page shows large, and streams while a slider is dragged."""
        if photo is None:
            raise gr.Error("Upload a photo with a face first.")
        try:
            s = self.session(photo, _face(face_index))
            last, controls = self._last, (age, sigma_m, sigma_g, mode, parse_ages(source_age))
            if last is not None and last[0] is s and last[1] == controls:  # the whole photo is edited already
                after = s.face_view(last[2], 0, FACE_VIEW, FACE_MARGIN)
            else:  # a slider moving: this face alone (a group photo's other faces wait for the release)
                after = s.edit_face(age, sigma_m, sigma_g, 0, mode, controls[-1], FACE_VIEW, FACE_MARGIN)
            return self.outputs(s.face_view(s.photo, 0, FACE_VIEW, FACE_MARGIN)), self.outputs(after)
        except FaceAgeError as e:
            raise gr.Error(error_html(str(e))) from None

    def settings_text(self, face_index, age, sigma_m, sigma_g, mode=DEFAULT_MODE, source_age="") -> str:
        """The settings box: this edit's settings as text (``faceage.settings``), to copy and paste back."""
        return settings.to_text(age, sigma_m, sigma_g, mode, source_age, _face(face_index))

    def restore(self, text) -> tuple:
        """The controls (face, age, sigma_m, sigma_g, mode, face's own age) set from a settings text or a
        result PNG's path; a control the settings do not name is left as it is."""
        try:
            found = settings.from_png(text) if str(text).lower().endswith(".png") else settings.parse(text)
        except FaceAgeError as e:
            raise gr.Error(error_html(str(e))) from None
        return tuple(found.get(k, gr.skip()) for k in ("face", "age", "sigma_m", "sigma_g", "mode", "source_age"))

    def restore_url(self, request: gr.Request) -> tuple:
        """The controls from the page's URL parameters (``?age=70&sigma_m=8``); nothing when there are none."""
        query = {k: v for k, v in dict(getattr(request, "query_params", None) or {}).items() if k in settings.KEYS}
        if not query:
            return (gr.skip(),) * 6
        return self.restore(urllib.parse.urlencode(query))

    def presets_grid(self, photo, face_index, age, mode=DEFAULT_MODE, source_age=""):
        """The chosen face (the largest when all) at this age with each structure-preservation preset, beside
        the input: choose a preset by looking."""
        if photo is None:
            raise gr.Error("Upload a photo with a face first.")
        try:
            s = self.session(photo, _face(face_index))
            ages = parse_ages(source_age)
            tiles = [prog.labelled(s.face_view(s.photo, 0, GRID_TILE, FACE_MARGIN), "input")]
            tiles += [prog.labelled(s.edit_face(age, sm, sg, 0, mode, ages, GRID_TILE, FACE_MARGIN), name)
                      for name, (sm, sg) in PRESETS.items()]
        except FaceAgeError as e:
            raise gr.Error(error_html(str(e))) from None
        side = min(t.shape[0] for t in tiles)
        return self.outputs(np.concatenate([resize_square(t, side) for t in tiles], axis=1))

    def face_thumbnails(self, photo):
        """Every face found in the photo file ``photo`` (largest first), upright, side by side and labelled with
        its number and the age the classifier reads: the page's face picker (click one: :func:`_picked`)."""
        if photo is None or self.editor is None:
            return None
        try:
            s = self.session(photo, None)
        except FaceAgeError:
            return None  # the edit that runs beside this says what is wrong
        tiles = [prog.labelled(resize_square(s.face_view(s.photo, i, THUMBNAIL, FACE_MARGIN), THUMBNAIL),
                               f"{i}: {a:.0f}") for i, a in enumerate(s.read_ages)]
        return self.outputs(np.concatenate(tiles, axis=1))

    def face_ages(self, photo, face_index) -> str:
        """One line for the page: each chosen face's age as the classifier reads it (what a detail-preserving
        edit starts from unless the user sets the face's own age)."""
        if photo is None or self.editor is None:
            return ""
        try:
            session = self.session(photo, _face(face_index))
        except FaceAgeError:
            return ""  # the edit that runs beside this says what is wrong
        ages = session.read_ages
        read = ", ".join(f"about {a:.0f}" for a in ages)
        return "\n\n".join([f"The age classifier reads {'this face' if len(ages) == 1 else 'these faces (largest first)'} "
                              f"as **{read}**. The edit starts from that age: if it is wrong, type the face's own age.",
                              *session.notes])

    def progression(self, photo, face_index, sigma_m, sigma_g, mode=DEFAULT_MODE, source_age="",
                    progress=gr.Progress()):
        """The chosen face (the largest when all) across ``prog.DEFAULT_AGES``: strip PNG, GIF, and the files."""
        if photo is None:
            raise gr.Error("Upload a photo with a face first.")
        ages = prog.DEFAULT_AGES
        try:
            s = self.session(photo, _face(face_index))
            source_age = parse_ages(source_age)
            frames = prog.progression(s, ages, sigma_m, sigma_g, mode=mode, source_age=source_age, on_frame=lambda i, a:
                                      progress(i / len(ages), desc=f"age {a:g} ({i + 1}/{len(ages)})"))
            how = s.how(mode, source_age)
        except FaceAgeError as e:
            raise gr.Error(error_html(str(e))) from None
        progress(1.0, desc="writing the GIF and MP4")
        meta = edit_metadata(self.editor, list(ages), sigma_m, sigma_g, prog.shown_face(_face(face_index)), **how)
        strip = self.outputs(prog.strip(frames), meta, name="faceage_progression.png")
        gif, *mp4 = self._animations(frames)
        return strip, gif, [strip, gif, *mp4]

    def _animations(self, frames) -> list[str]:
        """The GIF of ``frames``, and the MP4 when this OpenCV can write one."""
        key = np.ascontiguousarray(prog.strip(frames)).tobytes()
        files = [self.outputs.file(key, "faceage_progression.gif", lambda p: prog.save_gif(frames, p))]
        try:
            mp4 = self.outputs.file(key, "faceage_progression.mp4", lambda p: _written(prog.save_mp4(frames, p)))
            files.append(mp4)
        except NoEncoder:
            pass  # the strip and the GIF only
        return files


class NoEncoder(Exception):
    """OpenCV could not write an MP4 here."""


def _written(path):
    """``save_mp4``'s answer, or ``NoEncoder`` (so no empty MP4 is kept)."""
    if path is None:
        raise NoEncoder
    return path


def _face(face_index) -> int | None:
    """The face control's value as ``CUSPEditor.open`` wants it: None (every face) or an index."""
    return None if face_index in (None, -1) else int(face_index)


def _pin(face_result, face_index, age, sigma_m, sigma_g, mode, source_age):
    """Keep the face view's result as A: (state, a note of its settings, the comparison showing A twice)."""
    if not face_result or face_result[1] is None:
        raise gr.Error("Edit a photo first: the result shown is what gets pinned.")
    note = f"**A:** {settings.to_text(age, sigma_m, sigma_g, mode, source_age, _face(face_index))}"
    return face_result[1], note, (face_result[1], face_result[1])


def _compare(pinned, face_result):
    """The comparison: A (pinned) beside the face view's current result, once something is pinned."""
    if pinned is None or not face_result or face_result[1] is None:
        return gr.skip()
    return pinned, face_result[1]


def _picked(evt: gr.SelectData) -> int:
    """The face number under the click in the face picker (its tiles are ``THUMBNAIL`` px wide; 0 = largest)."""
    return int(evt.index[0] // THUMBNAIL)


def mask_preview(session, sigma_m, sigma_g) -> np.ndarray:
    """The first face: the CUSP mask M as a red heat map over the aligned crop (left), and the crop blurred
    as Eq. 2 blurs the skip features (right): sigma_m inside M, sigma_g outside, i.e. the structure the
    decoder is free to change. Shown at 2x."""
    from faceage.editor import to_uint8

    face = session.faces[0]
    crop = face.aligned.crop if face.aligned is not None else session.photo
    overlay = heat_overlay(crop, session.mask_images()[0])
    blurred = to_uint8(blur_skip(face.x, face.mask, sigma_m, sigma_g)[0])
    return for_display(np.concatenate([overlay, blurred], axis=1))


def build(app: App) -> gr.Blocks:
    with gr.Blocks(title="faceage", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# faceage\nAge or rejuvenate a face. **CUSP**: **sigma_m** loosens structure where the "
                    "age classifier looks (the mask), **sigma_g** everywhere: higher = more shape change. "
                    "**Per clinical sign**: age each sign on its own, or paint where the face ages.")
        if app.missing:
            gr.Markdown(f"**CUSP weights not loaded:** {html.escape(app.missing)}", elem_id="missing")
        with gr.Row():
            photo = PhotoInput(label="Photo", type="filepath", sources=["upload", "webcam", "clipboard"],
                               elem_id="photo")
            face_result = gr.ImageSlider(label="The face: before / after (live)",
                                         type="numpy", format="png", height=FACE_VIEW_HEIGHT, elem_id="face_result")
        result = gr.ImageSlider(label="The whole photo: before / after", type="numpy", format="png",
                                elem_id="result")
        example_loaded = _examples(app, photo)
        with gr.Row():
            with gr.Column(scale=2):
                face_pick = gr.Image(label="Faces (click one; number: read age)", type="filepath",
                                     interactive=False, height=THUMBNAIL + 40, buttons=[], elem_id="faces")
                with gr.Row():
                    all_faces = gr.Button("Edit all faces", size="sm", elem_id="all_faces")
                    face_index = NumberBox(value=-1, precision=0, label="Face (-1 = all, 0 = largest)",
                                           visible=False, elem_id="face_index")
            mode = gr.Radio([("Keep the photo: apply the model's change to its own pixels", "detail"),
                             ("Replace the face with the model's output", "replace")], value=DEFAULT_MODE,
                            label="Edit", elem_id="mode")
            source_age = gr.Textbox("", label="The face's own age", info="Empty: as the classifier reads it. With "
                                    "several faces, one per face, e.g. 34, 61", elem_id="source_age")
        read_ages = gr.Markdown("", label="face ages", elem_id="read_ages")
        with gr.Tabs():
            with gr.Tab("CUSP: target age, structure preservation", id="cusp", elem_id="cusp_tab"):
                if app.editor is not None:
                    gr.Markdown(weights_note(app.editor.info), elem_id="cusp_weights")
                with gr.Row():
                    age = NumberSlider(0, 100, value=70, step=1, label="Target age", elem_id="age")
                    sigma_m = NumberSlider(0, SIGMA_MAX, value=PRESETS["custom preservation"][0], step=0.1,
                                           label="sigma_m (local blur, in the mask)", elem_id="sigma_m")
                    sigma_g = NumberSlider(0, SIGMA_MAX, value=PRESETS["custom preservation"][1], step=0.1,
                                           label="sigma_g (global blur)", elem_id="sigma_g")
                with gr.Row():
                    preset = gr.Radio(list(PRESETS), value="custom preservation",
                                      label="Structure preservation preset")
                    apply = gr.Button("Apply", variant="primary")
                with gr.Row():
                    settings_box = gr.Textbox(label="Settings: copy them to keep; paste (or open a result PNG) and "
                                              "press Enter to restore", buttons=["copy"], elem_id="settings")
                    restore_png = gr.UploadButton("Restore from a result PNG", file_types=[".png"],
                                                  elem_id="restore_png")
                with gr.Accordion("Compare: pin a result, then change the settings", open=False, elem_id="compare_box"):
                    with gr.Row():
                        pin = gr.Button("Pin this result as A", elem_id="pin")
                        pinned_note = gr.Markdown("", elem_id="pinned_note")
                    compare = gr.ImageSlider(label="A (pinned) / B (now)", type="numpy", format="png",
                                             height=FACE_VIEW_HEIGHT, elem_id="compare")
                    make_grid = gr.Button("The face at this age with each preset", elem_id="make_grid")
                    grid = gr.Image(label="Presets", type="filepath", interactive=False, elem_id="presets_grid")
                pinned = gr.State(None)
                with gr.Row():
                    mask = gr.Image(label="Mask M | the skip blur it steers", type="numpy",
                                    interactive=False, height=280, elem_id="mask")
                    download = gr.File(label="Full-size PNG (settings inside)",
                                       interactive=False, elem_id="download")
                with gr.Accordion("Age progression", open=True):
                    ages = ", ".join(f"{a:g}" for a in prog.DEFAULT_AGES)
                    make_progression = gr.Button(f"Make an age progression ({ages})",
                                                 elem_id="make_progression")
                    with gr.Row():
                        strip = gr.Image(label="Ages", type="filepath", interactive=False, height=240,
                                         elem_id="strip")
                        animation = gr.Image(label="Animated", type="filepath", interactive=False, height=240,
                                             elem_id="animation")
                        progression_files = gr.File(label="Strip, GIF, MP4", file_count="multiple",
                                                    interactive=False, height=240, elem_id="progression_files")
            with gr.Tab("Per clinical sign: paintable aging map", id="amgan", elem_id="amgan_tab") as t:
                build_amgan_tab(app.amgan, photo, face_index, slider=NumberSlider, canvas=PaintCanvas,
                                loaded=example_loaded, tab=t, how=[mode, source_age], sigmas=[sigma_m, sigma_g])
            with gr.Tab("Video", id="video", elem_id="video_tab"):
                build_video_tab(app)
        inputs = [photo, face_index, age, sigma_m, sigma_g, mode, source_age]
        model = dict(concurrency_id="model")
        new_photo = [photo.upload(app.edit, inputs, [result, mask], api_name="edit_photo", **model)]
        edits = []
        for slider in (age, sigma_m, sigma_g):
            edits.append(slider.release(app.edit, inputs, [result, mask], trigger_mode="always_last",
                                        show_progress="minimal", api_name="edit_slider", api_visibility="private",
                                        **model))
        clicked = apply.click(app.edit, inputs, [result, mask], api_name="edit", **model)
        clicked.then(app.download, inputs, download, api_name="download", **model)
        if example_loaded is not None:  # clicking an example face edits it
            new_photo.append(example_loaded.then(app.edit, inputs, [result, mask], api_visibility="private", **model))
        new_photo[0].then(app.face_ages, [photo, face_index], read_ages, api_name="face_ages", **model)
        for e in new_photo[1:]:  # a new photo: its faces' ages as the classifier reads them
            e.then(app.face_ages, [photo, face_index], read_ages, api_visibility="private", **model)
        face_index.change(app.face_ages, [photo, face_index], read_ages, api_visibility="private", **model)
        for i, e in enumerate(new_photo):  # the faces found, as pictures to pick from
            e.then(app.face_thumbnails, photo, face_pick, api_name="faces" if i == 0 else "faces_example",
                   api_visibility="public" if i == 0 else "private", **model)
        face_pick.select(_picked, None, face_index, api_name="pick_face", api_visibility="private", queue=False)
        all_faces.click(lambda: -1, None, face_index, api_name="all_faces", api_visibility="private", queue=False)
        edits.append(face_index.change(app.edit, inputs, [result, mask], trigger_mode="always_last",
                                       api_name="edit_face_choice", api_visibility="private", **model))
        for trigger in how_changed(mode, source_age):  # the age box: once typed (Enter or leaving it), not per key
            edits.append(trigger(app.edit, inputs, [result, mask], trigger_mode="always_last", show_progress="minimal",
                                 api_name="edit_how", api_visibility="private", **model))
        edits += new_photo
        clicked.then(app.face_view, inputs, face_result, api_name="face_view", **model)
        controls = [face_index, age, sigma_m, sigma_g, mode, source_age]
        restored = [settings_box.submit(app.restore, settings_box, controls, api_name="restore", queue=False),
                    restore_png.upload(app.restore, restore_png, controls, api_name="restore_png",
                                       api_visibility="private", queue=False),
                    demo.load(app.restore_url, None, controls, api_name="restore_url", api_visibility="private",
                              queue=False)]
        edits += [r.then(app.edit_if_photo, inputs, [result, mask], api_name="edit_restored",
                         api_visibility="private", **model) for r in restored]
        for e in edits:  # the face view, settings and download follow every edit (App keeps the last edit)
            e.then(app.face_view, inputs, face_result, api_name="face_view_after", api_visibility="private", **model)
            e.then(app.settings_text, controls, settings_box, api_name="settings", api_visibility="private",
                   queue=False)
            e.then(app.download, inputs, download, api_visibility="private", **model)
        make_grid.click(app.presets_grid, [photo, face_index, age, mode, source_age], grid, api_name="presets_grid",
                        **model)
        pin.click(_pin, [face_result, *controls], [pinned, pinned_note, compare], api_name="pin",
                  api_visibility="private", queue=False)
        face_result.change(_compare, [pinned, face_result], compare, api_name="compare", api_visibility="private",
                           trigger_mode="always_last", show_progress="hidden", queue=False)
        for slider in (age, sigma_m, sigma_g):  # live: the face while dragging, stale moves dropped
            slider.input(app.face_view, inputs, face_result, trigger_mode="always_last", show_progress="hidden",
                         api_name="face_view_live", api_visibility="private", **model)
        preset.change(lambda p: PRESETS[p], preset, [sigma_m, sigma_g], api_name="preset", api_visibility="private")
        make_progression.click(app.progression, [photo, face_index, sigma_m, sigma_g, mode, source_age],
                               [strip, animation, progression_files], api_name="progression", **model)
    return demo


def _examples(app: App, photo):
    """The gallery of example faces, a click putting one into ``photo`` (that event is returned), or a
    note saying how to get one (``None``)."""
    if not app.examples:
        gr.Markdown(f"No example faces here: set `{EXAMPLES_ENV}` to a folder of photos (or put the UTKFace "
                    "data at `../shared/data/utkface`) and restart.", elem_id="no_examples")
        return None
    paths, labels = zip(*app.examples)
    # thumbnails of a fixed size whatever their number (a gr.Gallery stretches a few across the page)
    ex = gr.Examples([[p] for p in paths], [photo], label=f"Example faces, click one: {', '.join(labels)}",
                     examples_per_page=MAX_EXAMPLES, cache_examples=False, elem_id="examples")
    return ex.load_input_event


def launch(demo: gr.Blocks, **kwargs):
    """Queue and serve ``demo`` with faceage's limits (one model job at a time, bounded queue and uploads)."""
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo.launch(max_file_size=MAX_BYTES, **kwargs)


if __name__ == "__main__":
    # FACEAGE_HOST, else Gradio's GRADIO_SERVER_NAME (0.0.0.0 on Hugging Face Spaces), else 127.0.0.1
    launch(build(App()), server_name=os.environ.get("FACEAGE_HOST"))
