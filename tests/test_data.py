"""Tests of faceage.data: age groups, the UTKFace tar reader, packing.

The core tests build their own tiny shards in tmp_path; the real-data tests at the end
skip cleanly when the shared UTKFace folder is absent.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from faceage.data import ages
from faceage.data import utkface as utk
from faceage.data.utkface import DatasetError, PackedFaces, UTKFace, UTKFaceIndex, pack_split, parse_name
from faceage.errors import BadParameterError

REAL_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "utkface"
REAL_MALFORMED = {
    "24_0_1_20170116220224657 .jpg.chip.jpg",
    "39_1_20170116174525125.jpg.chip.jpg",
    "55_0_0_20170116232725357jpg.chip.jpg",
    "61_1_20170109142408075.jpg.chip.jpg",
    "61_1_20170109150557335.jpg.chip.jpg",
}

# The malformed kinds of the release: missing field, stray space, missing dot; plus bad codes.
MALFORMED = [
    "61_1_20170109142408075.jpg.chip.jpg",
    "39_1_20170116174525125.jpg.chip.jpg",
    "24_0_1_20170116220224657 .jpg.chip.jpg",
    "55_0_0_20170116232725357jpg.chip.jpg",
]
GOOD = [
    f"{age}_{age % 2}_{age % 5}_2017011{age % 10}1234567{age:02d}.jpg.chip.jpg"
    for age in (1, 4, 8, 12, 17, 25, 33, 45, 60, 85)
]
CORRUPT = "30_0_0_20170117000000000.jpg.chip.jpg"  # parses, but its bytes are not an image
SIDE = 24  # tiny test JPEGs


def _jpeg(seed: int, side: int = SIDE) -> bytes:
    """A small deterministic JPEG, left half bright so that a mirror image differs."""
    pixels = np.random.default_rng(seed).integers(0, 120, size=(side, side, 3), dtype=np.uint8)
    pixels[:, : side // 2] += 120
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, format="JPEG", quality=95)
    return stream.getvalue()


def _write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Keep the checksum marker of the tiny datasets out of the user's cache."""
    monkeypatch.setenv(utk.CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture
def root(tmp_path) -> Path:
    """Two shards: 10 good names, 4 malformed, 1 corrupt image; test.txt holds 3 good names."""
    folder = tmp_path / "utkface"
    folder.mkdir()
    members = [(name, _jpeg(i)) for i, name in enumerate(GOOD)]
    members += [(name, _jpeg(100 + i)) for i, name in enumerate(MALFORMED)]
    members.append((CORRUPT, b"this is not a JPEG"))
    shards = {"faces-00.tar": members[::2], "faces-01.tar": members[1::2]}
    sums = []
    for name, content in shards.items():
        _write_tar(folder / name, content)
        sums.append(f"{hashlib.sha256((folder / name).read_bytes()).hexdigest()}  {name}")
    (folder / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    (folder / "test.txt").write_text("\n".join([GOOD[0], GOOD[5], GOOD[9]]) + "\n")
    return folder


# --------------------------------------------------------------------------------------
# ages
# --------------------------------------------------------------------------------------


def test_age_groups_boundaries():
    bounds = [
        (0, 0),
        (2.99, 0),
        (3, 1),
        (6, 1),
        (7, 2),
        (9.5, 2),
        (10, 3),
        (14, 3),
        (15, 4),
        (19, 4),
        (20, 5),
        (29.9, 5),
        (30, 6),
        (40, 7),
        (49, 7),
        (50, 8),
        (69, 8),
        (70, 9),
        (116, 9),
    ]
    for age, group in bounds:
        assert ages.age_to_group(age) == group, age
    assert len(ages.AGE_GROUPS) == ages.NUM_GROUPS == 10
    assert ages.GROUP_NAMES[0] == "0-2" and ages.GROUP_NAMES[-1] == "70+"
    with pytest.raises(BadParameterError):
        ages.age_to_group(-1)
    with pytest.raises(BadParameterError):
        ages.age_to_group(float("nan"))


def test_group_centres():
    assert ages.group_centre(0) == 1.5
    assert ages.group_centre(5) == 25.0
    assert ages.group_centre(8) == 60.0
    assert ages.group_centre(9) == ages.OPEN_GROUP_CENTRE == 80.0
    for g in range(ages.NUM_GROUPS):
        assert ages.age_to_group(ages.group_centre(g)) == g
    with pytest.raises(BadParameterError):
        ages.group_centre(10)


def test_normalize_age_clips_and_inverts():
    assert ages.normalize_age(50) == 0.5
    assert ages.normalize_age(116) == 1.0 and ages.normalize_age(-3) == 0.0
    assert ages.denormalize_age(ages.normalize_age(37.5)) == pytest.approx(37.5)
    tensor = ages.normalize_age(torch.tensor([0.0, 50.0, 150.0]))
    assert torch.equal(tensor, torch.tensor([0.0, 0.5, 1.0]))
    array = ages.normalize_age(np.array([25.0, 200.0]))
    assert np.allclose(array, [0.25, 1.0])


# --------------------------------------------------------------------------------------
# names, index, checksums
# --------------------------------------------------------------------------------------


def test_parse_name():
    record = parse_name("25_1_3_20170116174525125.jpg.chip.jpg")
    assert record == utk.Record("25_1_3_20170116174525125.jpg.chip.jpg", 25, 1, 3)
    for name in MALFORMED + [
        "25_2_0_20170116174525125.jpg.chip.jpg",
        "25_0_5_2017.jpg.chip.jpg",
        "x_0_0_2017.jpg.chip.jpg",
        "25_0_0_2017.jpg",
        "",
        "dir/25_0_0_2017.jpg.chip.jpg",
    ]:
        assert parse_name(name) is None, name


def test_index_reports_and_skips_malformed(root, caplog):
    with caplog.at_level(logging.WARNING, logger="faceage.data.utkface"):
        index = UTKFaceIndex.build(root)
    assert sorted(index.malformed) == sorted(MALFORMED)
    assert len(index.members) == len(GOOD) + 1
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "4 member(s)" in warning and all(repr(name) in warning for name in MALFORMED)


def test_splits(root):
    index = UTKFaceIndex.build(root)
    train, test = index.split("train"), index.split("test")
    assert {m.record.name for m in test} == {GOOD[0], GOOD[5], GOOD[9]}
    assert len(train) == len(GOOD) + 1 - 3
    assert not {m.record.name for m in train} & {m.record.name for m in test}
    assert len(train) + len(test) + len(index.malformed) == len(GOOD) + len(MALFORMED) + 1
    assert len(index.split("all")) == len(train) + len(test)
    with pytest.raises(BadParameterError):
        index.split("validation")


def test_missing_folder_and_test_list(tmp_path, root):
    with pytest.raises(DatasetError, match="no UTKFace folder"):
        UTKFaceIndex.build(tmp_path / "nowhere")
    (root / "test.txt").unlink()
    with pytest.raises(DatasetError, match="test.txt"):
        UTKFaceIndex.build(root)


def test_verify_checksums_detects_corruption_and_caches(root, monkeypatch):
    utk.verify_checksums(root)
    marker = Path(utk._cache_dir()) / "utkface-verified.json"
    assert len(json.loads(marker.read_text())) == 2

    def fail(path):
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr(utk, "_sha256", fail)
    utk.verify_checksums(root)  # served by the marker
    monkeypatch.undo()

    shard = root / "faces-00.tar"
    data = bytearray(shard.read_bytes())
    data[700] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="corrupt"):
        utk.verify_checksums(root, use_cache=False)
    with pytest.raises(DatasetError, match="corrupt"):
        UTKFaceIndex.build(root)  # size is the same, but the mtime moved: re-hashed
    UTKFaceIndex.build(root, verify=False)  # verify=False skips the check


# --------------------------------------------------------------------------------------
# the Dataset
# --------------------------------------------------------------------------------------


def test_items_shape_range_labels(root):
    faces = UTKFace(root, "all", size=16)
    assert len(faces) == len(GOOD) + 1
    for position, record in enumerate(faces.records):
        if record.name == CORRUPT:
            continue
        image, age, group = faces[position]
        assert image.shape == (3, 16, 16) and image.dtype == torch.float32
        assert -1.0 <= image.min() and image.max() <= 1.0
        assert age.dtype == torch.float32 and float(age) == record.age
        assert group == ages.age_to_group(record.age)


def test_resize_is_deterministic_and_native_size_is_exact(root):
    first, second = UTKFace(root, "train", size=40), UTKFace(root, "train", size=40)
    assert torch.equal(first[0][0], second[0][0])
    native = UTKFace(root, "train", size=SIDE)
    decoded = np.asarray(Image.open(io.BytesIO(native.read_bytes(0))).convert("RGB"))
    assert torch.equal(native[0][0], torch.from_numpy(decoded.copy()).permute(2, 0, 1).float() / 127.5 - 1)


def test_unreadable_image_is_skipped_and_counted(root, caplog):
    faces = UTKFace(root, "all", size=16)
    bad = [r.name for r in faces.records].index(CORRUPT)
    following = (bad + 1) % len(faces)
    with caplog.at_level(logging.WARNING, logger="faceage.data.utkface"):
        image, age, _ = faces[bad]
    assert torch.equal(image, faces[following][0]) and float(age) == faces.records[following].age
    assert faces.skipped_reads == 1
    assert any(CORRUPT in r.getMessage() for r in caplog.records)


def test_flip_is_seeded_by_index_and_epoch(root):
    plain = UTKFace(root, "all", size=16)
    augmented = UTKFace(root, "all", size=16, augment=True, seed=3, index=plain.index)
    again = UTKFace(root, "all", size=16, augment=True, seed=3, index=plain.index)
    good = [i for i, r in enumerate(plain.records) if r.name != CORRUPT]
    pattern = [augmented.flipped(i) for i in good]
    assert pattern == [again.flipped(i) for i in good]
    assert 0 < sum(pattern) < len(pattern)
    for i, flipped in zip(good, pattern, strict=True):
        expected = plain[i][0].flip(-1) if flipped else plain[i][0]
        assert torch.equal(augmented[i][0], expected)
        assert torch.equal(augmented[i][0], again[i][0])
    patterns = set()
    for epoch in range(4):
        augmented.set_epoch(epoch)
        patterns.add(tuple(augmented.flipped(i) for i in good))
    assert len(patterns) > 1
    assert not any(plain.flipped(i) for i in good)


def test_dataloader_workers_read_lazily_and_share_the_skip_counter(root):
    faces = UTKFace(root, "all", size=16)
    loader = DataLoader(faces, batch_size=4, num_workers=2, shuffle=False)
    images = torch.cat([batch[0] for batch in loader])
    assert images.shape == (len(faces), 3, 16, 16)
    serial = torch.stack([faces[i][0] for i in range(len(faces))])
    assert torch.equal(images, serial)
    assert faces.skipped_reads == 2  # once in a worker, once in the serial pass


# --------------------------------------------------------------------------------------
# packing
# --------------------------------------------------------------------------------------


def test_pack_split_raw_round_trip(root, tmp_path):
    out = pack_split("all", 16, tmp_path / "packed" / "all16.safetensors", root=root)
    packed = PackedFaces(out)
    faces = UTKFace(root, "all", size=16)
    kept = [i for i, r in enumerate(faces.records) if r.name != CORRUPT]
    assert packed.names == [faces.records[i].name for i in kept]
    assert json.loads(packed.metadata["skipped"]) == [CORRUPT]
    assert packed.images.shape == (len(kept), 16, 16, 3) and packed.images.dtype == torch.uint8
    for j, i in enumerate(kept):
        image, age, group = packed[j]
        expected_image, expected_age, expected_group = faces[i]
        assert torch.equal(image, expected_image)
        assert float(age) == float(expected_age) and group == expected_group
        assert int(packed.genders[j]) == faces.records[i].gender and int(packed.races[j]) == faces.records[i].race
    assert not list(out.parent.glob("*.tmp*"))


def test_pack_split_encoded_round_trip_with_workers(root, tmp_path):
    out = tmp_path / "train16.webp.safetensors"
    pack_split("train", 16, out, root=root, codec="webp", quality=90, num_workers=2)
    packed = PackedFaces(out, augment=True, seed=1)
    faces = UTKFace(root, "train", size=16)
    kept = [i for i, r in enumerate(faces.records) if r.name != CORRUPT]
    assert packed.metadata["codec"] == "webp" and len(packed) == len(kept)
    for j, i in enumerate(kept):
        item = packed[j][0]
        unflipped = item.flip(-1) if packed.flipped(j) else item
        assert (unflipped - faces[i][0]).abs().mean() < 0.1  # lossy, but the same picture
    assert packed.flipped(0) == UTKFace(root, "train", size=16, augment=True, seed=1).flipped(0)


def test_packed_faces_skip_corrupt_entries_and_malformed_names(root, tmp_path, caplog):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    out = pack_split("all", 16, tmp_path / "all16.jpeg.safetensors", root=root, codec="jpeg")
    clean = PackedFaces(out)
    assert clean.skipped_reads == clean.skipped_names == 0
    tensors = load_file(str(out))
    with safe_open(str(out), framework="pt") as handle:
        metadata = handle.metadata()
    bounds = tensors["offsets"].tolist()
    tensors["encoded"][bounds[2] : bounds[3]] = 7  # entry 2: bytes that no decoder reads
    names = json.loads(metadata["names"])
    names[5] = MALFORMED[0]  # entry 5: a name that does not parse
    metadata["names"] = json.dumps(names)
    damaged = tmp_path / "damaged.safetensors"
    save_file(tensors, str(damaged), metadata=metadata)
    with caplog.at_level(logging.WARNING, logger="faceage.data.utkface"):
        packed = PackedFaces(damaged)
    assert packed.skipped_reads == 1 and packed.skipped_names == 1
    assert "skipped 1 unreadable image(s) and 1 malformed name(s)" in caplog.text
    keep = [i for i in range(len(clean)) if i not in (2, 5)]
    assert packed.names == [clean.names[i] for i in keep] and len(packed) == len(clean) - 2
    for j, i in enumerate(keep):
        assert torch.equal(packed[j][0], clean[i][0]) and float(packed[j][1]) == float(clean[i][1])


def test_pack_rejects_bad_options(root, tmp_path):
    with pytest.raises(BadParameterError):
        pack_split("train", 16, tmp_path / "x.safetensors", root=root, codec="png")
    with pytest.raises(DatasetError):
        PackedFaces(tmp_path / "absent.safetensors")


# --------------------------------------------------------------------------------------
# the real UTKFace release (skipped when the shared folder is absent)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_index() -> UTKFaceIndex:
    if not (REAL_ROOT / "SHA256SUMS").is_file():
        pytest.skip(f"UTKFace is not at {REAL_ROOT}")
    return UTKFaceIndex.build(REAL_ROOT)


def test_real_malformed_names_are_the_five_known(real_index):
    assert set(real_index.malformed) == REAL_MALFORMED and len(real_index.malformed) == 5


def test_real_split_sizes(real_index):
    test, train = real_index.split("test"), real_index.split("train")
    assert len(test) == 2356
    assert len(train) + len(test) + len(real_index.malformed) == 23707


def test_real_images_decode(real_index):
    faces = UTKFace(split="test", size=64, index=real_index)
    image, age, group = faces[0]
    assert image.shape == (3, 64, 64) and float(age) == faces.records[0].age
    assert faces.skipped_reads == 0
