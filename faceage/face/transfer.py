"""Detail-preserving edits: the model's *change* applied to the photo's own pixels.

A generator trained on 128-px UTKFace crops reconstructs an ordinary photo's face poorly (the smile,
the eyes and the photo's sharpness go), so pasting its output back loses the person. Instead:

    change = edit - recon           the edit at the target age minus the model's reconstruction at the
                                    face's own age (same settings, same fixed noise), in the crop frame
    motion = flow(edit -> recon)    where the model moved features (dense optical flow, OpenCV DIS)
    out    = warp(photo, motion) + alpha * up(change - warp(recon, motion) + recon)

``up`` resamples the crop-frame change to the face's own resolution in the photo (bicubic), and
``alpha`` is the soft face mask (forehead and jaw included). Whatever the model fails to reconstruct
cancels out; what it changes (lines, folds, greying, tone, feature motion) is carried over. Pixels
where alpha is 0 stay bit-identical, and an edit at the face's own age gives the photo back.

Colour: a photo whose face has no colour of its own (grey, sepia or any single-tone photo, see
:func:`is_single_tone`) gets only the change's luma, added equally to R, G and B, so a grey photo stays
exactly grey and a toned one keeps its tone. Colour photos get the full change.
"""

from __future__ import annotations

import cv2
import numpy as np

from faceage.face.align import AlignedFace
from faceage.face.paste import face_mask, photo_window

FOREHEAD = 0.5
"""The change mask reaches this far above the brows (fraction of the nose-bridge-to-chin height):
forehead lines and frown lines sit above what the replace path's mask (0.3) covers."""

FLOW_SMOOTH = 1.5
"""Gaussian sigma (crop pixels at 128) that smooths the flow: the motion of features, not of texture."""

FLOW_DEADBAND = 0.25
"""Flow shorter than this (crop pixels at 128) is noise between two decodes: it is set to 0, and faded in
up to twice this length, so a face the model does not move is not resampled (resampling at sub-pixel
offsets would blur it)."""

TONE_RESIDUAL = 2.5
"""A face is single-tone when its chroma (Cb, Cr) is a linear function of its luma to within this
many grey levels (rms): true of grey, sepia and toned photos, never of a colour face (lips, eyes and
skin differ in hue at the same brightness)."""

TEXTURE_BAND = 1.5
"""Fine detail is what a Gaussian of this sigma (crop pixels at 128) removes."""

TEXTURE_AREA = 3.0
"""Its local energy is averaged with a Gaussian of this sigma (crop pixels at 128)."""

TEXTURE_FLOOR = 2.0
"""Detail below this rms (grey levels) is noise: it keeps the gain near 1 on flat skin."""

TEXTURE_GAIN = (0.2, 1.6)
"""The range of :func:`texture_gain`."""

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def is_single_tone(pixels: np.ndarray) -> bool:
    """Whether ``pixels`` (uint8 [..., 3]) carry one tone only: every chroma a linear function of luma."""
    p = pixels.reshape(-1, 3).astype(np.float32)
    if len(p) < 16:
        return bool(np.ptp(p, axis=1).max(initial=0) <= 2)
    y = p @ _LUMA
    cb, cr = p[:, 2] - y, p[:, 0] - y  # chroma axes (unscaled Cb, Cr)
    design = np.stack([y, np.ones_like(y)], 1)
    residual = 0.0
    for c in (cb, cr):
        coef, *_ = np.linalg.lstsq(design, c, rcond=None)
        residual += float(np.mean((design @ coef - c) ** 2))
    return residual**0.5 <= TONE_RESIDUAL


def dense_flow(edit: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Flow ``f`` (float32 [S, S, 2], crop pixels) with ``edit(p) ~ recon(p + f(p))``: where each pixel of the
    edit comes from in the reconstruction. Smoothed, and soft-thresholded by ``FLOW_DEADBAND``."""
    scale = edit.shape[0] / 128
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc(cv2.cvtColor(edit, cv2.COLOR_RGB2GRAY), cv2.cvtColor(recon, cv2.COLOR_RGB2GRAY), None)
    flow = cv2.GaussianBlur(flow, (0, 0), FLOW_SMOOTH * scale)
    t = np.clip(np.linalg.norm(flow, axis=2, keepdims=True) / (FLOW_DEADBAND * scale) - 1, 0, 1)
    return (flow * t * t * (3 - 2 * t)).astype(np.float32)  # 0 below the deadband, as is from twice it


def texture_gain(edit: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """How much of the photo's fine texture the edit keeps, float32 [S, S] in crop pixels: the local energy of
    the edit's fine detail over the reconstruction's (square root), clipped to TEXTURE_GAIN. Below 1 where the
    model smooths skin (a younger face), above 1 where it adds texture; 1 where both keep the same edges."""
    scale = edit.shape[0] / 128
    energy = []
    for img in (edit, recon):
        y = img @ _LUMA
        fine = y - cv2.GaussianBlur(y, (0, 0), TEXTURE_BAND * scale)
        energy.append(cv2.GaussianBlur(fine * fine, (0, 0), TEXTURE_AREA * scale))
    floor = np.float32(TEXTURE_FLOOR**2)
    return np.clip(np.sqrt((energy[0] + floor) / (energy[1] + floor)), *TEXTURE_GAIN).astype(np.float32)


def change_mask(aligned: AlignedFace, size: int) -> np.ndarray:
    """Where the change is applied, float32 [size, size] in crop pixels: the face, forehead and jaw."""
    mask = face_mask(aligned, forehead=FOREHEAD)
    if size != aligned.size:
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)
    return mask


def apply_change(
    photo: np.ndarray,
    aligned: AlignedFace,
    edit: np.ndarray,
    recon: np.ndarray,
    motion: bool = True,
    strength: float = 1.0,
    texture: bool = True,
) -> np.ndarray:
    """``photo`` (uint8 [H, W, 3]) with the change from ``recon`` to ``edit`` (float32 [S, S, 3] crops in
    grey levels, 0..255, in ``aligned``'s canonical frame at any side S) applied to its own pixels.

    ``motion``: move the photo's face by the dense flow between the two decodes first. ``strength``
    scales the change (1 = as the model made it). Returns a new array; outside the mask it is ``photo``.
    """
    size = edit.shape[0]
    flow = None
    if motion:
        flow = dense_flow(_to_uint8(edit), _to_uint8(recon))
        if not flow.any():
            flow = None
    if flow is not None:  # the colour change left once the reconstruction is moved like the edit
        grid = np.mgrid[0:size, 0:size][::-1].astype(np.float32)
        recon = cv2.remap(recon, grid[0] + flow[..., 0], grid[1] + flow[..., 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    change = edit - recon
    gain = None
    if texture:  # the model's texture scaling of its own face is done on the photo's texture instead (below)
        gain = texture_gain(edit, recon)
        change = change - (gain - 1)[..., None] * (recon - cv2.GaussianBlur(recon, (0, 0), TEXTURE_BAND * size / 128))
    change = change * np.float32(strength)
    out = photo.copy()
    mask = change_mask(aligned, size)
    window = photo_window(mask, aligned, size, photo.shape[:2])
    if window is None:
        return out
    box, local, alpha = window
    x0, y0, x1, y1 = box
    dsize = (x1 - x0, y1 - y0)
    inverse = cv2.WARP_INVERSE_MAP
    region = photo[y0:y1, x0:x1]
    if is_single_tone(region[alpha > 0.5]):
        change = np.repeat((change @ _LUMA)[..., None], 3, axis=2)
    delta = cv2.warpAffine(change, local, dsize, flags=cv2.INTER_CUBIC | inverse, borderMode=cv2.BORDER_REPLICATE)
    base = region.astype(np.float32)
    if flow is not None:
        base = _moved(photo, flow, local, box, alpha)
    if gain is not None:  # the photo's own fine texture, scaled as the model scaled its own
        gain = cv2.warpAffine(gain, local, dsize, flags=cv2.INTER_LINEAR | inverse, borderMode=cv2.BORDER_REPLICATE)
        fine = base - cv2.GaussianBlur(base, (0, 0), TEXTURE_BAND * scale_to_photo(local, size))
        base = base + (alpha * (gain - 1))[..., None] * fine
    new = base + alpha[..., None] * delta
    inside = alpha > 0
    out[y0:y1, x0:x1][inside] = np.clip(np.round(new[inside]), 0, 255).astype(np.uint8)
    return out


def scale_to_photo(local: np.ndarray, size: int) -> float:
    """Photo pixels per crop pixel of a 128-px crop, for a (2, 3) photo -> crop(``size``) map."""
    return float(size / 128 / np.sqrt(abs(np.linalg.det(local[:, :2]))))


def _moved(photo: np.ndarray, flow: np.ndarray, local: np.ndarray, box, alpha: np.ndarray) -> np.ndarray:
    """The photo's window ``box`` resampled along ``flow`` (crop frame), faded out with ``alpha``: float32."""
    x0, y0, x1, y1 = box
    dsize = (x1 - x0, y1 - y0)
    f = cv2.warpAffine(flow, local, dsize, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    to_photo = np.linalg.inv(local[:, :2])  # crop-pixel displacement -> photo-pixel displacement
    d = ((f @ to_photo.T) * alpha[..., None]).astype(np.float32)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    return cv2.remap(photo, xs + d[..., 0], ys + d[..., 1], cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REFLECT).astype(np.float32)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)
