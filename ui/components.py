"""The page's input components: Gradio's own, with faceage's checks in front of them (a photo is read by
``faceage.io``, numbers are checked before Gradio's handling would fail on them), the short errors shown, and
the face pickers' strip of labelled faces."""

from __future__ import annotations

import functools
import html
import inspect
import math

import gradio as gr
import numpy as np

from faceage.cusp.mask import PRESETS, SIGMA_MAX
from faceage.edit import progression as prog
from faceage.edit.photo_editor import DEFAULT_MODE, resize_square


# Gradio writes type stubs for these component subclasses to app.pyi on import (git ignores it).
class PhotoInput(gr.Image):
    """``gr.Image`` that hands the uploaded file's path to the handler unopened.

    Stock ``gr.Image`` decodes the upload with PIL before the handler runs, so a corrupt file or a
    decompression bomb fails there as an opaque server error; ``faceage.io`` reads it instead.
    """

    is_template = True  # rendered by the frontend as a plain image component

    def preprocess(self, payload):
        if payload is None or payload.path is None:  # nothing, or an inline data: URL
            return super().preprocess(payload)
        return payload.path


class PaintCanvas(gr.ImageEditor):
    """``gr.ImageEditor`` that answers an unreadable painted layer from an API caller with a message.

    Stock ``gr.ImageEditor`` decodes the layers with PIL before the handler runs, so a corrupt file would
    fail there as an opaque server error (a browser always sends PNG).
    """

    is_template = True

    def preprocess(self, payload):
        from PIL import Image

        try:
            return super().preprocess(payload)
        except (OSError, ValueError, Image.DecompressionBombError):
            raise gr.Error(
                "The painted aging map could not be read: its background and layers must be PNG "
                "images (API callers: send the canvas value the app returns)."
            ) from None


class NumberSlider(gr.Slider):
    """``gr.Slider`` that refuses a non-number or out-of-range value from an API caller with a message."""

    is_template = True

    def preprocess(self, payload):
        return super().preprocess(checked_number(self.label, payload, self.minimum, self.maximum))


class NumberBox(gr.Number):
    """``gr.Number`` that refuses a non-number from an API caller with a message (empty is allowed)."""

    is_template = True

    def preprocess(self, payload):
        if payload is not None:
            checked_number(self.label, payload, -math.inf, math.inf)
        return super().preprocess(payload)


def checked_number(label: str, value, low: float, high: float) -> float:
    """``value`` if it is a finite number in ``low..high``, else a ``gr.Error`` naming the control."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        wanted = f"a number from {low:g} to {high:g}" if math.isfinite(high) else "a finite number"
        raise gr.Error(
            error_html(f"{label} must be {wanted}, got {value!r}: set the control again (API callers: send a number).")
        )
    return value


def error_html(text: str) -> str:
    """``text`` made safe for ``gr.Error``, which renders HTML (quotes are harmless in text, kept readable)."""
    return html.escape(text, quote=False)


def structure_sliders(slider=None, prefix: str = "") -> tuple:
    """CUSP's sigma_m and sigma_g sliders (Eq. 2's blur inside and outside the mask M), at the "custom
    preservation" preset; ``slider`` is the component class (:class:`NumberSlider` by default)."""
    slider = slider or NumberSlider
    sigma_m, sigma_g = PRESETS["custom preservation"]
    return (
        slider(
            0, SIGMA_MAX, value=sigma_m, step=0.1, label="sigma_m (local blur, in the mask)", elem_id=f"{prefix}sigma_m"
        ),
        slider(0, SIGMA_MAX, value=sigma_g, step=0.1, label="sigma_g (global blur)", elem_id=f"{prefix}sigma_g"),
    )


def edit_mode(medium: str = "photo", elem_id: str = "mode") -> gr.Radio:
    """How an edit reaches the ``medium``: its own pixels changed ("detail", the default) or the face replaced."""
    return gr.Radio(
        [
            (f"Keep the {medium}: apply the model's change to its own pixels", "detail"),
            ("Replace the face with the model's output", "replace"),
        ],
        value=DEFAULT_MODE,
        label="Edit",
        elem_id=elem_id,
    )


def face_strip(crops, labels, side: int = 128) -> np.ndarray:
    """Faces side by side, each resized to ``side`` px and labelled (its number and age): the face pickers."""
    return np.concatenate([prog.labelled(resize_square(c, side), t) for c, t in zip(crops, labels)], axis=1)


def with_api_signature(fn, params: list[inspect.Parameter]):
    """``fn`` (a handler taking its inputs positionally) seen by Gradio with the signature ``params``: the names,
    defaults and special arguments (``gr.Request``, ``gr.Progress``) a program sees through ``gradio_client``."""

    @functools.wraps(fn)
    def handler(*args):
        return fn(*args)

    handler.__signature__ = inspect.Signature(params)
    return handler
