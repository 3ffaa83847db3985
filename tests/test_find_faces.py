"""Finding the faces people photograph: rotated photos, a turned face, a small face, a covered face, no face,
and the per-face message for a face turned too far (YuNet + Face Mesh, ``faceage/face/detect.py``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from faceage.errors import NoFaceError
from faceage.face.detect import TOO_TURNED, Face, detect_faces
from faceage.face.pipeline import find_faces
from faceage.io import load_image

PHOTOS = Path(__file__).resolve().parents[1] / "train" / "real_photos"


@pytest.fixture(scope="module")
def smile():
    return load_image(PHOTOS / "smile.jpg")


@pytest.fixture(scope="module")
def upright(smile):
    faces = detect_faces(smile)
    assert len(faces) == 1 and abs(faces[0].roll) < 10
    return faces[0]


def backdrop(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A cluttered photo-like background with no face: blurred coloured noise at several scales."""
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, 3), np.float32)
    for cell in (64, 16, 4):
        noise = rng.uniform(0, 255, (h // cell + 2, w // cell + 2, 3)).astype(np.float32)
        out += cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)[:h, :w] / 3
    return np.clip(out, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_face_in_a_rotated_photo_is_found_with_its_landmarks_in_place(smile, upright, k):
    rotated = np.ascontiguousarray(np.rot90(smile, k))
    faces = detect_faces(rotated)
    assert len(faces) == 1
    face = faces[0]
    assert abs(abs(face.roll) - {1: 90, 2: 180, 3: 90}[k]) < 15  # lying on a side / upside down
    # where the upright landmarks land in the rotated photo (np.rot90 turns counter-clockwise)
    h, w = smile.shape[:2]
    x, y = upright.landmarks[:, 0], upright.landmarks[:, 1]
    expected = {
        1: np.column_stack([y, w - 1 - x]),
        2: np.column_stack([w - 1 - x, h - 1 - y]),
        3: np.column_stack([h - 1 - y, x]),
    }[k]
    assert np.abs(face.landmarks - expected).mean() < 3.0  # px, on a face ~180 px wide


def test_a_rotated_photo_is_edited_upright_and_pasted_back_in_place(smile):
    from faceage.face.pipeline import faces_in_photo

    crop_up = faces_in_photo(smile, 128)[0].crop.astype(np.float32)
    crop_rot = faces_in_photo(np.ascontiguousarray(np.rot90(smile, 1)), 128)[0].crop.astype(np.float32)
    assert np.abs(crop_up - crop_rot).mean() < 12  # the same upright face (grey levels; resampling differs)


def test_a_turned_face_is_found_with_landmarks_on_it():
    img = load_image(PHOTOS / "turned.jpg")  # a real face turned about 40 degrees (licence: manifest.json)
    faces = detect_faces(img)
    assert len(faces) == 1
    face = faces[0]
    assert 25 <= abs(face.yaw) < TOO_TURNED
    left, t, r, b = face.box
    pad = 0.25 * face.width  # the near jaw line runs to the ear, outside the tight box
    inside = (
        (face.landmarks[:, 0] >= left - pad)
        & (face.landmarks[:, 0] <= r + pad)
        & (face.landmarks[:, 1] >= t - pad)
        & (face.landmarks[:, 1] <= b + pad)
    )
    assert inside.all()  # dlib's 68-point model put this jaw on the background left of the face


@pytest.mark.parametrize("width", [40, 56])
def test_a_small_face_in_a_larger_photo_is_found(smile, upright, width):
    left, t, r, b = (int(round(v)) for v in upright.box)
    m = int(0.4 * (r - left))
    head = smile[max(0, t - m) : b + m, max(0, left - m) : r + m]
    scale = width / upright.width
    small = cv2.resize(head, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    photo = backdrop(480, 640)
    y0, x0 = 300, 420
    photo[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    faces = detect_faces(photo)
    assert len(faces) == 1
    cx, cy = (faces[0].box[0] + faces[0].box[2]) / 2, (faces[0].box[1] + faces[0].box[3]) / 2
    assert x0 <= cx <= x0 + small.shape[1] and y0 <= cy <= y0 + small.shape[0]


def test_a_face_with_its_mouth_and_nose_covered_is_found_and_aligned(smile, upright):
    covered = smile.copy()
    lm = upright.landmarks.astype(int)
    top = lm[29, 1]  # mid-nose down to below the chin: a face mask
    covered[top : lm[8, 1] + 10, lm[2, 0] : lm[14, 0]] = (70, 110, 160)
    faces = detect_faces(covered)
    assert len(faces) == 1
    eyes = slice(36, 48)
    assert np.abs(faces[0].landmarks[eyes] - upright.landmarks[eyes]).mean() < 4.0


@pytest.mark.parametrize("which", ["noise", "gradient", "matplotlib"])
def test_no_face_is_invented(which):
    if which == "noise":
        img = backdrop(768, 1024, seed=3)
    elif which == "gradient":
        img = np.repeat(np.linspace(0, 255, 640, dtype=np.uint8)[None, :, None], 480, 0).repeat(3, 2)
    else:
        mpl = pytest.importorskip("matplotlib")
        path = Path(mpl.get_data_path()) / "sample_data" / "Minduka_Present_Blue_Pack.png"
        img = load_image(path)
    assert detect_faces(img) == []
    with pytest.raises(NoFaceError, match="No face found"):
        find_faces(img, 128)


def _fake(yaw: float, size: float, template: Face) -> Face:
    return Face((0.0, 0.0, size, size), template.landmarks, 0.9, yaw, template.mesh)


def test_a_face_turned_too_far_is_named_and_the_others_edited(smile, upright, monkeypatch):
    faces = [_fake(10, 300, upright), _fake(75, 200, upright), _fake(-45, 100, upright)]
    monkeypatch.setattr("faceage.face.pipeline.detect_faces", lambda img: faces)
    found = find_faces(smile, 64)
    assert len(found.aligned) == 2
    assert len(found.notes) == 2
    assert "Face 2 of 3" in found.notes[0] and "turned too far to edit (about 75 degrees" in found.notes[0]
    assert (
        "Face 3 of 3" in found.notes[1] and "turned about 45 degrees" in found.notes[1] and "weaker" in found.notes[1]
    )
    monkeypatch.setattr("faceage.face.pipeline.detect_faces", lambda img: [faces[1]])
    with pytest.raises(NoFaceError, match="turned too far to edit"):
        find_faces(smile, 64)


def test_the_session_and_the_cli_say_which_face_is_not_edited(smile, upright, monkeypatch, tmp_path, capsys):
    from faceage import cli

    faces = [_fake(10, 300, upright), _fake(-80, 200, upright)]
    monkeypatch.setattr("faceage.face.pipeline.detect_faces", lambda img: faces)
    src = tmp_path / "p.png"
    cv2.imwrite(str(src), cv2.cvtColor(smile, cv2.COLOR_RGB2BGR))
    assert cli.main(["edit", str(src), "--age", "60", "-o", str(tmp_path / "out.png")]) == 0
    assert "Face 2 of 2 (largest first) is turned too far to edit (about 80 degrees" in capsys.readouterr().err
