"""Opened photos of one editor, kept per server (LRU): detection and alignment run once per photo.

The app's handlers get the uploaded file's path on every event; the session is found again by the
SHA-1 of the file's bytes and the face choice, so a slider move reuses the faces already aligned
(and, for CUSP, their mask and encodings). The bytes are read, not the path: no path reaches a message.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from faceage.io import MAX_BYTES


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
