"""An editor the page loaded at start-up and the photos opened with it, kept per server (LRU): detection and
alignment run once per photo. :class:`EditorSessions` is what the CUSP handlers (``ui.server.App``) and the
per-sign tab (``ui.amgan_tab.AMGANPanel``) share: the editor or why it is missing, and the session of an upload.

The app's handlers get the uploaded file's path on every event; the session is found again by the
SHA-1 of the file's bytes and the face choice, so a slider move reuses the faces already aligned
(and, for CUSP, their mask and encodings). The bytes are read, not the path: no path reaches a message.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import gradio as gr

from faceage.errors import CheckpointError, MissingWeightsError
from faceage.io import MAX_BYTES
from ui.components import error_html

MAX_SESSIONS = 8  # photos kept per editor (LRU)


def face_choice(face_index) -> int | None:
    """The face control's value as an editor's ``open`` wants it: None (every face, -1) or an index."""
    return None if face_index in (None, -1) else int(face_index)


def read_upload(path) -> bytes:
    """The file's bytes, at most ``MAX_BYTES + 1`` (``load_image`` refuses anything longer)."""
    with open(path, "rb") as f:
        return f.read(MAX_BYTES + 1)


class SessionCache:
    """``get(path, face_index)`` -> ``editor.open(bytes, face_index)``, cached for the last ``size`` photos."""

    def __init__(self, editor, size: int = 8):
        self.editor = editor
        self.size = size
        self.sessions: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path, face_index: int | None):
        data = read_upload(path)
        key = hashlib.sha1(data).hexdigest() + f":{face_index}"
        with self._lock:
            if key not in self.sessions:
                self.sessions[key] = self.editor.open(data, face_index=face_index)
                while len(self.sessions) > self.size:
                    self.sessions.popitem(last=False)
            self.sessions.move_to_end(key)
            return self.sessions[key]


class EditorSessions:
    """``load()``'s editor, or the reason it could not load (the page still serves and says it), and the
    sessions of the photos opened with it."""

    missing_title = "Weights not loaded"

    def __init__(self, load):
        try:
            self.editor, self.missing = load(), None
        except (MissingWeightsError, CheckpointError) as e:
            self.editor, self.missing = None, str(e)
        self.cache = SessionCache(self.editor, MAX_SESSIONS)

    def session(self, photo, face_index):
        """The cached session of the uploaded file ``photo`` (``face_index``: -1 or None = every face); a
        ``gr.Error`` saying what to do when the weights are missing or no photo is given."""
        if self.editor is None:
            raise gr.Error(error_html(self.missing), title=self.missing_title)
        if photo is None:
            raise gr.Error("Upload a photo with a face first.")
        return self.cache.get(photo, face_choice(face_index))
