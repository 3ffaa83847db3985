"""UTKFace reader: labels from file names, images straight from the tar shards.

UTKFace ("Aligned & Cropped Faces", Zhang, Song, Qi, CVPR 2017) ships here as four
plain tar shards of 200 x 200 RGB JPEG crops named
``[age]_[gender]_[race]_[date&time].jpg.chip.jpg``, a ``SHA256SUMS`` file and a
fixed held-out ``test.txt`` (see the data folder's README). Its 200 x 200 aligned
crop frame is faceage's *canonical frame*: every model sees faces framed like this,
at some resolution S.

What this module does, and why:

* :func:`parse_name` turns a file name into a :class:`Record`, or ``None`` when the
  name does not follow the pattern exactly. Five names in the release are
  malformed (a missing field, a stray space, a missing dot); they are reported with
  :func:`logging.warning` and skipped, never repaired by guessing.
* :class:`UTKFaceIndex` lists the shards' members by reading the tar headers
  (``tarfile``, nothing is extracted to disk) and keeps each JPEG's byte offset and
  size, so an image is later read with one ``seek`` + ``read``.
* :func:`verify_checksums` checks the shards against ``SHA256SUMS``. A successful
  check is remembered in a small marker file under the user cache directory (keyed
  by absolute path, size, mtime and expected hash), so it costs one full read per
  shard only once; ``verify=False`` skips it altogether.
* :class:`UTKFace` is a torch ``Dataset`` of ``(image, age, group)``. Shard files are
  opened lazily, once per process, so a ``DataLoader`` with ``num_workers=2`` decodes
  in two processes without sharing file positions. An unreadable image never stops
  a run: it is logged, counted (:attr:`UTKFace.skipped_reads`, shared with worker
  processes) and replaced by the next readable index.
* :func:`pack_split` writes one split, resized, into ONE safetensors file for the GPU
  machine, and :class:`PackedFaces` reads it back into memory.

Images are ``float32 [3, S, S]`` in ``[-1, 1]``. Resizing is PIL's Lanczos filter,
which is antialiased (its support widens with the reduction factor) and
deterministic. The only augmentation is an optional horizontal flip with
probability 1/2, decided by ``(seed, epoch, index)`` alone: the same index in the
same epoch is always flipped the same way, in any worker. A mirrored aligned crop is
still an aligned crop, so the flip keeps the canonical frame.

Licence of the data: non-commercial research only; nothing from it is committed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from faceage.data.ages import age_to_group
from faceage.errors import BadParameterError, FaceAgeError

__all__ = [
    "CHECKSUM_FILE",
    "SOURCE_SIZE",
    "TEST_SPLIT_FILE",
    "DatasetError",
    "Member",
    "PackedFaces",
    "Record",
    "UTKFace",
    "UTKFaceIndex",
    "decode_face",
    "default_root",
    "pack_split",
    "parse_name",
    "verify_checksums",
]

logger = logging.getLogger(__name__)

CHECKSUM_FILE: Final = "SHA256SUMS"
TEST_SPLIT_FILE: Final = "test.txt"
#: Side of the UTKFace aligned crops, i.e. of the canonical frame at native resolution.
SOURCE_SIZE: Final = 200
#: Overrides :func:`default_root`.
ROOT_ENV: Final = "FACEAGE_UTKFACE_ROOT"
#: Overrides the cache directory holding the checksum marker.
CACHE_ENV: Final = "FACEAGE_CACHE_DIR"
PACK_FORMAT: Final = "faceage.packed_faces"
PACK_VERSION: Final = "1"

Split = Literal["train", "test", "all"]
Codec = Literal["raw", "webp", "jpeg"]
_SPLITS: Final = ("train", "test", "all")
_CODECS: Final = ("raw", "webp", "jpeg")

# age_gender_race_date.jpg.chip.jpg; gender 0/1, race 0-4. The date field is not
# always 17 digits in the release (16 and 18 occur), so only "digits" is required.
_NAME_PATTERN: Final = re.compile(r"(\d{1,3})_([01])_([0-4])_(\d+)\.jpg\.chip\.jpg")
# PIL raises these for truncated or corrupt data (UnidentifiedImageError is an OSError).
_DECODE_ERRORS: Final = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class DatasetError(FaceAgeError):
    """The UTKFace folder is missing, incomplete, corrupt or unusable as asked."""


# --------------------------------------------------------------------------------------
# Names, shards, checksums
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """Labels parsed from one UTKFace file name."""

    name: str
    age: int  # years, 0-116 in the release
    gender: int  # 0 male, 1 female
    race: int  # 0 White, 1 Black, 2 Asian, 3 Indian, 4 Others


@dataclass(frozen=True, slots=True)
class Member:
    """Where one record's JPEG bytes lie: shard number, byte offset and length."""

    record: Record
    shard: int
    offset: int
    size: int


def parse_name(name: str) -> Record | None:
    """Parse ``age_gender_race_date.jpg.chip.jpg``; ``None`` if the name is malformed."""
    match = _NAME_PATTERN.fullmatch(name)
    if match is None:
        return None
    age, gender, race, _ = match.groups()
    return Record(name=name, age=int(age), gender=int(gender), race=int(race))


def default_root() -> Path:
    """The UTKFace folder: ``$FACEAGE_UTKFACE_ROOT``, else ``<repo>/../shared/data/utkface``."""
    override = os.environ.get(ROOT_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "utkface"


def _cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "faceage"


def _read_checksums(root: Path) -> dict[str, str]:
    """``{file name: expected sha256}`` from ``root/SHA256SUMS``, in file order."""
    path = root / CHECKSUM_FILE
    expected: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise DatasetError(f"{path}:{number}: not a 'sha256  name' line: {line!r}")
        expected[parts[1].strip().lstrip("*")] = parts[0].lower()
    return expected


def shard_paths(root: str | os.PathLike[str]) -> list[Path]:
    """The tar shards of ``root``: those ``SHA256SUMS`` lists, else every ``*.tar``, sorted."""
    folder = Path(root)
    if not folder.is_dir():
        raise DatasetError(
            f"no UTKFace folder at {folder}; pass root= or set ${ROOT_ENV} to the folder "
            "holding the utkface-*.tar shards"
        )
    if (folder / CHECKSUM_FILE).is_file():
        paths = [folder / name for name in _read_checksums(folder)]
    else:
        paths = sorted(folder.glob("*.tar"))
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise DatasetError(f"UTKFace shards listed in {CHECKSUM_FILE} are missing: {missing}")
    if not paths:
        raise DatasetError(f"no *.tar shards in {folder}")
    return paths


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path, expected: str) -> list[object]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, expected]


def _load_marker(path: Path) -> dict[str, list[object]]:
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def _save_marker(path: Path, marker: dict[str, list[object]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        temporary.write_text(json.dumps(marker, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, path)
    except OSError as error:  # a read-only cache only costs a re-check next time
        logger.debug("could not write the checksum marker %s: %s", path, error)


def verify_checksums(root: str | os.PathLike[str], *, use_cache: bool = True) -> None:
    """Check every shard of ``root`` against ``SHA256SUMS``; raise :class:`DatasetError` if not.

    A shard that passed once is not hashed again while its absolute path, size, mtime
    and expected hash are unchanged: the marker is
    ``$FACEAGE_CACHE_DIR`` (default ``~/.cache/faceage``) ``/utkface-verified.json``.
    ``use_cache=False`` hashes every shard regardless and does not read the marker.
    """
    folder = Path(root)
    if not (folder / CHECKSUM_FILE).is_file():
        raise DatasetError(f"no {CHECKSUM_FILE} in {folder}: cannot verify (pass verify=False)")
    marker_path = _cache_dir() / "utkface-verified.json"
    marker = _load_marker(marker_path) if use_cache else {}
    checked = dict(marker)
    for name, expected in _read_checksums(folder).items():
        path = folder / name
        if not path.is_file():
            raise DatasetError(f"UTKFace shard {path} is missing")
        key = str(path.resolve())
        stamp = _stamp(path, expected)
        if marker.get(key) == stamp:
            continue
        actual = _sha256(path)
        if actual != expected:
            raise DatasetError(
                f"{path} is corrupt: sha256 {actual}, {CHECKSUM_FILE} says {expected}; re-copy the shard"
            )
        checked[key] = stamp
    if checked != marker:
        _save_marker(marker_path, checked)


def _read_test_names(root: Path) -> frozenset[str]:
    path = root / TEST_SPLIT_FILE
    if not path.is_file():
        raise DatasetError(f"no {TEST_SPLIT_FILE} in {root}: the test split is undefined")
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip())


def _scan_shard(path: Path) -> Iterator[tarfile.TarInfo]:
    """Regular-file members of one tar, in archive order (headers only, nothing extracted)."""
    try:
        with tarfile.open(path, mode="r:") as archive:
            for info in archive:
                if info.isfile():
                    yield info
                else:
                    logger.debug("%s: ignoring non-file member %r", path.name, info.name)
    except tarfile.TarError as error:
        raise DatasetError(f"{path} is not a readable tar archive: {error}") from error


@dataclass(frozen=True)
class UTKFaceIndex:
    """Every parseable member of the shards, plus what was skipped and the test names."""

    root: Path
    shards: tuple[Path, ...]
    members: tuple[Member, ...]  # parseable names, shard then archive order
    malformed: tuple[str, ...]  # names that parse_name rejected, same order
    test_names: frozenset[str]

    @classmethod
    def build(cls, root: str | os.PathLike[str] | None = None, *, verify: bool = True) -> UTKFaceIndex:
        """Verify (unless ``verify=False``), then read the tar headers of ``root``."""
        folder = Path(root) if root is not None else default_root()
        shards = shard_paths(folder)
        if verify:
            verify_checksums(folder)
        members: list[Member] = []
        malformed: list[str] = []
        seen: set[str] = set()
        for shard, path in enumerate(shards):
            for info in _scan_shard(path):
                record = parse_name(info.name)
                if record is None:
                    malformed.append(info.name)
                elif record.name in seen:
                    raise DatasetError(f"{info.name} appears twice in the shards of {folder}")
                else:
                    seen.add(record.name)
                    members.append(Member(record, shard, info.offset_data, info.size))
        if malformed:
            logger.warning(
                "UTKFace: skipped %d member(s) whose names do not parse as age_gender_race_date.jpg.chip.jpg: %s",
                len(malformed),
                ", ".join(repr(name) for name in malformed),
            )
        test_names = _read_test_names(folder)
        absent = sorted(test_names - seen)
        if absent:
            logger.warning(
                "UTKFace: %d name(s) of %s are not in the shards (or malformed): %s",
                len(absent),
                TEST_SPLIT_FILE,
                ", ".join(repr(name) for name in absent),
            )
        return cls(folder, tuple(shards), tuple(members), tuple(malformed), test_names)

    def split(self, split: Split) -> list[Member]:
        """Members of ``"test"`` (names in test.txt), ``"train"`` (the rest) or ``"all"``."""
        if split == "all":
            return list(self.members)
        if split == "test":
            return [member for member in self.members if member.record.name in self.test_names]
        if split == "train":
            return [member for member in self.members if member.record.name not in self.test_names]
        raise BadParameterError(f"split must be one of {_SPLITS}, got {split!r}")


# --------------------------------------------------------------------------------------
# Reading and decoding
# --------------------------------------------------------------------------------------


class _ShardReader:
    """Reads byte ranges of the shards; file handles are opened lazily, once per process.

    Handles are never pickled (a DataLoader worker gets a reader with no open files)
    and are reopened after a fork, so processes never share a file position. One
    reader is not meant to be shared by threads (seek + read is not atomic).
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = tuple(paths)
        self._files: dict[int, BinaryIO] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, object]:
        return {"paths": self.paths}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.paths = state["paths"]
        self._files = {}
        self._pid = os.getpid()

    def read(self, shard: int, offset: int, size: int) -> bytes:
        """``size`` bytes of shard ``shard`` from ``offset``."""
        if self._pid != os.getpid():  # forked: the inherited handles belong to the parent
            self._files = {}
            self._pid = os.getpid()
        stream = self._files.get(shard)
        if stream is None:
            stream = self._files[shard] = self.paths[shard].open("rb")
        stream.seek(offset)
        data = stream.read(size)
        if len(data) != size:
            raise OSError(f"{self.paths[shard]}: short read at {offset} ({len(data)}/{size} bytes)")
        return data

    def close(self) -> None:
        """Close the handles this process opened."""
        for stream in self._files.values():
            stream.close()
        self._files = {}


def decode_face(data: bytes, size: int = SOURCE_SIZE) -> np.ndarray:
    """Decode image bytes to ``uint8 [size, size, 3]`` RGB, Lanczos-resized (antialiased).

    Raises the decoder's ``OSError``/``ValueError``/``SyntaxError`` on corrupt data.
    """
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), resample=Image.Resampling.LANCZOS)
    return np.array(rgb, dtype=np.uint8)  # a writable copy (torch.from_numpy warns on read-only)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """``uint8 [S, S, 3]`` -> ``float32 [3, S, S]`` in ``[-1, 1]``."""
    chw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    return chw.to(torch.float32) / 127.5 - 1.0


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 4096:
        raise BadParameterError(f"size must be an int pixel side in [8, 4096], got {size!r}")
    return size


class _FaceDataset(Dataset):
    """Shared item assembly and the seeded flip of :class:`UTKFace` and :class:`PackedFaces`."""

    def __init__(self, *, augment: bool, seed: int) -> None:
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose flips ``__getitem__`` draws.

        Call it before building each epoch's DataLoader iterator; workers copy the
        dataset when the iterator starts, so with ``persistent_workers=True`` the new
        epoch would not reach them.
        """
        self.epoch = int(epoch)

    def flipped(self, index: int) -> bool:
        """Whether item ``index`` is mirrored this epoch (always False without augment)."""
        if not self.augment:
            return False
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return bool(rng.random() < 0.5)

    def _item(self, index: int, image: np.ndarray, age: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``(image tensor, age, group)`` of item ``index``, mirrored if :meth:`flipped`."""
        if self.flipped(index):
            image = image[:, ::-1]
        return _to_tensor(image), torch.tensor(float(age)), age_to_group(age)


class UTKFace(_FaceDataset):
    """UTKFace as ``(image float32 [3,S,S] in [-1,1], age float32 scalar, group int)``.

    Args:
        root: the folder with the shards, ``SHA256SUMS`` and ``test.txt``
            (default :func:`default_root`).
        split: ``"train"``, ``"test"`` or ``"all"``.
        size: output side S; the 200 px crops are Lanczos-resized when S != 200.
        augment: mirror half of the items, seeded by ``(seed, epoch, index)``.
        seed: seed of the flips.
        verify: check the shards against ``SHA256SUMS`` first (cached, see
            :func:`verify_checksums`).
        index: a prebuilt :class:`UTKFaceIndex` to share between splits (then
            ``root`` and ``verify`` are ignored).
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: Split = "train",
        *,
        size: int = SOURCE_SIZE,
        augment: bool = False,
        seed: int = 0,
        verify: bool = True,
        index: UTKFaceIndex | None = None,
    ) -> None:
        super().__init__(augment=augment, seed=seed)
        self.index = index if index is not None else UTKFaceIndex.build(root, verify=verify)
        self.split = split
        self.size = _check_size(size)
        self.members = self.index.split(split)
        self._reader = _ShardReader(self.index.shards)
        # One int64 in shared memory: DataLoader workers (fork or spawn) add to the same one.
        self._skipped = torch.zeros(1, dtype=torch.int64).share_memory_()

    def __len__(self) -> int:
        return len(self.members)

    @property
    def records(self) -> list[Record]:
        """The labels of this split, in item order."""
        return [member.record for member in self.members]

    @property
    def skipped_reads(self) -> int:
        """How many times an unreadable image was skipped, summed over worker processes."""
        return int(self._skipped[0])

    def read_bytes(self, position: int) -> bytes:
        """The stored JPEG bytes of item ``position``."""
        member = self.members[position]
        return self._reader.read(member.shard, member.offset, member.size)

    def load(self, position: int) -> np.ndarray | None:
        """Item ``position`` as ``uint8 [S,S,3]``, or ``None`` (logged) if it cannot be read."""
        try:
            return decode_face(self.read_bytes(position), self.size)
        except _DECODE_ERRORS as error:
            logger.warning("UTKFace: skipping unreadable image %s: %s", self.members[position].record.name, error)
            return None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Item ``index``; an unreadable image is replaced by the next readable one (counted)."""
        count = len(self)
        if not -count <= index < count:
            raise IndexError(f"index {index} out of range for {count} faces")
        index %= count
        for step in range(count):
            position = (index + step) % count
            image = self.load(position)
            if image is not None:
                return self._item(index, image, self.members[position].record.age)
            self._skipped += 1
        raise DatasetError(f"none of the {count} images of the {self.split} split is readable")


# --------------------------------------------------------------------------------------
# Packing one split into one safetensors file
# --------------------------------------------------------------------------------------

# safetensors dtype codes of the arrays written here.
_ST_DTYPES: Final = {np.dtype(np.uint8): "U8", np.dtype(np.int32): "I32", np.dtype(np.int64): "I64"}


class _PackPayloads(Dataset):
    """Worker-side half of :func:`pack_split`: item -> stored bytes, or ``None`` if unreadable."""

    def __init__(self, faces: UTKFace, codec: Codec, quality: int) -> None:
        self.faces, self.codec, self.quality = faces, codec, quality

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, position: int) -> bytes | None:
        image = self.faces.load(position)
        if image is None:
            return None
        if self.codec == "raw":
            return image.tobytes()
        stream = io.BytesIO()
        options = {"lossless": False} if self.codec == "webp" else {"subsampling": 0}
        Image.fromarray(image).save(stream, format=self.codec.upper(), quality=self.quality, **options)
        return stream.getvalue()


def _identity(item: object) -> object:
    return item


def _write_safetensors(
    path: Path,
    tensors: Sequence[tuple[str, np.dtype, tuple[int, ...], Iterable[bytes]]],
    metadata: dict[str, str],
) -> None:
    """Stream tensors into a safetensors file without holding them in memory.

    The format: an 8-byte little-endian header length, a JSON header (padded with
    spaces to a multiple of 8) giving each tensor's dtype, shape and byte range,
    then the raw little-endian data, tensor after tensor.
    """
    header: dict[str, object] = {"__metadata__": metadata}
    begin = 0
    for name, dtype, shape, _ in tensors:
        end = begin + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        header[name] = {"dtype": _ST_DTYPES[dtype], "shape": list(shape), "data_offsets": [begin, end]}
        begin = end
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    with path.open("wb") as stream:
        stream.write(len(encoded).to_bytes(8, "little"))
        stream.write(encoded)
        for _name, _, _, chunks in tensors:
            for chunk in chunks:
                stream.write(chunk)
        if stream.tell() != 8 + len(encoded) + begin:
            raise DatasetError(f"internal error: {name} did not match its declared size")


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        yield from iter(lambda: stream.read(1 << 22), b"")


def pack_split(
    split: Split,
    size: int,
    out_path: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    verify: bool = True,
    codec: Codec = "raw",
    quality: int = 90,
    num_workers: int = 0,
) -> Path:
    """Pack one split, resized to ``size``, into ONE safetensors file; return its path.

    Tensors: ``ages``, ``genders``, ``races`` (int32 ``[N]``) and either ``images``
    (``codec="raw"``: uint8 ``[N, S, S, 3]``, as decoded) or ``encoded`` (uint8 bytes
    of N concatenated WebP/JPEG files at ``quality``) with ``offsets`` (int64
    ``[N+1]``). Metadata (strings): ``format``, ``version``, ``split``, ``size``,
    ``codec``, ``count``, ``names`` (JSON list, item order), ``skipped`` (JSON list of
    unreadable names left out), ``source`` and ``licence``.

    Raw is exact but large (21,346 training faces at 128 px: 1.05 GB); a lent GPU
    machine carries at most 64 MiB, which only an encoded pack fits (WebP q80 at
    128-160 px). The file is written to a temporary name and renamed when complete.
    """
    if codec not in _CODECS:
        raise BadParameterError(f"codec must be one of {_CODECS}, got {codec!r}")
    if codec != "raw" and not 1 <= quality <= 100:
        raise BadParameterError(f"quality must be in [1, 100], got {quality!r}")
    faces = UTKFace(root, split, size=size, verify=verify)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload_path = out.with_name(out.name + f".payload.tmp{os.getpid()}")
    partial_path = out.with_name(out.name + f".tmp{os.getpid()}")
    kept: list[Member] = []
    skipped: list[str] = []
    offsets = [0]
    loader = DataLoader(
        _PackPayloads(faces, codec, quality),
        batch_size=None,
        num_workers=num_workers,
        collate_fn=_identity,
    )
    try:
        with payload_path.open("wb") as payload:
            for member, data in zip(faces.members, loader, strict=True):
                if data is None:
                    skipped.append(member.record.name)
                    continue
                payload.write(data)
                kept.append(member)
                offsets.append(offsets[-1] + len(data))
        count = len(kept)
        labels = {
            field: np.array([getattr(m.record, field) for m in kept], dtype=np.int32)
            for field in ("age", "gender", "race")
        }
        if codec == "raw":
            image_tensors = [("images", np.dtype(np.uint8), (count, size, size, 3), _file_chunks(payload_path))]
        else:
            offsets_array = np.array(offsets, dtype=np.int64)
            image_tensors = [
                ("encoded", np.dtype(np.uint8), (offsets[-1],), _file_chunks(payload_path)),
                ("offsets", np.dtype(np.int64), (count + 1,), [offsets_array.tobytes()]),
            ]
        label_tensors = [
            (f"{field}s", np.dtype(np.int32), (count,), [array.astype("<i4").tobytes()])
            for field, array in labels.items()
        ]
        metadata = {
            "format": PACK_FORMAT,
            "version": PACK_VERSION,
            "split": split,
            "size": str(size),
            "codec": codec,
            "quality": str(quality) if codec != "raw" else "",
            "count": str(count),
            "names": json.dumps([m.record.name for m in kept]),
            "skipped": json.dumps(skipped),
            "source": "UTKFace aligned & cropped 200x200 (Zhang, Song, Qi, CVPR 2017), Lanczos-resized",
            "licence": "UTKFace: non-commercial research purposes only",
        }
        _write_safetensors(partial_path, [*image_tensors, *label_tensors], metadata)
        os.replace(partial_path, out)
    finally:
        payload_path.unlink(missing_ok=True)
        partial_path.unlink(missing_ok=True)
    if skipped:
        logger.warning("pack_split: left out %d unreadable image(s): %s", len(skipped), skipped)
    return out


class PackedFaces(_FaceDataset):
    """A :func:`pack_split` file held in memory, with the items of :class:`UTKFace`.

    ``images`` (uint8 ``[N, S, S, 3]``), ``ages``, ``genders``, ``races`` and
    ``names`` are public, so a training loop may also move them to a GPU whole.
    Encoded packs are decoded once, at construction, on ``decode_threads`` threads.
    Entries that cannot be decoded, or whose name does not parse (or disagrees with
    the stored age), are left out with one warning giving their count, so a damaged
    pack never stops a run: :attr:`skipped_reads` and :attr:`skipped_names` count them.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        augment: bool = False,
        seed: int = 0,
        decode_threads: int | None = None,
    ) -> None:
        super().__init__(augment=augment, seed=seed)
        from safetensors import safe_open
        from safetensors.torch import load_file

        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(f"no packed faces file at {self.path}; make one with pack_split()")
        with safe_open(str(self.path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("format") != PACK_FORMAT or metadata.get("version") != PACK_VERSION:
            raise DatasetError(
                f"{self.path} is not a faceage packed-faces file (format "
                f"{metadata.get('format')!r} version {metadata.get('version')!r})"
            )
        tensors = load_file(str(self.path))
        self.metadata = metadata
        self.size = int(metadata["size"])
        self.names: list[str] = json.loads(metadata["names"])
        self.ages = tensors["ages"]
        self.genders = tensors["genders"]
        self.races = tensors["races"]
        unreadable: list[int] = []
        if metadata["codec"] == "raw":
            self.images = tensors["images"]
        else:
            self.images, unreadable = self._decode_all(tensors["encoded"], tensors["offsets"], decode_threads)
        if not len(self.names) == len(self.ages) == self.images.shape[0]:
            raise DatasetError(f"{self.path}: names, labels and images disagree in length")
        self._drop(unreadable)

    def _drop(self, unreadable: list[int]) -> None:
        """Leave out undecodable entries and malformed names; log how many."""
        malformed = [
            i
            for i, name in enumerate(self.names)
            if (record := parse_name(name)) is None or record.age != int(self.ages[i])
        ]
        self.skipped_reads, self.skipped_names = len(unreadable), len(malformed)
        bad = sorted(set(unreadable) | set(malformed))
        if not bad:
            return
        if len(bad) == len(self.names):
            raise DatasetError(f"{self.path}: none of its {len(bad)} entries is usable; repack it")
        logger.warning(
            "%s: skipped %d unreadable image(s) and %d malformed name(s) of %d entries: %s",
            self.path.name,
            len(unreadable),
            len(malformed),
            len(self.names),
            ", ".join(repr(self.names[i]) for i in bad[:10]) + (" ..." if len(bad) > 10 else ""),
        )
        keep = torch.ones(len(self.names), dtype=torch.bool)
        keep[bad] = False
        self.names = [name for name, k in zip(self.names, keep.tolist()) if k]
        self.ages, self.genders, self.races = self.ages[keep], self.genders[keep], self.races[keep]
        self.images = self.images[keep]

    def _decode_all(
        self, encoded: torch.Tensor, offsets: torch.Tensor, threads: int | None
    ) -> tuple[torch.Tensor, list[int]]:
        """All images, and the positions that could not be decoded (left black)."""
        from concurrent.futures import ThreadPoolExecutor

        data = encoded.numpy()
        bounds = offsets.tolist()
        images = np.zeros((len(bounds) - 1, self.size, self.size, 3), dtype=np.uint8)

        def decode_one(i: int) -> bool:
            try:
                images[i] = decode_face(data[bounds[i] : bounds[i + 1]].tobytes(), self.size)
            except _DECODE_ERRORS:
                return False
            return True

        workers = threads or min(4, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL releases the GIL while decoding
            decoded = list(pool.map(decode_one, range(len(bounds) - 1)))
        return torch.from_numpy(images), [i for i, ok in enumerate(decoded) if not ok]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Item ``index`` as ``(image [3,S,S] in [-1,1], age, group)``."""
        count = len(self)
        if not -count <= index < count:
            raise IndexError(f"index {index} out of range for {count} faces")
        index %= count
        return self._item(index, self.images[index].numpy(), int(self.ages[index]))
