"""What the page's events call: :class:`App` holds the CUSP editor (or why it could not load), the opened
photos (an LRU of sessions) and the result files, and turns each event's inputs into images and text.
The AgingMapGAN tab's handlers are ``ui.amgan_tab.AMGANPanel``; the layout and wiring are ``ui.page``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import urllib.parse
import weakref
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import numpy as np

from faceage import settings
from faceage.cusp.editor import CUSPEditor, to_uint8
from faceage.cusp.mask import PRESETS, blur_skip
from faceage.edit import progression as prog
from faceage.edit.photo_editor import DEFAULT_MODE, parse_ages, resize_square
from faceage.errors import FaceAgeError
from faceage.io import save_png
from faceage.provenance import edit_metadata
from ui.amgan_tab import AMGANPanel
from ui.components import error_html, face_strip
from ui.examples import gather_examples
from ui.map_canvas import for_display, heat_overlay
from ui.session_cache import EditorSessions, face_choice

FACE_VIEW = 768  # px: the face view's largest side (a face smaller in the photo is shown at its own resolution)
FACE_VIEW_HEIGHT = 560  # px on screen: the face view is shown large whatever its resolution
FACE_MARGIN = 0.2  # the face view's margin around the canonical face frame, as a fraction of its side
THUMBNAIL = 128  # px: the face picker's pictures
GRID_TILE = 256  # px: each face of the presets grid
KEPT_OUTPUTS = 64  # result files kept for Gradio to copy (it does so as soon as a handler returns)


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
            for old in sorted(self.folder.iterdir(), key=lambda d: d.stat().st_mtime)[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        return str(path)


class App(EditorSessions):
    """Holds the editor (or the reason it could not load), an LRU of opened photos and the result files."""

    def __init__(self, weights=None, examples=None, amgan_weights=None):

        super().__init__(lambda: CUSPEditor.load(weights))
        self._last = None  # (session, controls, edited photo): the download reuses the edit just shown
        self.outputs = OutputFiles()
        # the per-sign tab (ui.amgan_tab): CUSP renders its maps by default, through this app's sessions
        self.amgan = AMGANPanel(amgan_weights, self.outputs, cusp=self.session if self.editor is not None else None)
        self.examples = self._gather_examples(examples)

    def _gather_examples(self, folder) -> list[tuple[str, str]]:
        """``[(photo, label)]`` for the gallery (``ui.examples``); ``[]`` if there are none or they fail."""
        dest = Path(tempfile.mkdtemp(prefix="faceage-examples-"))
        weakref.finalize(self, shutil.rmtree, dest, ignore_errors=True)
        try:
            return gather_examples(dest, folder)
        except (OSError, FaceAgeError) as e:  # a broken folder costs the gallery, not the app
            print(f"faceage: no example gallery ({e})")
            return []

    def _edited(self, photo, face_index, age, sigma_m, sigma_g, mode=DEFAULT_MODE, source_age=""):
        """(session, face, edited full-resolution photo) of the photo file ``photo`` at these controls."""
        if photo is None:
            raise gr.Error("Upload a photo with a face first.")
        face = face_choice(face_index)
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
        ``source_age``: the faces' own age as typed (:func:`faceage.edit.photo_editor.parse_ages`; empty: the
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
            s = self.session(photo, face_choice(face_index))
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
        return settings.to_text(age, sigma_m, sigma_g, mode, source_age, face_choice(face_index))

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
            s = self.session(photo, face_choice(face_index))
            ages = parse_ages(source_age)
            tiles = [prog.labelled(s.face_view(s.photo, 0, GRID_TILE, FACE_MARGIN), "input")]
            tiles += [
                prog.labelled(s.edit_face(age, sm, sg, 0, mode, ages, GRID_TILE, FACE_MARGIN), name)
                for name, (sm, sg) in PRESETS.items()
            ]
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
        views = [s.face_view(s.photo, i, THUMBNAIL, FACE_MARGIN) for i in range(len(s.faces))]
        return self.outputs(face_strip(views, [f"{i}: {a:.0f}" for i, a in enumerate(s.read_ages)], THUMBNAIL))

    def face_ages(self, photo, face_index) -> str:
        """One line for the page: each chosen face's age as the classifier reads it (what a detail-preserving
        edit starts from unless the user sets the face's own age)."""
        if photo is None or self.editor is None:
            return ""
        try:
            session = self.session(photo, face_choice(face_index))
        except FaceAgeError:
            return ""  # the edit that runs beside this says what is wrong
        ages = session.read_ages
        read = ", ".join(f"about {a:.0f}" for a in ages)
        return "\n\n".join(
            [
                f"The age classifier reads {'this face' if len(ages) == 1 else 'these faces (largest first)'} "
                f"as **{read}**. The edit starts from that age: if it is wrong, type the face's own age.",
                *session.notes,
            ]
        )

    def progression(
        self, photo, face_index, sigma_m, sigma_g, mode=DEFAULT_MODE, source_age="", progress=gr.Progress()
    ):
        """The chosen face (the largest when all) across ``prog.DEFAULT_AGES``: strip PNG, GIF, and the files."""
        if photo is None:
            raise gr.Error("Upload a photo with a face first.")
        ages = prog.DEFAULT_AGES
        try:
            s = self.session(photo, face_choice(face_index))
            source_age = parse_ages(source_age)
            frames = prog.progression(
                s,
                ages,
                sigma_m,
                sigma_g,
                mode=mode,
                source_age=source_age,
                on_frame=lambda i, a: progress(i / len(ages), desc=f"age {a:g} ({i + 1}/{len(ages)})"),
            )
            how = s.how(mode, source_age)
        except FaceAgeError as e:
            raise gr.Error(error_html(str(e))) from None
        progress(1.0, desc="writing the GIF and MP4")
        meta = edit_metadata(self.editor, list(ages), sigma_m, sigma_g, prog.shown_face(face_choice(face_index)), **how)
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


def mask_preview(session, sigma_m, sigma_g) -> np.ndarray:
    """The first face: the CUSP mask M as a red heat map over the aligned crop (left), and the crop blurred
    as Eq. 2 blurs the skip features (right): sigma_m inside M, sigma_g outside, i.e. the structure the
    decoder is free to change. Shown at 2x."""

    face = session.faces[0]
    crop = face.aligned.crop if face.aligned is not None else session.photo
    overlay = heat_overlay(crop, session.mask_images()[0])
    blurred = to_uint8(blur_skip(face.x, face.mask, sigma_m, sigma_g)[0])
    return for_display(np.concatenate([overlay, blurred], axis=1))
