"""faceage: face age editing with CUSP (ECCV 2022) and AgingMapGAN, CPU-first, offline.

Data flow: photo -> ``faceage.face`` (detect, align, paste back) -> ``faceage.models`` ->
``faceage.editor`` / ``faceage.amgan_editor`` (the API the app and the CLI use; both on
``faceage.photo_editor``). Heavy imports (dlib, gradio) are lazy.
"""

__version__ = "0.1.0"


def __getattr__(name):
    if name == "CUSPEditor":
        from faceage.editor import CUSPEditor

        return CUSPEditor
    if name == "AMGANEditor":
        from faceage.amgan_editor import AMGANEditor

        return AMGANEditor
    if name in ("VideoEditor", "edit_video"):
        from faceage import video

        return getattr(video, name)
    raise AttributeError(name)
