"""faceage: face age editing with CUSP (ECCV 2022) and AgingMapGAN, CPU-first, offline.

Data flow: photo -> ``faceage.face`` (detect, align, paste back) -> ``faceage.models`` ->
``faceage.editor`` (the one API the app and the CLI use). Heavy imports (dlib, gradio) are lazy.
"""

__version__ = "0.1.0"


def __getattr__(name):
    if name == "CUSPEditor":
        from faceage.editor import CUSPEditor

        return CUSPEditor
    raise AttributeError(name)
