"""The AgingMapGAN editor: a face aged by a map of per-sign scores, on the shared face pipeline.

    from faceage.amgan.editor import AMGANEditor
    ed = AMGANEditor.load()                                   # shipped weights in assets/
    session = ed.open("photo.jpg")                            # detection, alignment: once per photo
    amap = session.aging_map(60, signs={"forehead": 0.8})     # [C, S, S] from the face's landmarks
    out = session.edit(60, signs={"forehead": 0.8, "nasolabial_left": 0.5})   # full-resolution photo
    out = session.edit(60, painted_map=image_to_map(picture)) # a map painted by hand (Sec. 3.6)
    out = session.edit(60, mode="replace")                    # G's output face pasted back, not its change

Like CUSP's, an edit is "detail-preserving" by default: G's output minus its reconstruction of the face
with the face's own map (every zone and the face at its own age, as classifier C reads it or as
``source_age`` says) is applied to the photo's own pixels (:mod:`faceage.edit.transfer`).

Inference (Despois et al., AgingMapGAN, Sec. 3.6): the EMA generator runs on the whole aligned crop
in one fully convolutional pass, whatever the training patch size, with the crop's aging map and
the location maps of the full crop (:func:`faceage.amgan.model.generate`); crops larger than
``tile_above`` pixels go through
:func:`faceage.amgan.model.generate_tiled` (same result, bounded memory). The map is built with
:func:`faceage.amgan.maps.build_aging_map` from the face's own landmarks in the crop: each sign's zone
holds its score, the rest of the face the target age (a sign left out follows the age).

Weights: ``assets/amgan_utkface128.safetensors``, a faceage checkpoint (safetensors + JSON manifest)
whose manifest ``config`` holds the :class:`AMGANConfig` fields, ``resolution`` the side of the
aligned crops it was trained on (default 128), and whose tensors are G's EMA state dict (a ``G_ema.``
or ``G.`` prefix is removed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from faceage.amgan.maps import (
    MAP_CHANNELS,
    SIGNS,
    _check_scores,
    build_aging_map,
    image_to_map,
)
from faceage.amgan.model import (
    RETIRED_NET_OPTIONS,
    AMGANConfig,
    AMGANGenerator,
    generate,
    generate_tiled,
)
from faceage.checkpoint import load_checkpoint, unprefixed
from faceage.config import from_dict
from faceage.edit.photo_editor import (
    ASSETS,
    DEFAULT_MODE,
    FaceState,
    PhotoEditor,
    PhotoSession,
    check_age,
    check_mode,
    load_weights_into,
    pick_device,
    to_levels,
    to_uint8,
    weights_path,
)
from faceage.errors import BadParameterError, CheckpointError
from faceage.face.align import template_points
from faceage.io import load_image
from faceage.provenance import weights_info

DEFAULT_WEIGHTS = ASSETS / "amgan_utkface128.safetensors"
DEFAULT_RESOLUTION = 128
TILE, OVERLAP = 256, 64  # tiled inference above TILE_ABOVE pixels (see generate_tiled)
TILE_ABOVE = 512
MAX_RESOLUTION = 2048


def net_config(d: dict) -> AMGANConfig:
    """The network config of a manifest's ``config`` or a run's ``net`` table (its ``resolution``, the crop
    side, is not a network field); unknown keys are refused, removed options read only at their old default."""
    return from_dict(
        AMGANConfig, {k: v for k, v in d.items() if k != "resolution"}, retired=RETIRED_NET_OPTIONS, where="[net]"
    )


def check_signs(signs: Mapping[str, float] | None) -> dict[str, float]:
    """Validated sign scores ``{sign: score in [0, 1]}``; the message names an unknown sign or a bad score."""
    return _check_scores(signs)


def check_resolution(resolution, multiple: int) -> int:
    """A crop side: an int in ``multiple``..MAX_RESOLUTION divisible by ``multiple`` (G's stride)."""
    if (
        isinstance(resolution, bool)
        or not isinstance(resolution, (int, np.integer))
        or not multiple <= resolution <= MAX_RESOLUTION
        or resolution % multiple
    ):
        raise BadParameterError(
            f"resolution must be a multiple of {multiple} from {multiple} to "
            f"{MAX_RESOLUTION} pixels, got {resolution!r}"
        )
    return int(resolution)


def as_map(painted, size: int, channels: int = MAP_CHANNELS) -> torch.Tensor:
    """A painted map as ``[channels, size, size]`` float in [0, 1].

    ``painted``: a tensor/array ``[C, H, W]`` in [0, 1] (C = 1 is used for every channel), or an
    8-bit picture ``(H, W)`` / ``(H, W, 3|4)`` (an array, a PIL image, a file path or its bytes) read
    with :func:`faceage.amgan.maps.image_to_map`: brightness = score, channel c = colour c (a gray
    picture sets every channel). A square map of another side is resized: it is in the same canonical
    frame at any resolution. A map that is not square is refused.
    """
    if isinstance(painted, (str, bytes, Path)) or hasattr(painted, "getpixel"):  # a file or a PIL image
        painted = load_image(painted)
    if isinstance(painted, np.ndarray) and painted.dtype == np.uint8:
        if painted.ndim == 2 or (painted.ndim == 3 and painted.shape[2] == 1):  # gray: every channel
            painted = np.repeat(painted.reshape(*painted.shape[:2], 1), 3, axis=2)
        m = image_to_map(painted, channels)
    else:
        try:
            m = torch.as_tensor(np.asarray(painted) if not torch.is_tensor(painted) else painted).float()
        except (TypeError, ValueError):
            raise BadParameterError(
                f"a painted map must be a picture or a [C, H, W] array, got {type(painted).__name__}"
            ) from None
        if m.dim() != 3 or m.shape[0] not in (1, channels):
            raise BadParameterError(
                f"a painted map array must be [C, H, W] with C = 1 or {channels}, got shape {tuple(m.shape)}"
            )
        if m.numel() == 0:
            raise BadParameterError(f"a painted map must not be empty, got shape {tuple(m.shape)}")
        if not torch.isfinite(m).all() or m.min() < 0 or m.max() > 1:
            raise BadParameterError("a painted map must hold finite scores in [0, 1]")
        m = m.expand(channels, *m.shape[1:])
    if m.shape[1] != m.shape[2] or m.shape[1] == 0:
        raise BadParameterError(
            f"a painted map must be square like the aligned face crop, got "
            f"{m.shape[2]}x{m.shape[1]} pixels: paint on the map `faceage amgan-map` exports"
        )
    if m.shape[1] != size:
        m = F.interpolate(m[None], size=(size, size), mode="bilinear", align_corners=False)[0].clamp(0, 1)
    return m.contiguous()


@dataclass
class AMGANFace(FaceState):
    """Per-face cache: :class:`FaceState` plus the face's landmarks in the crop."""

    landmarks: np.ndarray  # (68, 2) crop pixels

    @property
    def crop(self) -> np.ndarray:
        """The aligned face, uint8 [S, S, 3]."""
        return self.aligned.crop if self.aligned is not None else to_uint8(self.x[0])


class AMGANSession(PhotoSession):
    """One opened photo; every edit runs G once per face on its whole aligned crop."""

    def aging_map(self, age, signs: Mapping[str, float] | None = None, face: int = 0) -> torch.Tensor:
        """The target aging map ``[C, S, S]`` of face ``face`` (0 = largest) from its landmarks."""
        return self.aging_maps(age, signs)[self._face_number(face)]

    def aging_maps(self, age, signs: Mapping[str, float] | None = None) -> list[torch.Tensor]:
        """The target aging map of every face: zones = sign scores, rest of the face = ``age``."""
        age, scores = check_age(age), check_signs(signs)
        size = self.editor.resolution
        return [build_aging_map(f.landmarks, size, scores, age) for f in self.faces]

    def edit_crops(self, age, signs: Mapping[str, float] | None = None, painted_map=None) -> list[np.ndarray]:
        """The edited aligned crops (uint8 [S,S,3]) of every face.

        ``painted_map``: None (the map of ``age`` and ``signs``), one map for every face, or a list
        with one entry per face (None entries use ``age`` and ``signs``); see :func:`as_map`.
        """
        return [to_uint8(y[0]) for y, _ in self._generate(age, signs, painted_map)]

    def edit_with_attention(
        self, age, signs: Mapping[str, float] | None = None, painted_map=None, mode: str = DEFAULT_MODE, source_age=None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """The edited photo (as :meth:`edit`) and, per face, G's attention mask A (float [S, S] in [0, 1]:
        1 where the output keeps the input pixel, 0 where it is G's generated colour)."""
        mode = check_mode(mode)
        results = self._generate(age, signs, painted_map)
        recons = None if mode == "replace" else self._recons(source_age)
        photo = self.render([to_levels(y[0]) for y, _ in results], recons)
        return photo, [a[0, 0].float().cpu().numpy() for _, a in results]

    def model_edits(
        self, age, signs: Mapping[str, float] | None = None, painted_map=None, mode: str = DEFAULT_MODE, source_age=None
    ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """What :meth:`edit` pastes: G's output per face and, in "detail" mode, G's output with the face's own
        map (float32 [S,S,3] grey levels; None in "replace")."""
        mode = check_mode(mode)
        edits = [to_levels(y[0]) for y, _ in self._generate(age, signs, painted_map)]
        return edits, None if mode == "replace" else self._recons(source_age)

    def _recons(self, source_age) -> list[np.ndarray]:
        """G's output for each face with the face's own map (every zone and the face at its own age)."""
        size = self.editor.resolution

        def own(face, age):
            own_map = build_aging_map(face.landmarks, size, {}, age)
            return lambda: to_levels(self.editor.generate([face.x], [own_map])[0][0])

        return [f.recon(a, own(f, a)) for f, a in zip(self.faces, self.source_ages(source_age))]

    def _generate(self, age, signs, painted_map) -> list[tuple[torch.Tensor, torch.Tensor]]:
        maps = self.aging_maps(age, signs)
        size = self.editor.resolution
        painted = painted_map if isinstance(painted_map, (list, tuple)) else [painted_map] * len(maps)
        if len(painted) != len(maps):
            raise BadParameterError(f"{len(painted)} painted maps were given for {len(maps)} faces")
        maps = [m if p is None else as_map(p, size, m.shape[0]) for m, p in zip(maps, painted)]
        return self.editor.generate([f.x for f in self.faces], maps, with_attention=True)

    def edit(
        self, age, signs: Mapping[str, float] | None = None, painted_map=None, mode: str = DEFAULT_MODE, source_age=None
    ) -> np.ndarray:
        """The full-resolution photo with every opened face edited: ``mode`` "detail" (default) applies G's
        change to the photo's own pixels, "replace" pastes G's output; ``source_age`` as in CUSP's ``edit``."""
        return self.edit_with_attention(age, signs, painted_map, mode, source_age)[0]


class AMGANEditor(PhotoEditor):
    """Loads the EMA generator G; opens photos into sessions; runs G on whole crops (tiled when large)."""

    session_type = AMGANSession

    def __init__(self, G: AMGANGenerator, device: torch.device, resolution: int, info: dict | None = None):
        super().__init__(device, check_resolution(resolution, 2**G.cfg.n_down), info)  # loads C for face ages
        self.G = G.to(device).eval()
        self.tile_above = TILE_ABOVE

    @classmethod
    def load(cls, weights=None, device: str | None = None, resolution: int | None = None) -> AMGANEditor:
        """Load G from ``weights`` (default: the shipped assets/ file).

        ``resolution``: side of the aligned crops G runs on (default: the training resolution
        stored with the weights). G is fully convolutional, so any multiple of its stride works.
        """
        path = weights_path(
            weights,
            DEFAULT_WEIGHTS,
            "AMGAN",
            (
                "They are trained by train/amgan/trainer.py (python -m train.train --config "
                "train/configs/amgan_utkface128.toml) and exported by python -m train.export; or pass your own "
                "(CLI: --weights)."
            ),
        )
        tensors, manifest = load_checkpoint(path)
        config = manifest.get("config")
        if not isinstance(config, dict):
            raise CheckpointError(f"{path} has no AMGAN config in its manifest: not AMGAN weights")
        try:
            G = AMGANGenerator(net_config(config.get("net", config)))
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from None
        for prefix in ("G_ema", "G"):
            if any(k.startswith(prefix + ".") for k in tensors):
                tensors = unprefixed(tensors, prefix)
                break
        load_weights_into(G, tensors, path, "AMGAN")
        res = resolution if resolution is not None else int(manifest.get("resolution", DEFAULT_RESOLUTION))
        return cls(G, pick_device(device), res, weights_info(path, manifest))

    def prepare(self, x: torch.Tensor, aligned=None) -> AMGANFace:
        """The face's crop tensor and landmarks (template landmarks for a bare crop)."""

        size = x.shape[-1]
        pts = aligned.landmarks if aligned is not None else template_points(size)
        return AMGANFace(aligned, x, landmarks=np.asarray(pts, dtype=np.float64))

    @torch.no_grad()
    def generate(self, images: list[torch.Tensor], maps: list[torch.Tensor], with_attention: bool = False) -> list:
        """G's output [1, 3, S, S] for each image [1, 3, S, S] and its aging map [C, S, S]; with
        ``with_attention``, (output, attention mask A [1, 1, S, S]) pairs."""
        out = []
        with self._lock:
            for x, m in zip(images, maps):
                m = m[None].to(x)
                size = x.shape[-1]
                if size > self.tile_above:
                    y, a = generate_tiled(self.G, x, m, tile=TILE, overlap=OVERLAP, with_attention=True)
                else:
                    y, a, _ = generate(self.G, x, m)
                out.append((y, a) if with_attention else y)
        return out


__all__ = ["AMGANEditor", "AMGANSession", "SIGNS", "as_map", "check_signs"]
