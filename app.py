"""faceage web app (Gradio): age a face with CUSP, choose how much facial structure survives.

    python app.py            # http://127.0.0.1:7860, offline, on the shipped weights in assets/

Per photo, detection, alignment, the CUSP mask and the encoders run once (cached in a server-side
session); a slider move only re-runs the skip blur and the decoder. Slider events use
``trigger_mode="always_last"`` so stale results are dropped.

Bad input gets a ``gr.Error`` that says what was wrong and what to do, never a server error: the
upload is read by ``faceage.io`` (limits, modes, EXIF), not decoded by Gradio first, and numbers sent
through the API are checked before Gradio's own handling would fail on them. Limits:
``docs/reliability.md``.
"""

from __future__ import annotations

import hashlib
import html
import math
import os
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from faceage.cusp_mask import PRESETS, SIGMA_MAX  # noqa: E402
from faceage.errors import FaceAgeError, MissingWeightsError  # noqa: E402
from faceage.io import MAX_BYTES, save_png  # noqa: E402

MAX_SESSIONS = 8  # photos kept in the server-side cache (LRU)
QUEUE_SIZE = 32  # requests waiting beyond this are refused ("queue is full") instead of piling up
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


def read_upload(path) -> bytes:
    """The uploaded file's bytes, at most ``MAX_BYTES + 1`` (``load_image`` refuses anything longer)."""
    with open(path, "rb") as f:
        return f.read(MAX_BYTES + 1)


class OutputFiles:
    """The images a handler returns, as PNG files: named by content, written once and atomically.

    Handlers return these paths instead of arrays because Gradio 6.31 saves a returned array by
    rewriting ``<cache>/<hash of the PNG>/image.png`` in place: when two requests give the same
    image (the "before" photo and the mask on every slider move) a download of the first copy in
    progress is cut short ("peer closed connection"), which the load test caught. A returned file
    is instead copied into Gradio's cache under a temporary name and renamed, once.
    """

    def __init__(self, keep: int = KEPT_OUTPUTS):
        self.folder = Path(tempfile.mkdtemp(prefix="faceage-outputs-"))
        self.keep = keep
        self._lock = threading.Lock()
        weakref.finalize(self, shutil.rmtree, self.folder, ignore_errors=True)

    def __call__(self, rgb: np.ndarray) -> str:
        rgb = np.ascontiguousarray(rgb)
        path = self.folder / (hashlib.sha1(str(rgb.shape).encode() + rgb.tobytes()).hexdigest() + ".png")
        with self._lock:
            if path.exists():
                os.utime(path)  # newest again: not pruned before Gradio copies it
            else:
                save_png(rgb, path)
                for old in sorted(self.folder.glob("*.png"), key=lambda f: f.stat().st_mtime)[:-self.keep]:
                    old.unlink()
        return str(path)


class App:
    """Holds the editor (or the reason it could not load), an LRU of opened photos and the result files."""

    def __init__(self, weights=None):
        from faceage.editor import CUSPEditor

        try:
            self.editor, self.missing = CUSPEditor.load(weights), None
        except MissingWeightsError as e:
            self.editor, self.missing = None, str(e)
        self.sessions: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()
        self.outputs = OutputFiles()

    def session(self, path, face_index: int | None):
        """The cached session of the photo file at ``path`` (opened from its bytes: no path in messages)."""
        if self.editor is None:
            raise gr.Error(error_html(self.missing), title="Weights missing")
        data = read_upload(path)
        key = hashlib.sha1(data).hexdigest() + f":{face_index}"
        with self._lock:
            if key not in self.sessions:
                self.sessions[key] = self.editor.open(data, face_index=face_index)
                while len(self.sessions) > MAX_SESSIONS:
                    self.sessions.popitem(last=False)
            self.sessions.move_to_end(key)
            return self.sessions[key]

    def edit(self, photo, face_index, age, sigma_m, sigma_g):
        """Age every chosen face of the photo file ``photo``: PNG paths of (before, after) and the mask heat map."""
        if photo is None:
            raise gr.Error("Upload a photo with a face first.")
        try:
            s = self.session(photo, None if face_index in (None, -1) else int(face_index))
            out = s.edit(age, sigma_m, sigma_g)
            return (self.outputs(s.photo), self.outputs(out)), self.outputs(mask_overlay(s))
        except FaceAgeError as e:
            raise gr.Error(error_html(str(e))) from None


def mask_overlay(session) -> np.ndarray:
    """The CUSP mask M of the first face as a red heat map over the aligned crop."""
    face = session.faces[0]
    crop = face.aligned.crop if face.aligned is not None else session.photo
    m = session.mask_images()[0][..., None]
    heat = np.concatenate([np.ones_like(m), np.zeros_like(m), np.zeros_like(m)], axis=2) * 255
    return (crop * (1 - 0.6 * m) + heat * 0.6 * m).astype(np.uint8)


def build(app: App) -> gr.Blocks:
    with gr.Blocks(title="faceage", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# faceage\nAge or rejuvenate a face. **sigma_m** loosens structure where the age "
                    "classifier looks (the mask), **sigma_g** everywhere: higher = more shape change.")
        if app.missing:
            gr.Markdown(f"**Weights missing:** {html.escape(app.missing)}", elem_id="missing")
        with gr.Row():
            photo = PhotoInput(label="Photo", type="filepath", sources=["upload", "webcam", "clipboard"],
                               elem_id="photo")
            result = gr.ImageSlider(label="Before / after", type="numpy", format="png", elem_id="result")
        with gr.Row():
            age = NumberSlider(0, 100, value=70, step=1, label="Target age", elem_id="age")
            sigma_m = NumberSlider(0, SIGMA_MAX, value=PRESETS["custom preservation"][0], step=0.1,
                                   label="sigma_m (local blur, in the mask)", elem_id="sigma_m")
            sigma_g = NumberSlider(0, SIGMA_MAX, value=PRESETS["custom preservation"][1], step=0.1,
                                   label="sigma_g (global blur)", elem_id="sigma_g")
        with gr.Row():
            preset = gr.Radio(list(PRESETS), value="custom preservation", label="Structure preservation preset")
            face_index = NumberBox(value=-1, precision=0, label="Face (-1 = all, 0 = largest)")
            mask = gr.Image(label="CUSP mask M", type="numpy", interactive=False, elem_id="mask")
        inputs = [photo, face_index, age, sigma_m, sigma_g]
        preset.change(lambda p: PRESETS[p], preset, [sigma_m, sigma_g])
        photo.upload(app.edit, inputs, [result, mask], api_name="edit_photo", concurrency_id="model")
        for slider in (age, sigma_m, sigma_g):
            slider.release(app.edit, inputs, [result, mask], trigger_mode="always_last",
                           show_progress="minimal", concurrency_id="model")
        gr.Button("Apply", variant="primary").click(app.edit, inputs, [result, mask], api_name="edit",
                                                    concurrency_id="model")
    return demo


def launch(demo: gr.Blocks, **kwargs):
    """Queue and serve ``demo`` with faceage's limits (one model job at a time, bounded queue and uploads)."""
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo.launch(max_file_size=MAX_BYTES, **kwargs)


if __name__ == "__main__":
    launch(build(App()), server_name=os.environ.get("FACEAGE_HOST", "127.0.0.1"))
