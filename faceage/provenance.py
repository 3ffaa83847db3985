"""What made a result image: the settings written as PNG text chunks by the app and the CLI alike.

    save_png(out, "aged.png", edit_metadata(editor, age=70, sigma_m=8, sigma_g=4.5, face=None))
    Image.open("aged.png").text   # {"Software": "faceage 0.1.0", "model": "cusp", "age": "70.0", ...}
    amgan_metadata(editor, age=60, signs={"forehead": 0.8}, face=None)   # an AgingMapGAN edit

Non-string values are stored as JSON by ``faceage.io.save_png`` (70 -> "70.0", [5, 15] -> "[5.0, 15.0]").
"""

from __future__ import annotations

import re
from pathlib import Path

from faceage import __version__


def model_metadata(editor, face=None, **extra) -> dict:
    """faceage version, model, weights (file, sha256, training step) and which face: what every output carries.

    ``face``: None for every face, else the index of the one used (0 = largest); ``extra`` is added as is
    (``model="amgan"`` replaces the default "cusp").
    """
    info = getattr(editor, "info", {}) or {}
    return {
        "Software": f"faceage {__version__}",
        "faceage_version": __version__,
        "model": "cusp",
        "weights": info.get("file", ""),
        "weights_sha256": info.get("sha256", ""),
        "weights_step": info.get("step"),
        "face": "all" if face is None else int(face),
        **extra,
    }


def edit_metadata(editor, age, sigma_m, sigma_g, face=None, **extra) -> dict:
    """``model_metadata`` plus the controls of a CUSP edit; ``age`` is one target age or a list (a progression)."""
    ages = [float(a) for a in age] if isinstance(age, (list, tuple)) else float(age)
    return model_metadata(editor, face, age=ages, sigma_m=float(sigma_m), sigma_g=float(sigma_g), **extra)


def amgan_metadata(editor, age, signs, face=None, painted=False, **extra) -> dict:
    """``model_metadata`` plus the controls of an AgingMapGAN edit: the target age and sign scores, or
    ``painted_map`` true when a painted map replaced them (it holds the scores), and the crop side."""
    controls = {"age": None, "signs": {}} if painted else {"age": float(age), "signs": dict(signs or {})}
    return model_metadata(
        editor, face, model="amgan", **controls, painted_map=bool(painted), resolution=editor.resolution, **extra
    )


def weights_info(path: Path, manifest: dict) -> dict:
    """What an editor keeps of its weights: their manifest, file name and model card status."""
    return dict(manifest, file=path.name, card_status=card_status(path))


def card_status(weights) -> str:
    """The bold "**Status: ...**" sentence of the model card beside ``weights`` (``<stem>.md``, as the
    shipped files in assets/ have), without its markup; "" when there is no card or no status in it."""
    try:
        text = Path(weights).with_suffix(".md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
    found = re.search(r"\*\*Status:\s*(.+?)\*\*", text, re.S)
    return " ".join(found.group(1).split()) if found else ""


def weights_note(info: dict) -> str:
    """One Markdown line for the app: which weights a tab runs, their training step and their card's status
    (``info``: an editor's, with ``file`` and ``card_status`` as the editors' ``load`` set them)."""
    step = info.get("step")
    line = f"Weights `{info.get('file', '?')}`" + (f", step {step:,}" if isinstance(step, int) else "")
    status = info.get("card_status")
    if not status:
        return line + "."
    card = Path(info.get("file", "")).with_suffix(".md").name
    return f"{line}. **Status:** {status} Model card: `{card}`, beside the weights."
