"""The app's Video tab: age the faces of a clip (``faceage.video``).

    with gr.Tab("Video") as tab:          # inside gr.Blocks, in app.build
        build_video_tab(app)              # app: app.App (its CUSP editor, or why it did not load)

Upload a clip, set the same controls as the photo (target age, sigmas, mode, the faces' own age, which
face, and per clinical sign: the sign sliders or a painted map, rendered by CUSP or AgingMapGAN, as in the
per-sign tab), then "Preview the first second" (a few seconds of work) before "Edit the whole clip"; a
progress bar counts frames, "Cancel" stops the run (nothing is kept of it). The result is an H.264 MP4 with the clip's
audio, frame rate and rotation. Limits on a CPU Space (``MAX_SECONDS``, ``MAX_PIXELS``) are stated on the
page and enforced before anything runs. Clips queue one at a time in their own group, so a clip being edited
does not hold up other users' photo edits. Nothing in this tab runs until it is used: the video editor is
made on the first click, from the app's already loaded CUSP (or AgingMapGAN) editor. Errors are ``gr.Error`` messages.
"""

from __future__ import annotations

import html
import inspect
import shutil
import tempfile
import threading
import weakref
from collections import deque
from pathlib import Path

import gradio as gr

from faceage.amgan.maps import SIGNS
from faceage.cusp.mask import PRESETS
from faceage.edit.photo_editor import DEFAULT_MODE, parse_ages
from faceage.errors import CancelledError, FaceAgeError
from faceage.video import VideoEditor
from ui.amgan_tab import follow_values, sign_sliders
from ui.components import edit_mode, face_strip, structure_sliders, with_api_signature

MAX_SECONDS = 30.0
"""Longest clip the app takes (2 CPU cores edit 720p at about 20-30 frames/s: ``docs/benchmarks.md``)."""
MAX_PIXELS = 1280 * 720
"""Largest frame the app takes (720p, either way up)."""
PREVIEW_SECONDS = 1.0
AGE = 70  # the tab's target age slider starts here
KEPT = 8  # result clips kept on disk for Gradio to serve


class VideoPanel:
    """The tab's handlers: lazily made :class:`faceage.video.VideoEditor` s on the app's CUSP editor and, for the
    AgingMapGAN renderer, on the per-sign tab's; one cancel flag per browser session; the result files."""

    def __init__(self, editor, missing: str | None, amgan=None):
        self.cusp, self.missing, self.amgan = editor, missing, amgan
        self._editors: dict[str, VideoEditor] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._dir = Path(tempfile.mkdtemp(prefix="faceage-video-"))
        weakref.finalize(self, shutil.rmtree, self._dir, ignore_errors=True)
        self._kept: deque[Path] = deque()

    def editor(self, renderer: str = "cusp") -> VideoEditor:
        if renderer == "amgan":
            model = getattr(self.amgan, "editor", None)
            if model is None:
                why = getattr(self.amgan, "missing", None) or "the AgingMapGAN weights are not loaded"
                raise gr.Error(html.escape(why), title="AgingMapGAN weights not loaded")
        elif renderer in (None, "cusp"):
            if self.cusp is None:
                why = self.missing or "the CUSP weights are not loaded"
                raise gr.Error(html.escape(why), title="Weights not loaded")
            model, renderer = self.cusp, "cusp"
        else:
            raise gr.Error(f"renderer must be cusp or amgan, got {html.escape(repr(renderer))}", title="Bad renderer")
        if renderer not in self._editors:
            self._editors[renderer] = VideoEditor(model)
        return self._editors[renderer]

    def preview(self, *args):
        """The first second of the clip edited (``args``: the tab's inputs, see :func:`named`)."""
        return self._run(*args, seconds=PREVIEW_SECONDS)

    def edit(self, *args):
        """The whole clip edited (``args``: the tab's inputs, see :func:`named`)."""
        return self._run(*args, seconds=None)

    def cancel(self, request: gr.Request) -> str:
        self._flag(request).set()
        return "Cancelling..."

    def _flag(self, request) -> threading.Event:
        key = getattr(request, "session_hash", None) or "-"
        return self._cancel.setdefault(key, threading.Event())

    def _run(self, video, age, sigma_m, sigma_g, mode, source_age, face, renderer, follow, painted, *rest, seconds):
        *scores, request, progress = rest
        if not video:
            raise gr.Error("Upload a video first.", title="No video")
        ved = self.editor(renderer)
        flag = self._flag(request)
        flag.clear()
        out = self._new_output()

        def step(done, total):
            if done == 1 or done % 5 == 0 or done == total:
                progress(done / total, desc=f"{done} / {total} frames")

        try:
            face = None if face is None or int(face) < 0 else int(face)
            result = ved.edit(
                video,
                out,
                age,
                sigma_m,
                sigma_g,
                mode or DEFAULT_MODE,
                parse_ages(source_age),
                face,
                seconds,
                signs=None if follow or painted is not None else dict(zip(SIGNS, scores)),
                painted_map=painted,
                progress=step,
                cancel=flag.is_set,
                max_seconds=MAX_SECONDS,
                max_pixels=MAX_PIXELS,
            )
        except CancelledError:
            raise gr.Error("Cancelled: nothing was kept.", title="Cancelled") from None
        except FaceAgeError as e:
            raise gr.Error(html.escape(str(e)), title="Cannot edit this video") from None
        ages = ", ".join(f"{a:g}" for a in result.source_ages.values())
        what = "Preview (first second)" if seconds else "Whole clip"
        ids = list(result.faces)
        faces = face_strip([result.faces[i] for i in ids], [f"{i}: {result.source_ages[i]:.0f}" for i in ids])
        return (
            str(out),
            f"{what}: {result.frames} frames, {result.fps:.1f} frames/s; {len(result.source_ages)} "
            f"face(s) edited, own age(s) {ages} (set them above if wrong).",
            faces,
        )

    def _new_output(self) -> Path:
        folder = Path(tempfile.mkdtemp(dir=self._dir))
        self._kept.append(folder)
        while len(self._kept) > KEPT:
            shutil.rmtree(self._kept.popleft(), ignore_errors=True)
        return folder / "aged.mp4"


def named(fn):
    """``fn`` with a signature naming the tab's inputs and their defaults (what ``gradio_client`` sees; the sign
    and map inputs come last, so a call with the first seven still works), then Gradio's request and progress."""
    P = inspect.Parameter
    sigma_m, sigma_g = PRESETS["custom preservation"]
    given = [("video", P.empty), ("age", AGE), ("sigma_m", sigma_m), ("sigma_g", sigma_g), ("mode", DEFAULT_MODE)]
    given += [("source_age", ""), ("face", -1), ("renderer", "cusp"), ("follow_age", True), ("aging_map", None)]
    given += [(sign, AGE / 100) for sign in SIGNS]
    params = [P(name, P.POSITIONAL_OR_KEYWORD, default=d) for name, d in given]
    params += [
        P("request", P.POSITIONAL_OR_KEYWORD, default=None, annotation=gr.Request),
        P("progress", P.POSITIONAL_OR_KEYWORD, default=gr.Progress()),
    ]
    return with_api_signature(fn, params)


def build_video_tab(app) -> VideoPanel:
    """The Video tab's controls and events, inside the current ``gr.Tab`` (``app``: the app's ``App``)."""
    panel = VideoPanel(app.editor, app.missing, app.amgan)
    gr.Markdown(
        f"Age the faces of a clip. **Limits here (a CPU Space): up to {MAX_SECONDS:g} s, up to 720p "
        f"({MAX_PIXELS // 1000}k pixels a frame)**; about 20-30 frames/s at 720p on 2 cores, so "
        "try the one-second preview first. Faces are tracked through the clip; each face's edit is made "
        "once, where it first appears. The audio, frame rate (variable too) and rotation are kept.",
        elem_id="video_about",
    )
    with gr.Row():
        video = gr.Video(label="Video", sources=["upload"], format=None, elem_id="video_in")
        result = gr.Video(label="Aged", interactive=False, format=None, elem_id="video_out")
    with gr.Row():
        age = gr.Slider(0, 100, value=AGE, step=1, label="Target age", elem_id="video_age")
        sigma_m, sigma_g = structure_sliders(gr.Slider, prefix="video_")
    with gr.Row():
        mode = edit_mode("video", elem_id="video_mode")
        source_age = gr.Textbox(
            "",
            label="The faces' own age",
            info="Empty: as the classifier reads each face. Several faces: one per face, in order of appearance",
            elem_id="video_source_age",
        )
        face = gr.Number(-1, precision=0, label="Face (-1 = all, 0 = the first to appear)", elem_id="video_face")
    with gr.Accordion("Per clinical sign (optional)", open=False, elem_id="video_signs"):
        with gr.Row():
            choices = [("CUSP decodes blended by the map", "cusp")]
            if getattr(app.amgan, "editor", None) is not None:
                choices.append(("AgingMapGAN network", "amgan"))
            renderer = gr.Radio(choices, value="cusp", label="Render with", elem_id="video_renderer")
            follow = gr.Checkbox(
                True, label="Signs follow the target age (untick to set each)", elem_id="video_follow_age"
            )
            painted = gr.Image(
                None,
                type="numpy",
                image_mode="RGB",
                sources=["upload"],
                label="Or a painted aging map (from `faceage amgan-map`; replaces the sliders), for every face",
                height=160,
                elem_id="video_map",
            )
        scores = sign_sliders(gr.Slider, "video_", AGE / 100)
    private = dict(queue=False, api_visibility="private")
    for trigger in (age.change, follow.change):  # the sign sliders show the age while they follow it
        trigger(follow_values, [age, follow, *scores], scores, api_name="video_follow", **private)
    for s in scores:  # moving a sign sets the signs individually
        s.input(lambda: False, None, follow, api_name="video_unfollow", **private)
    with gr.Row():
        preview = gr.Button("Preview the first second", elem_id="video_preview")
        run = gr.Button("Edit the whole clip", variant="primary", elem_id="video_run")
        cancel = gr.Button("Cancel", variant="stop", elem_id="video_cancel")
    status = gr.Markdown("", label="status", elem_id="video_status")
    faces = gr.Image(
        label="Faces edited (number: own age)",
        type="numpy",
        interactive=False,
        height=168,
        buttons=[],
        elem_id="video_faces",
    )
    inputs = [video, age, sigma_m, sigma_g, mode, source_age, face, renderer, follow, painted, *scores]
    model = dict(concurrency_id="video")  # one clip at a time, beside the photo tabs' edits, not in front of them
    runs = [
        preview.click(named(panel.preview), inputs, [result, status, faces], api_name="video_preview", **model),
        run.click(named(panel.edit), inputs, [result, status, faces], api_name="video_edit", **model),
    ]
    cancel.click(
        panel.cancel, None, status, cancels=runs, queue=False, api_name="video_cancel", api_visibility="private"
    )
    return panel
