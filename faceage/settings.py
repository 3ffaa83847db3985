"""A CUSP edit's settings as one short text, and back: what the app's "copy settings" box shows, what its
URL parameters say (``http://host/?age=70&sigma_m=8&sigma_g=4.5``), and what a result PNG's metadata holds.

    text = to_text(age=70, sigma_m=8, sigma_g=4.5, mode="detail", source_age="34", face=-1)
    # "age=70&sigma_m=8&sigma_g=4.5&mode=detail&face=all&source_age=34"
    parse(text)                # {"age": 70.0, "sigma_m": 8.0, "sigma_g": 4.5, "mode": "detail", ...}
    from_png("faceage_age70.png")   # the same, from the PNG text chunks the app and CLI write
"""

from __future__ import annotations

import json
import urllib.parse

from faceage.cusp.editor import check_controls
from faceage.edit.photo_editor import DEFAULT_MODE, check_mode, parse_ages
from faceage.errors import BadParameterError

KEYS = ("age", "sigma_m", "sigma_g", "mode", "face", "source_age")
"""What a settings text may hold; every key is optional (absent = left as it is)."""


def to_text(age, sigma_m, sigma_g, mode=DEFAULT_MODE, source_age="", face=-1) -> str:
    """The settings of an edit as a URL query string (``face``: -1 or None = every face)."""
    values = {
        "age": f"{float(age):g}",
        "sigma_m": f"{float(sigma_m):g}",
        "sigma_g": f"{float(sigma_g):g}",
        "mode": mode,
        "face": "all" if face in (None, -1) else str(int(face)),
    }
    if str(source_age or "").strip():
        values["source_age"] = ",".join(p.strip() for p in str(source_age).split(","))
    return urllib.parse.urlencode(values, safe=",")


def parse(text) -> dict:
    """The settings in ``text`` (a settings text, with or without a leading "?", or a whole URL), checked:
    ``age``, ``sigma_m``, ``sigma_g`` floats, ``mode``, ``face`` (-1 = every face), ``source_age`` as typed.
    A :class:`BadParameterError` names an unknown key or a bad value."""

    text = str(text or "").strip()
    query = urllib.parse.urlsplit(text).query if "://" in text else text.lstrip("?")
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    if not pairs:
        raise BadParameterError(
            f"no settings in {text!r}: paste what the settings box showed, e.g. "
            "age=70&sigma_m=8&sigma_g=4.5&mode=detail&face=all"
        )
    raw = dict(pairs)
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise BadParameterError(
            f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in "
            f"{text!r}: the settings are {', '.join(KEYS)}"
        )
    out = {}
    numbers = {k: raw[k] for k in ("age", "sigma_m", "sigma_g") if k in raw}
    if numbers:
        age, sm, sg = check_controls(numbers.get("age", 0), numbers.get("sigma_m", 0), numbers.get("sigma_g", 0))
        out |= {k: v for k, v in (("age", age), ("sigma_m", sm), ("sigma_g", sg)) if k in numbers}
    if "mode" in raw:
        out["mode"] = check_mode(raw["mode"])
    if "face" in raw:
        out["face"] = _face(raw["face"])
    if "source_age" in raw:
        parse_ages(raw["source_age"])  # checked here, kept as the user typed it
        out["source_age"] = raw["source_age"]
    return out


def from_png(path) -> dict:
    """The settings of a result PNG written by faceage (its text chunks), as :func:`parse` gives them."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            chunks = dict(getattr(im, "text", {}) or {})
    except (OSError, ValueError) as e:
        raise BadParameterError(f"cannot read that file as a PNG ({e}): give a result PNG faceage saved") from None
    if chunks.get("model") != "cusp" or "age" not in chunks:
        what = f"made by faceage's {chunks['model']} model" if "model" in chunks else "not made by faceage"
        raise BadParameterError(
            f"that PNG holds no CUSP settings ({what}): give a PNG the CUSP tab or `faceage edit` saved"
        )
    age = json.loads(chunks["age"])
    if isinstance(age, list):
        raise BadParameterError("that PNG is an age progression (several ages): restore from a single edit's PNG")
    values = {
        "age": age,
        "sigma_m": json.loads(chunks.get("sigma_m", "0")),
        "sigma_g": json.loads(chunks.get("sigma_g", "0")),
        "face": chunks.get("face", "all"),
    }
    if "mode" in chunks:
        values["mode"] = chunks["mode"]
    ages = json.loads(chunks["source_ages"]) if chunks.get("source_ages") not in (None, "null") else None
    if ages:
        values["source_age"] = ",".join(f"{a:g}" for a in ages)
    return parse(urllib.parse.urlencode(values, safe=","))


def _face(value) -> int:
    if str(value).strip().lower() in ("all", "-1", ""):
        return -1
    try:
        face = int(str(value).strip())
    except ValueError:
        face = -2
    if face < 0:
        raise BadParameterError(f"face must be 'all' or a face number (0 = largest), got {value!r}")
    return face
