"""faceage: face age editing with CUSP (ECCV 2022) and AgingMapGAN, CPU-first, offline.

Data flow: photo (``faceage.io``) -> faces (``faceage.face``: detect, landmarks, align) -> a model
(``faceage.cusp``, ``faceage.amgan``; their editors on the shared core ``faceage.edit``) -> the edit
brought back into the photo (``faceage.edit.transfer`` or ``.paste``) -> the app (``ui/``) and the CLI
(``faceage.cli``). ``CUSPEditor`` and ``AMGANEditor`` load on first use, so ``import faceage`` stays light.
"""

__version__ = "0.1.0"


def __getattr__(name):
    if name == "CUSPEditor":
        from faceage.cusp.editor import CUSPEditor

        return CUSPEditor
    if name == "AMGANEditor":
        from faceage.amgan.editor import AMGANEditor

        return AMGANEditor
    if name in ("VideoEditor", "edit_video"):
        from faceage import video

        return getattr(video, name)
    raise AttributeError(name)
