"""Tests of the face pipeline: image loading, alignment, paste-back, detection.

Everything runs on images made in memory. The tests that need a real face read UTKFace
test crops straight from the shared tar shards and skip cleanly when they are absent.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from bad_inputs import bomb_png, encode
from PIL import Image

from faceage import io as faceio
from faceage.edit.paste import face_mask, paste_back
from faceage.errors import BadImageError, FaceIndexError, NoFaceError
from faceage.face.align import (
    ALIGN_SUBSET,
    LANDMARK_SUBSETS,
    TEMPLATE_68,
    align_face,
    alignment_matrix,
    invert_affine,
    similarity_transform,
    template_points,
    transform_points,
)
from faceage.face.detect import Face, detect_faces
from faceage.face.pipeline import choose_faces, faces_in_photo
from faceage.io import load_image, save_png

REAL_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "utkface"
CROP_CORNERS = np.array([[0, 0], [199, 0], [0, 199], [199, 199]], float)


# --------------------------------------------------------------------------- helpers


def similarity(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    """A (2, 3) similarity: rotate by ``angle_deg`` about the origin, scale, then shift."""
    a = np.deg2rad(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([rot, np.array(shift, float)[:, None]])


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random colour image (upsampled noise): resampling barely changes it."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (h // 16 + 2, w // 16 + 2, 3)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def utk_test():
    """The UTKFace test split (skips when the shared data is absent)."""
    if not REAL_ROOT.is_dir():
        pytest.skip(f"UTKFace not found at {REAL_ROOT}")
    from faceage.data.utkface import UTKFace

    return UTKFace(REAL_ROOT, "test", verify=False)


def utk_crops(faces, n: int) -> list[np.ndarray]:
    """``n`` test crops spread over the split (it is in name order, i.e. by age)."""
    positions = np.linspace(0, len(faces) - 1, n).round().astype(int)
    return [load_image(faces.read_bytes(int(p))) for p in positions]


# --------------------------------------------------------------------------- io: loading


def test_exif_orientation_is_applied():
    # 60 wide x 40 high: left half red, right half blue.
    arr = np.zeros((40, 60, 3), np.uint8)
    arr[:, :30] = (255, 0, 0)
    arr[:, 30:] = (0, 0, 255)
    for orientation, red_at_top in ((6, True), (8, False)):  # 6: rotate 90 CW to display; 8: 90 CCW
        exif = Image.Exif()
        exif[0x0112] = orientation
        img = load_image(encode(Image.fromarray(arr), "JPEG", quality=95, exif=exif.tobytes()))
        assert img.shape == (60, 40, 3)
        top, bottom = img[5:25].mean((0, 1)), img[35:55].mean((0, 1))
        red, blue = (top, bottom) if red_at_top else (bottom, top)
        assert red[0] > 200 and red[2] < 60, (orientation, red)
        assert blue[2] > 200 and blue[0] < 60, (orientation, blue)


def _rgb_test_image() -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (40, 40), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: encode(_rgb_test_image().convert("L"), "PNG"),
        lambda: encode(_rgb_test_image().convert("RGBA"), "PNG"),
        lambda: encode(_rgb_test_image().convert("CMYK"), "JPEG"),
        lambda: encode(_rgb_test_image().convert("P"), "GIF"),
        lambda: encode(Image.fromarray(np.full((40, 50), 40000, np.uint16)), "PNG"),
        lambda: encode(_rgb_test_image().convert("1"), "PNG"),
        lambda: encode(_rgb_test_image(), "WEBP"),
        _animated_gif,
        lambda: _rgb_test_image().convert("LA"),
        lambda: np.zeros((40, 50), np.uint16),
        lambda: np.zeros((40, 50, 4), np.uint8),
    ],
    ids=["gray", "rgba", "cmyk", "palette-gif", "png16", "1bit", "webp", "animated-gif", "pil-LA", "np-u16", "np-rgba"],
)
def test_modes_load_as_rgb_uint8(make):
    img = load_image(make())
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.flags.writeable


def test_mode_values_are_converted_sensibly(tmp_path):
    # 16-bit: scaled, not clipped
    a16 = np.array([[0, 32768, 65535] * 12] * 36, np.uint16)
    assert load_image(encode(Image.fromarray(a16), "PNG"))[0, :3, 0].tolist() == [0, 128, 255]
    # alpha: transparent pixels composite on white, opaque ones keep their colour
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[:, :20] = (10, 20, 30, 255)
    rgba[:, 20:] = (0, 0, 0, 0)
    img = load_image(rgba)
    assert img[0, 0].tolist() == [10, 20, 30] and img[0, 39].tolist() == [255, 255, 255]
    # animated GIF: the first frame (red), not the second (blue)
    first = load_image(_animated_gif())
    assert first[20, 20, 0] > 200 and first[20, 20, 2] < 50
    # path and file object give the same as bytes
    data = encode(_rgb_test_image(), "PNG")
    (tmp_path / "x.png").write_bytes(data)
    with open(tmp_path / "x.png", "rb") as f:
        assert np.array_equal(load_image(f), load_image(data))
    assert np.array_equal(load_image(tmp_path / "x.png"), np.asarray(_rgb_test_image()))


def _truncated_jpeg() -> bytes:
    data = encode(_rgb_test_image(), "JPEG", quality=90)
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (_truncated_jpeg(), "truncated"),
        (np.random.default_rng(0).bytes(5000), "not an image"),
        (bomb_png(), "too large"),
        (encode(Image.new("RGB", (20, 300)), "PNG"), "too small"),
    ],
    ids=["0-byte", "truncated-jpeg", "random-bytes", "decompression-bomb", "too-small"],
)
def test_bad_inputs_raise_bad_image_error_with_advice(data, words):
    with pytest.raises(BadImageError) as err:
        load_image(data)
    message = str(err.value)
    assert words in message
    assert ":" in message and len(message) > 40  # says what to do, not just what failed


def test_file_limits(tmp_path, monkeypatch):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(BadImageError, match="empty"):
        load_image(tmp_path / "empty.jpg")
    with pytest.raises(BadImageError, match="No such image file"):
        load_image(tmp_path / "missing.jpg")
    monkeypatch.setattr(faceio, "MAX_BYTES", 1000)
    with pytest.raises(BadImageError, match="too big"):
        load_image(encode(_rgb_test_image(), "PNG"))
    monkeypatch.setattr(faceio, "MAX_PIXELS", 1000)
    with pytest.raises(BadImageError, match="too large"):
        load_image(np.zeros((40, 50, 3), np.uint8))
    with pytest.raises(BadImageError, match="uint8"):
        load_image(np.zeros((40, 50, 3), np.float32))


def test_save_png_writes_metadata_atomically(tmp_path):
    img = np.asarray(_rgb_test_image()).copy()
    path = save_png(img, tmp_path / "out.png", {"target_age": 70, "model": "cusp", "note": "âge ✓"})
    with Image.open(path) as saved:
        assert saved.text == {"target_age": "70", "model": "cusp", "note": "âge ✓"}
        assert np.array_equal(np.asarray(saved.convert("RGB")), img)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary left behind
    with pytest.raises(ValueError):
        save_png(img, tmp_path / "bad.png", {"": "x"})
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


# --------------------------------------------------------------------------- alignment


def test_template_is_a_plausible_face_in_the_200px_frame():
    assert TEMPLATE_68.shape == (68, 2) and not TEMPLATE_68.flags.writeable
    assert (TEMPLATE_68 > 0).all() and (TEMPLATE_68 < 200).all()
    left_eye, right_eye = TEMPLATE_68[36:42].mean(0), TEMPLATE_68[42:48].mean(0)
    assert left_eye[0] < 100 < right_eye[0] and abs(left_eye[1] - right_eye[1]) < 3
    assert left_eye[1] < TEMPLATE_68[30, 1] < TEMPLATE_68[57, 1] < TEMPLATE_68[8, 1]  # eyes, nose, mouth, chin
    assert set(LANDMARK_SUBSETS[ALIGN_SUBSET]) <= set(range(68))


@pytest.mark.parametrize(
    "angle, scale, shift", [(17.0, 1.7, (123.4, -56.7)), (-40.0, 0.3, (5.0, 900.0)), (180.0, 4.0, (0.0, 0.0))]
)
def test_similarity_transform_recovers_a_known_similarity(angle, scale, shift):
    known = similarity(angle, scale, shift)  # template frame -> photo
    photo_pts = transform_points(known, TEMPLATE_68)
    estimated = similarity_transform(photo_pts, TEMPLATE_68)  # photo -> template frame
    assert np.abs(transform_points(estimated, photo_pts) - TEMPLATE_68).max() < 1e-3
    assert np.allclose(estimated, invert_affine(known), atol=1e-6)


def test_similarity_transform_never_reflects():
    mirrored = TEMPLATE_68 * [-1, 1]
    m = similarity_transform(mirrored, TEMPLATE_68)
    assert np.linalg.det(m[:, :2]) > 0
    with pytest.raises(ValueError):
        similarity_transform(np.ones((5, 2)), TEMPLATE_68[:5])


def test_align_face_round_trip():
    size = 256
    canonical = smooth_image(size, size)
    to_photo = similarity(23.0, 2.0, (300.0, 80.0))  # crop frame -> photo
    photo = cv2.warpAffine(canonical, to_photo, (900, 800), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    landmarks = transform_points(to_photo, template_points(size))
    aligned = align_face(photo, landmarks, size=size)
    assert aligned.crop.shape == (size, size, 3) and aligned.crop.dtype == np.uint8
    assert aligned.source_shape == (800, 900)
    assert np.allclose(aligned.matrix, invert_affine(to_photo), atol=1e-6)
    assert np.abs(aligned.landmarks - template_points(size)).max() < 1e-3
    # there and back: the crop equals the canonical image (away from the edges)
    diff = np.abs(aligned.crop.astype(int) - canonical.astype(int))[8:-8, 8:-8]
    assert diff.mean() < 1.5 and np.percentile(diff, 99) < 8


def test_align_face_antialiases_strong_downscaling():
    # a 1-px checkerboard seen at 1/8 scale must come out flat grey, not as moire
    board = ((np.indices((1600, 1600)).sum(0) % 2) * 255).astype(np.uint8)
    photo = np.repeat(board[:, :, None], 3, axis=2)
    landmarks = transform_points(similarity(10.0, 8.0 * 200 / 128, (200.0, 100.0)), template_points(128))
    crop = align_face(photo, landmarks, size=128).crop
    assert abs(crop.mean() - 127.5) < 3 and crop.std() < 8


def test_face_outside_the_photo_is_border_replicated():
    photo = smooth_image(300, 300)
    landmarks = transform_points(similarity(0.0, 1.5, (-150.0, 50.0)), template_points(200))  # half outside
    aligned = align_face(photo, landmarks, size=200)
    left = aligned.crop[:, :40]
    # the part left of the photo repeats the photo's first column: constant along rows
    assert np.abs(np.diff(left.astype(int), axis=1)).max() <= 1


# --------------------------------------------------------------------------- paste-back


def _aligned_on_noise(shift=(160.0, 90.0), size=128, seed=3):
    rng = np.random.default_rng(seed)
    photo = rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)
    landmarks = transform_points(similarity(-12.0, 1.1, shift), TEMPLATE_68)
    return photo, align_face(photo, landmarks, size=size)


def _mask_in_photo(aligned) -> np.ndarray:
    """The face mask warped into the photo, computed independently of paste_back."""
    h, w = aligned.source_shape
    return cv2.warpAffine(face_mask(aligned), aligned.matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


@pytest.mark.parametrize(
    "shift", [(160.0, 90.0), (-90.0, 150.0), (380.0, -60.0)], ids=["inside", "cut-left", "cut-top-right"]
)
def test_paste_back_changes_only_the_face(shift):
    photo, aligned = _aligned_on_noise(shift)
    before = photo.copy()
    edited = 255 - aligned.crop  # every crop pixel changes
    out = paste_back(photo, edited, aligned)
    assert np.array_equal(photo, before)  # the input is not modified
    assert out.shape == photo.shape and out.dtype == np.uint8
    alpha = _mask_in_photo(aligned)
    support = cv2.dilate((alpha > 0).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # + bilinear reach
    assert np.array_equal(out[~support], photo[~support])  # bit-identical outside the mask
    changed = np.any(out != photo, axis=2)
    assert (alpha > 0.5).sum() > 1000 and changed[alpha > 0.5].mean() > 0.95
    nose = np.round(transform_points(aligned.inverse, aligned.landmarks[30:31])[0]).astype(int)
    if 0 <= nose[0] < photo.shape[1] and 0 <= nose[1] < photo.shape[0]:
        assert changed[nose[1], nose[0]]  # the face centre is replaced


def test_paste_back_of_the_unedited_crop_is_nearly_invisible():
    photo = smooth_image(360, 480)
    landmarks = transform_points(similarity(8.0, 1.3, (150.0, 60.0)), TEMPLATE_68)
    aligned = align_face(photo, landmarks, size=256)
    out = paste_back(photo, aligned.crop, aligned)
    assert np.abs(out.astype(int) - photo.astype(int)).mean() < 0.5
    # another resolution of the same canonical frame is accepted
    small = cv2.resize(aligned.crop, (128, 128), interpolation=cv2.INTER_AREA)
    assert np.abs(paste_back(photo, small, aligned).astype(int) - photo.astype(int)).mean() < 1.5


def test_face_mask_is_soft_and_zero_at_the_crop_edge():
    _, aligned = _aligned_on_noise(size=128)
    mask = face_mask(aligned)
    assert mask.dtype == np.float32 and mask.shape == (128, 128)
    assert mask.max() == pytest.approx(1.0, abs=1e-3) and mask.min() == 0.0
    assert not mask[0].any() and not mask[-1].any() and not mask[:, 0].any() and not mask[:, -1].any()
    nose = np.round(aligned.landmarks[30]).astype(int)
    assert mask[nose[1], nose[0]] > 0.99
    assert 0.0 < np.mean((mask > 0) & (mask < 1)) < 0.6  # a feathered band exists


def test_paste_back_refuses_the_wrong_photo():
    photo, aligned = _aligned_on_noise()
    with pytest.raises(ValueError, match="aligned from"):
        paste_back(photo[:-1], aligned.crop, aligned)


# --------------------------------------------------------------------------- detection and pipeline


def test_no_face_in_a_gradient():
    yy, xx = np.mgrid[0:300, 0:400]
    gradient = np.stack([xx * 255 // 400, yy * 255 // 300, np.full_like(xx, 128)], axis=2).astype(np.uint8)
    assert detect_faces(gradient) == []
    with pytest.raises(NoFaceError, match="No face found"):
        faces_in_photo(gradient, 128)


def test_choose_faces_validates_the_index():
    faces = [Face((0, 0, 10 - i, 10 - i), np.zeros((68, 2), np.float32), 1.0) for i in range(3)]
    assert choose_faces(faces, None) == faces and choose_faces(faces, "all") == faces
    assert choose_faces(faces, 2) == [faces[2]]
    for bad in (3, -1, "first", 1.0, True):
        with pytest.raises(FaceIndexError):
            choose_faces(faces, bad)


def test_realigning_utkface_test_crops_is_close_to_identity(utk_test):
    crops = utk_crops(utk_test, 20)
    displacements = []
    for crop in crops:
        faces = detect_faces(crop)
        if faces:
            m = alignment_matrix(faces[0].landmarks, 200)
            displacements.append(np.hypot(*(transform_points(m, CROP_CORNERS) - CROP_CORNERS).T).mean())
    assert len(displacements) >= 18  # measured: ~99.5% of test crops
    d = np.array(displacements)
    assert np.median(d) < 5.0 and d.mean() < 6.0, d.round(1)  # measured: mean ~3.9, median ~3.2 px


def test_two_faces_in_one_photo(utk_test):
    crop = utk_crops(utk_test, 5)[2]
    canvas = smooth_image(420, 760, seed=5) // 2 + 60
    canvas[100:300, 40:240] = crop  # 200 px face
    big = cv2.resize(crop, (300, 300), interpolation=cv2.INTER_CUBIC)
    canvas[60:360, 400:700] = big  # 300 px face
    faces = detect_faces(canvas)
    assert len(faces) == 2
    assert faces[0].width > faces[1].width and faces[0].box[0] > 350 > faces[1].box[0]  # largest first
    assert faces[0].landmarks.shape == (68, 2) and faces[0].landmarks.dtype == np.float32
    aligned = faces_in_photo(canvas, 128, face_index="all")
    assert len(aligned) == 2 and all(a.crop.shape == (128, 128, 3) for a in aligned)
    # both aligned crops show the same face: they are close to each other
    assert np.abs(aligned[0].crop.astype(int) - aligned[1].crop.astype(int)).mean() < 20
    assert len(faces_in_photo(canvas, 128, face_index=1)) == 1
    with pytest.raises(FaceIndexError, match="has 2 faces"):
        faces_in_photo(canvas, 128, face_index=2)


def test_a_photo_opened_in_text_mode_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "p.jpg"
    _rgb_test_image().save(path, "JPEG")
    with open(path, encoding="utf-8") as f, pytest.raises(BadImageError, match=r"text mode.*'rb'"):
        load_image(f)
    with open(path, "rb") as f:
        assert load_image(f).shape[2] == 3
