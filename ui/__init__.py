"""The Gradio app's pieces (``app.py`` at the repository root builds the page from them): the CUSP tab and the
handlers behind it, the AgingMapGAN tab (``amgan_tab``), the paintable map canvas (``map_canvas``), the example
faces (``examples``) and the server's cache of opened photos (``session_cache``)."""

import os

# before Gradio is first imported: no analytics, no Hub calls (the app runs offline)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
