"""faceage web app (Gradio): age a face with CUSP, choose how much facial structure survives.

    python app.py            # http://127.0.0.1:7860, offline, on the shipped weights in assets/

Per photo, detection, alignment, the CUSP mask and the encoders run once (cached in a server-side
session); a slider move only re-runs the skip blur and the decoder. Slider events use
``trigger_mode="always_last"`` so stale results are dropped.

Outputs: the chosen face before/after (streamed while a slider moves: ``.input`` with ``always_last``, the
face alone), the whole photo before/after, a pinned result to compare with (A/B), the settings as text
(``faceage.settings``: copied, pasted, URL parameters or a result PNG restore them), the full-resolution
result as a PNG whose text chunks carry the settings (``faceage.provenance``), the mask M with the effect of
the skip blur, and on request an age progression (strip, GIF, MP4; ``faceage.edit.progression``). The example
gallery is gathered at start-up (``ui.examples``: ``$FACEAGE_EXAMPLES``, else the UTKFace test split when
present) and never shipped.

Bad input gets a ``gr.Error`` that says what was wrong and what to do, never a server error: the
upload is read by ``faceage.io`` (limits, modes, EXIF), not decoded by Gradio first, and numbers sent
through the API are checked before Gradio's own handling would fail on them. Limits:
``docs/reliability.md``.
"""

from __future__ import annotations

import os

from ui.page import build, launch
from ui.server import App

__all__ = ["App", "build", "launch"]


if __name__ == "__main__":
    # FACEAGE_HOST, else Gradio's GRADIO_SERVER_NAME (0.0.0.0 on Hugging Face Spaces), else 127.0.0.1
    launch(build(App()), server_name=os.environ.get("FACEAGE_HOST"))
