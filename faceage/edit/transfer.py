"""Detail-preserving edits: the model's *change* applied to the photo's own pixels.

A generator trained on 128-px UTKFace crops reconstructs an ordinary photo's face poorly (the smile,
the eyes and the photo's sharpness go), so pasting its output back loses the person. Instead:

    edit, recon                     the model's decode at the target age and at the face's own age (same
                                    settings, same fixed noise), crops in the canonical frame
    motion = flow(edit -> recon)    where the model moved features (dense optical flow, OpenCV DIS)
    gain   = texture_gain(edit, recon)    how the model scaled its own fine texture (wrinkles, pores)
    change = edit - warp(recon, motion) - (gain - 1) * fine(recon)
    out    = warp(photo, motion) + alpha * (up(change) + (up(gain) - 1) * fine(photo))

``up`` resamples a crop-frame array to the face's own resolution in the photo (bicubic), ``fine`` is an
image's detail finer than ``TEXTURE_BAND``, and ``alpha`` the soft face mask (forehead and jaw included): the
model's texture change is made on the photo's own texture, at the photo's detail. Whatever the model fails to
reconstruct cancels out; what it changes (lines, folds, greying, tone, feature motion) is carried over. Pixels
where alpha is 0 stay bit-identical, and an edit at the face's own age gives the photo back.

Colour: a photo whose face has no colour of its own (grey, sepia or any single-tone photo, see
:func:`tone_direction`) gets only the change's luma, along its own tone (equally to R, G and B for grey), so
a grey photo stays exactly grey and a toned one keeps its tone. Colour photos get the luma change at full
detail and the colour change only as a broad shift (``CHROMA_SMOOTH``).
"""

from __future__ import annotations

import cv2
import numpy as np

from faceage.edit.paste import face_mask, photo_window
from faceage.face.align import AlignedFace

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

CHROMA_SMOOTH = 4.0
"""The colour part of a change (what is left after its luma) is blurred with this sigma (crop pixels at 128):
greying and skin-tone shifts pass, the decoder's red, purple and green blotches around the eyes and cheeks
(which an age judge reads as age) do not."""

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def tone_direction(pixels: np.ndarray) -> np.ndarray | None:
    """For ``pixels`` (uint8 [..., 3]) of one tone only (every chroma a linear function of luma: grey, sepia,
    toned), the change of (R, G, B) per grey level of luma that stays on that tone (float32 [3]; exactly
    (1, 1, 1) for grey); None for a colour face."""
    p = pixels.reshape(-1, 3).astype(np.float32)
    if len(p) < 16 or not np.ptp(p, axis=1).any():  # too few to fit, or every pixel grey
        return np.ones(3, np.float32) if np.ptp(p, axis=1).max(initial=0) <= 2 else None
    y = p @ _LUMA
    design = np.stack([y, np.ones_like(y)], 1)
    slopes, residual = [], 0.0
    for c in (p[:, 0] - y, p[:, 2] - y):  # chroma axes (unscaled Cr, Cb)
        coef, *_ = np.linalg.lstsq(design, c, rcond=None)
        slopes.append(float(coef[0]))
        residual += float(np.mean((design @ coef - c) ** 2))
    if residual**0.5 > TONE_RESIDUAL:
        return None
    r, b = 1 + slopes[0], 1 + slopes[1]  # dR, dB per unit of luma; dG keeps the luma change exact
    return np.array([r, (1 - _LUMA[0] * r - _LUMA[2] * b) / _LUMA[1], b], np.float32)


def is_single_tone(pixels: np.ndarray) -> bool:
    """Whether ``pixels`` (uint8 [..., 3]) carry one tone only (see :func:`tone_direction`)."""
    return tone_direction(pixels) is not None


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


def crop_change(
    edit: np.ndarray, recon: np.ndarray, size: int, tone: np.ndarray | None, motion: bool = True, texture: bool = True
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The change from ``recon`` to ``edit`` (float32 [S, S, 3] crops in grey levels, ``size`` = S) in the crop
    frame, as the photo takes it: ``(change, flow, gain)``. ``flow`` (None when ``motion`` is off or the model
    moves nothing): the dense flow between the two decodes; ``gain`` (None when ``texture`` is off): the
    texture gain the photo's own fine detail is scaled by, its part of the model's change taken out of
    ``change``; ``change``: the rest, luma along the face's ``tone`` (a grey or toned face) or luma plus the
    colour change blurred to broad tone shifts."""
    flow = dense_flow(levels_to_uint8(edit), levels_to_uint8(recon)) if motion else None
    if flow is not None and not flow.any():
        flow = None
    if flow is not None:  # the colour change left once the reconstruction is moved like the edit
        grid = np.mgrid[0:size, 0:size][::-1].astype(np.float32)
        recon = cv2.remap(
            recon, grid[0] + flow[..., 0], grid[1] + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    change = edit - recon
    gain = None
    if texture:  # the model's texture scaling of its own face is done on the photo's texture instead
        gain = texture_gain(edit, recon)
        blurred = cv2.GaussianBlur(recon, (0, 0), TEXTURE_BAND * size / 128)
        change -= (gain - 1)[..., None] * (recon - blurred)
    luma = (change @ _LUMA)[..., None]
    if tone is not None:  # a grey or toned face: its luma change, along its own tone
        change = luma * tone
    else:  # colour changes only as broad tone shifts: the model's small colour blotches are not carried
        change = luma + cv2.GaussianBlur(change - luma, (0, 0), CHROMA_SMOOTH * size / 128)
    return change, flow, gain


class FaceTarget:
    """Where one face's change lands in its photo, and what of the photo is read for it: made once per face
    (the box, the warped mask, the face's tone if it has one, the photo's fine texture), so that a slider
    move only warps the new change in. ``size``: the side of the crops the changes come in."""

    def __init__(self, photo: np.ndarray, aligned: AlignedFace, size: int):
        self.aligned, self.size, self.shape = aligned, size, photo.shape
        self.window = photo_window(change_mask(aligned, size), aligned, size, photo.shape[:2])
        if self.window is None:
            return
        (x0, y0, x1, y1), self.local, alpha = self.window
        self.alpha = alpha[..., None]
        region = photo[y0:y1, x0:x1]
        self.tone = tone_direction(region[alpha > 0.5][::4])  # None for a colour face
        sigma = TEXTURE_BAND * size / 128 / np.sqrt(abs(np.linalg.det(self.local[:, :2])))  # in photo pixels
        self.fine = region.astype(np.float32) - cv2.GaussianBlur(region, (0, 0), sigma).astype(np.float32)
        self.grid = np.mgrid[y0:y1, x0:x1][::-1].astype(np.float32)  # photo (x, y) of every box pixel

    def apply(
        self, photo: np.ndarray, edit: np.ndarray, recon: np.ndarray, motion: bool = True, texture: bool = True
    ) -> np.ndarray:
        """``photo`` (uint8 [H, W, 3], the one this target was made on, or an edit of it by other faces) with
        the change from ``recon`` to ``edit`` (float32 [S, S, 3] crops in grey levels, 0..255) applied to its
        own pixels. ``motion``: move the face by the dense flow between the two decodes first; ``texture``:
        scale the photo's own fine texture as the model scaled its own (both on by default; the switches are
        there to measure what each adds). Returns a new array; where the mask is 0 it is ``photo``."""
        if photo.shape != self.shape:
            raise ValueError(f"photo is {photo.shape}, the target was made on a {self.shape} photo")
        out = photo.copy()
        if self.window is None:
            return out
        change, flow, gain = crop_change(edit, recon, self.size, self.tone, motion, texture)
        (x0, y0, x1, y1), local, alpha = self.window
        region = out[y0:y1, x0:x1]
        add = self._warp(change, cv2.INTER_CUBIC)
        if flow is not None:  # crop-pixel displacements turned into photo pixels, then onto the box
            d = self._warp(flow @ np.linalg.inv(local[:, :2]).T.astype(np.float32), cv2.INTER_LINEAR)
            d *= self.alpha
            xs, ys = self.grid[0] + d[..., 0], self.grid[1] + d[..., 1]
            base = cv2.remap(photo, xs, ys, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT).astype(np.float32)
            fine = (
                cv2.remap(self.fine, xs - x0, ys - y0, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
                if gain is not None
                else None
            )
        else:
            base, fine = region.astype(np.float32), self.fine
        if gain is not None:
            add += (self._warp(gain, cv2.INTER_LINEAR) - 1)[..., None] * fine
        add *= self.alpha
        base += add
        np.rint(base, out=base)
        np.clip(base, 0, 255, out=base)
        region[...] = base  # where alpha is 0, base is the photo's pixel: written back as it was
        return out

    def _warp(self, crop: np.ndarray, interpolation: int) -> np.ndarray:
        """A crop-frame array (float32 [S, S, C]) resampled onto the box."""
        (x0, y0, x1, y1), local, _ = self.window
        return cv2.warpAffine(
            crop, local, (x1 - x0, y1 - y0), flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
        )


def apply_change(photo: np.ndarray, aligned: AlignedFace, edit: np.ndarray, recon: np.ndarray, **how) -> np.ndarray:
    """``photo`` with the change from ``recon`` to ``edit`` applied to its own pixels (:meth:`FaceTarget.apply`;
    a session keeps the :class:`FaceTarget` of each face instead, so a slider move does not remake it)."""
    return FaceTarget(photo, aligned, edit.shape[0]).apply(photo, edit, recon, **how)


def levels_to_uint8(x: np.ndarray) -> np.ndarray:
    """Grey levels (float) as uint8, rounded and clipped."""
    return np.clip(np.round(x), 0, 255).astype(np.uint8)
