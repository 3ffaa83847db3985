"""faceage web app (Gradio): age a face with CUSP, choose how much facial structure survives.

    python app.py            # http://127.0.0.1:7860, offline, on the shipped weights in assets/

Per photo, detection, alignment, the CUSP mask and the encoders run once (cached in a server-side
session); a slider move only re-runs the skip blur and the decoder. Slider events use
``trigger_mode="always_last"`` so stale results are dropped.
"""

from __future__ import annotations

import hashlib
import html
import os
from collections import OrderedDict

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from faceage.cusp_mask import PRESETS, SIGMA_MAX  # noqa: E402
from faceage.errors import FaceAgeError, MissingWeightsError  # noqa: E402

MAX_SESSIONS = 8  # photos kept in the server-side cache (LRU)


class App:
    """Holds the editor (or the reason it could not load) and an LRU of opened photos."""

    def __init__(self, weights=None):
        from faceage.editor import CUSPEditor

        try:
            self.editor, self.missing = CUSPEditor.load(weights), None
        except MissingWeightsError as e:
            self.editor, self.missing = None, str(e)
        self.sessions: OrderedDict[str, object] = OrderedDict()

    def session(self, photo: np.ndarray, face_index: int):
        if self.editor is None:
            raise gr.Error(html.escape(self.missing), title="Weights missing")
        key = hashlib.sha1(photo.tobytes() + str(photo.shape).encode()).hexdigest() + f":{face_index}"
        if key not in self.sessions:
            self.sessions[key] = self.editor.open(photo, face_index=face_index)
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.popitem(last=False)
        self.sessions.move_to_end(key)
        return self.sessions[key]

    def edit(self, photo, face_index, age, sigma_m, sigma_g):
        """Age every chosen face; returns (before, after) and the mask heat map."""
        if photo is None:
            raise gr.Error("Upload a photo with a face first.")
        try:
            s = self.session(photo, None if face_index in (None, -1) else int(face_index))
            out = s.edit(age, sigma_m, sigma_g)
            return (s.photo, out), mask_overlay(s)
        except FaceAgeError as e:
            raise gr.Error(html.escape(str(e))) from None


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
            photo = gr.Image(label="Photo", type="numpy", sources=["upload", "webcam", "clipboard"], elem_id="photo")
            result = gr.ImageSlider(label="Before / after", type="numpy", format="png", elem_id="result")
        with gr.Row():
            age = gr.Slider(0, 100, value=70, step=1, label="Target age", elem_id="age")
            sigma_m = gr.Slider(0, SIGMA_MAX, value=PRESETS["custom preservation"][0], step=0.1,
                                label="sigma_m (local blur, in the mask)", elem_id="sigma_m")
            sigma_g = gr.Slider(0, SIGMA_MAX, value=PRESETS["custom preservation"][1], step=0.1,
                                label="sigma_g (global blur)", elem_id="sigma_g")
        with gr.Row():
            preset = gr.Radio(list(PRESETS), value="custom preservation", label="Structure preservation preset")
            face_index = gr.Number(value=-1, precision=0, label="Face (-1 = all, 0 = largest)")
            mask = gr.Image(label="CUSP mask M", type="numpy", interactive=False, elem_id="mask")
        inputs = [photo, face_index, age, sigma_m, sigma_g]
        preset.change(lambda p: PRESETS[p], preset, [sigma_m, sigma_g])
        photo.upload(app.edit, inputs, [result, mask], api_name="edit_photo")
        for slider in (age, sigma_m, sigma_g):
            slider.release(app.edit, inputs, [result, mask], trigger_mode="always_last",
                           show_progress="minimal", concurrency_id="model")
        gr.Button("Apply", variant="primary").click(app.edit, inputs, [result, mask], api_name="edit")
    return demo


if __name__ == "__main__":
    demo = build(App())
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.launch(server_name=os.environ.get("FACEAGE_HOST", "127.0.0.1"), max_file_size="25mb")
