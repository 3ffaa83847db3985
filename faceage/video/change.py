"""A track's edit made once in the canonical crop frame, laid onto each frame where its face is now.

The detail path (``faceage.edit.transfer``) measures, between the model's edit of a face and its
reconstruction at the face's own age, a motion (dense flow), a texture gain and a colour change, all in the
canonical crop frame, and lays them onto the photo's own pixels. In a clip the person is the same in every
frame, so :class:`CropChange` computes those crop-frame arrays once per track (two network decodes and one
optical flow at the track's first frame) and :meth:`CropChange.apply` only warps them to where the face is
in each frame (its smoothed alignment) and applies them to that frame's pixels: a few warps per frame, no
network, no flow. The same fixed change every frame is also what keeps the edit from flickering.

"replace" mode pastes the edited crop itself at the face's place in each frame (``face.paste``).
"""

from __future__ import annotations

import cv2
import numpy as np

from faceage.edit.paste import face_mask, paste_back, photo_window
from faceage.edit.transfer import TEXTURE_BAND, change_mask, crop_change, levels_to_uint8, tone_direction
from faceage.face.align import AlignedFace


class CropChange:
    """One track's change (module doc). ``aligned``: the face at the track's first frame (its crop landmarks
    shape the mask); ``photo``: that frame (its face's tone decides colour or single-tone handling);
    ``edit``/``recon``: float32 [S, S, 3] grey levels; ``recon`` None for "replace"."""

    def __init__(self, aligned: AlignedFace, photo: np.ndarray, edit: np.ndarray, recon: np.ndarray | None):
        self.size = edit.shape[0]
        self.crop = aligned.crop if aligned.size == self.size else None
        self.landmarks = aligned.landmarks * (self.size / aligned.size)
        self.replace = recon is None
        if self.replace:  # the edited crop itself, under the paste-back's own mask
            self.edited = levels_to_uint8(edit)
            self.mask = _at_size(face_mask(aligned), self.size)
            return
        self.mask = change_mask(aligned, self.size)
        window = photo_window(self.mask, aligned, self.size, photo.shape[:2])
        tone = None
        if window is not None:
            (x0, y0, x1, y1), _, alpha = window
            tone = tone_direction(photo[y0:y1, x0:x1][alpha > 0.5][::4])
        change, self.flow, gain = crop_change(edit, recon, self.size, tone)
        self.change = change.astype(np.float32)
        self.gain1 = (gain - 1).astype(np.float32)

    def at(self, matrix: np.ndarray, shape) -> AlignedFace:
        """The face aligned by ``matrix`` (photo -> crop at this change's side) in a frame of ``shape``."""
        return AlignedFace(self.crop, matrix, self.size, self.landmarks.astype(np.float32), tuple(shape[:2]))

    def apply(self, frame: np.ndarray, matrix: np.ndarray, out: np.ndarray) -> tuple | None:
        """Write the change into ``out`` (a copy of ``frame``, or of it with other faces already edited) for
        the face that ``matrix`` (photo -> crop) aligns in ``frame``. Returns the window it wrote
        ``(box, alpha)``, None if the face is outside the frame."""
        aligned = self.at(matrix, frame.shape)
        window = photo_window(self.mask, aligned, self.size, frame.shape[:2])
        if window is None:
            return None
        if self.replace:
            out[...] = paste_back(out, self.edited, aligned, mask=self.mask)
            return window[0], window[2]
        (x0, y0, x1, y1), local, alpha = window
        size = (x1 - x0, y1 - y0)

        def warp(a, how):
            return cv2.warpAffine(a, local, size, flags=how | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)

        region = out[y0:y1, x0:x1]
        src = region.astype(np.float32)
        sigma = TEXTURE_BAND * self.size / 128 / np.sqrt(abs(np.linalg.det(local[:, :2])))  # in frame pixels
        fine = src - cv2.GaussianBlur(src, (0, 0), sigma)
        if self.flow is not None:  # crop-pixel displacements turned into frame pixels, masked
            d = warp(self.flow @ np.linalg.inv(local[:, :2]).T.astype(np.float32), cv2.INTER_LINEAR)
            d *= alpha[..., None]
            grid = np.mgrid[0 : y1 - y0, 0 : x1 - x0][::-1].astype(np.float32)
            xs, ys = grid[0] + d[..., 0], grid[1] + d[..., 1]
            base = cv2.remap(src, xs, ys, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
            fine = cv2.remap(fine, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        else:
            base = src
        add = warp(self.change, cv2.INTER_CUBIC)
        add += warp(self.gain1, cv2.INTER_LINEAR)[..., None] * fine
        add *= alpha[..., None]
        base += add
        np.rint(base, out=base)
        np.clip(base, 0, 255, out=base)
        region[...] = base
        return (x0, y0, x1, y1), alpha


def _at_size(mask: np.ndarray, size: int) -> np.ndarray:
    return mask if mask.shape[0] == size else cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)
