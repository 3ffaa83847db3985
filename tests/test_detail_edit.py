"""The detail-preserving path (the default): the model's change applied to the photo's own pixels."""

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from faceage.edit.transfer import apply_change, dense_flow, is_single_tone, tone_direction
from faceage.errors import BadParameterError
from faceage.face.align import AlignedFace, template_points


@pytest.fixture(scope="module")
def editor(tiny_weights):
    from faceage.cusp.editor import CUSPEditor

    return CUSPEditor.load(tiny_weights, device="cpu")


@pytest.fixture(scope="module")
def amgan(amgan_weights):
    from faceage.amgan.editor import AMGANEditor

    return AMGANEditor.load(amgan_weights, device="cpu")


def grey(img: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def test_target_at_the_source_age_gives_the_photo_back(editor, amgan, face_photo):
    for ed, controls in ((editor, (8, 4.5)), (amgan, ())):
        s = ed.open(face_photo)
        age = s.read_ages[0]
        out = s.edit(age, *controls)
        assert np.abs(out.astype(int) - face_photo).max() <= 1
        assert not np.array_equal(s.edit(age, *controls, mode="replace"), face_photo)  # the replace path does not
        assert np.abs(s.edit(age + 30, *controls).astype(int) - face_photo).max() > 1  # another age changes it


def test_detail_edit_changes_only_the_face_and_keeps_its_detail(editor, face_photo):
    s = editor.open(face_photo)
    detail, replace = s.edit(70, 8, 4.5), s.edit(70, 8, 4.5, mode="replace")
    changed = np.any(detail != face_photo, axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.any() and ys.min() >= 40 and ys.max() <= 420 and xs.min() >= 140 and xs.max() <= 500
    assert not np.array_equal(detail, replace)


def half_size_face(crop: int, photo_side: int) -> AlignedFace:
    """The template face in a ``photo_side`` photo twice the crop's size (photo -> crop: pixel centres kept)."""
    matrix = np.array([[0.5, 0, -0.25], [0, 0.5, -0.25]])
    return AlignedFace(
        np.zeros((crop, crop, 3), np.uint8), matrix, crop, template_points(crop).astype(np.float32), (photo_side,) * 2
    )


def test_a_smooth_change_keeps_the_photos_own_detail():
    """The model brightens its (blurry) face: the photo's own fine texture comes through untouched, brighter."""
    rng = np.random.default_rng(0)
    crop, photo_side = 128, 256
    aligned = half_size_face(crop, photo_side)
    photo = np.clip(110 + rng.normal(0, 15, (photo_side, photo_side, 1)), 0, 200).repeat(3, 2).astype(np.uint8)
    photo[..., 0] = np.clip(photo[..., 0].astype(int) + 30, 0, 255)  # a colour photo
    recon = cv2.resize(photo, (crop, crop), interpolation=cv2.INTER_AREA).astype(np.float32)
    out = apply_change(photo, aligned, recon + 12, recon)
    inside = face_alpha(aligned, photo_side) > 0.99
    diff = out.astype(int) - photo
    assert inside.sum() > 5000 and np.abs(diff[inside] - 12).max() <= 1  # texture kept, only brighter
    assert np.array_equal(out[~(face_alpha(aligned, photo_side) > 0)], photo[~(face_alpha(aligned, photo_side) > 0)])


def face_alpha(aligned, side):
    from faceage.edit.transfer import change_mask

    return cv2.warpAffine(
        change_mask(aligned, aligned.size), aligned.matrix, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    )


def test_grey_in_grey_out(editor, amgan, face_photo):
    photo = grey(face_photo)
    for ed, controls in ((editor, (8, 4.5)), (amgan, ())):
        s = ed.open(photo)
        for age in (10, 80):
            out = s.edit(age, *controls)
            assert not np.array_equal(out, photo)
            assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_toned_photos_keep_their_tone_and_crops_follow_the_rules(editor, amgan, face_photo):
    y = cv2.cvtColor(face_photo, cv2.COLOR_RGB2GRAY).astype(np.float32)[..., None]
    sepia = np.clip(np.round(y * np.array([1.07, 0.95, 0.78])), 0, 255).astype(np.uint8)
    s = editor.open(sepia)
    out = s.edit(80, 8, 4.5)
    face = (slice(120, 360), slice(200, 440))
    region = out[face].reshape(-1, 3)
    unclipped = region[(region > 8).all(1) & (region < 247).all(1)]  # the tiny model's change clips some
    assert np.abs(out[face].astype(int) - sepia[face]).max() > 3 and len(unclipped) > 10_000
    assert is_single_tone(unclipped) and not is_single_tone(s.edit(80, 8, 4.5, mode="replace")[face])
    for ed, controls in ((editor, (8, 4.5)), (amgan, ())):  # an aligned crop opened as it is: same rules
        crop = grey(np.asarray(Image.fromarray(face_photo[90:390, 170:470]).resize((ed.resolution,) * 2)))
        c = ed.open_crop(crop)
        edited = c.edit(75, *controls)
        assert not np.array_equal(edited, c.photo)
        assert np.array_equal(edited[..., 0], edited[..., 1]) and np.array_equal(edited[..., 1], edited[..., 2])
        assert np.abs(c.edit(c.read_ages[0], *controls).astype(int) - c.photo).max() <= 1


def test_single_tone_faces():
    rng = np.random.default_rng(0)
    y = rng.uniform(20, 235, (4000, 1)).astype(np.float32)
    assert is_single_tone(np.repeat(y, 3, axis=1).astype(np.uint8))
    sepia = np.clip(y * np.array([1.07, 0.95, 0.78]) + np.array([8, 2, -6]), 0, 255).astype(np.uint8)
    assert is_single_tone(sepia)
    direction = tone_direction(sepia)  # a luma change along the tone: R rises most, B least, luma exact
    assert direction[0] > direction[1] > direction[2] and abs(float(direction @ [0.299, 0.587, 0.114]) - 1) < 1e-5
    assert np.array_equal(tone_direction(np.repeat(y, 3, axis=1).astype(np.uint8)), np.ones(3))
    skin, lips = np.array([200, 150, 125]), np.array([170, 90, 95])  # a colour face: hue varies at one luma
    colour = np.where(rng.random((4000, 1)) < 0.3, lips, skin) * rng.uniform(0.6, 1.1, (4000, 1))
    assert not is_single_tone(colour.astype(np.uint8))


def blob(size: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    return np.repeat((200 - 150 * g)[..., None], 3, axis=2).astype(np.float32)


def centroid(img: np.ndarray) -> np.ndarray:
    """Where the dark feature is: the centroid of its core (darker than 150)."""
    dark = np.clip(150 - img[..., 0].astype(np.float32), 0, None)
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    return np.array([(dark * xx).sum(), (dark * yy).sum()]) / dark.sum()


def test_flow_moves_the_photos_feature_with_the_model():
    """The model moves a feature 5 crop pixels right: the photo's (sharper, 2x larger) feature moves 10 px, and
    no ghost is left where it was."""
    crop, photo_side = 128, 256
    aligned = half_size_face(crop, photo_side)
    recon, edit = blob(crop, 64, 70, 6), blob(crop, 69, 70, 6)
    flow = dense_flow(edit.astype(np.uint8), recon.astype(np.uint8))
    assert abs(flow[70, 69, 0] + 5) < 0.5  # edit(p) ~ recon(p + f): the feature came from 5 px to the left
    photo = blob(photo_side, 127.75, 139.75, 4).round().astype(np.uint8)  # sharper than the model's (12 px)
    moved = apply_change(photo, aligned, edit, recon)
    shift = centroid(moved) - centroid(photo)
    assert abs(shift[0] - 10) < 1.5 and abs(shift[1]) < 1
    # the photo's own sharp feature, moved: no ghost where it was, no smear (within a few grey levels)
    expected = blob(photo_side, 137.75, 139.75, 4)
    assert np.abs(moved[110:170, 100:180].astype(np.float32) - expected[110:170, 100:180]).max() < 20
    assert moved[140, 128, 0] > 185
    still = apply_change(photo, aligned, edit, recon, motion=False)  # a colour change alone leaves a ghost
    assert still[140, 128, 0] < 120 and np.abs(still[110:170, 100:180] - expected[110:170, 100:180]).max() > 60


def test_source_age_override_and_cache(editor, face_photo):
    s = editor.open(face_photo)
    read = s.read_ages[0]
    assert 0 <= read <= 100 and s.source_ages() == [read]
    given = 55.0 if abs(read - 55) > 5 else 20.0
    assert np.abs(s.edit(given, 8, 4.5, source_age=given).astype(int) - face_photo).max() <= 1
    assert not np.array_equal(s.edit(70, 8, 4.5, source_age=given), s.edit(70, 8, 4.5))
    assert s.source_ages([None]) == [read] and s.source_ages([given]) == [given]
    for bad in (-1, 140, float("nan"), "old", [30, 40], True):
        with pytest.raises(BadParameterError, match="age"):
            s.edit(70, 8, 4.5, source_age=bad)
    with pytest.raises(BadParameterError, match="mode"):
        s.edit(70, 8, 4.5, mode="paste")
    # a slider move runs one decode: the reconstruction at the face's own age is cached
    calls = []
    decode = editor.T.decode
    editor.T.decode = lambda *a, **k: calls.append(1) or decode(*a, **k)
    try:
        s.edit(30, 1.8, 1.8)
        assert len(calls) == 2  # the edit and the first reconstruction at these sigmas
        s.edit(45, 1.8, 1.8)
        assert len(calls) == 3
    finally:
        editor.T.decode = decode


def test_cli_mode_and_source_age(tiny_weights, face_photo, tmp_path, capsys):
    from faceage.cli import main

    src = tmp_path / "photo.png"
    Image.fromarray(face_photo).save(src)
    w = ["--weights", str(tiny_weights)]
    outs = {}
    for mode in ("detail", "replace"):
        dst = tmp_path / f"{mode}.png"
        assert main([*w, "edit", str(src), "--age", "70", "--mode", mode, "-o", str(dst)]) == 0
        outs[mode] = np.asarray(Image.open(dst).convert("RGB"))
        assert Image.open(dst).text["mode"] == mode
    assert not np.array_equal(outs["detail"], outs["replace"])
    assert "face ages" in capsys.readouterr().err  # what the edit starts from is said
    dst = tmp_path / "same.png"
    assert main([*w, "edit", str(src), "--age", "33", "--source-age", "33", "-o", str(dst)]) == 0
    assert np.abs(np.asarray(Image.open(dst).convert("RGB")).astype(int) - face_photo).max() <= 1
    assert json.loads(Image.open(dst).text["source_ages"]) == [33.0]
    assert main([*w, "edit", str(src), "--age", "33", "--source-age", "130", "-o", str(dst)]) == 2
    assert main([*w, "edit", str(src), "--age", "33", "--source-age", "30", "40", "-o", str(dst)]) == 2
    with pytest.raises(SystemExit, match="2"):  # argparse's choice check: one line, exit 2
        main([*w, "edit", str(src), "--age", "33", "--mode", "paste", "-o", str(dst)])
    err = capsys.readouterr().err
    assert "--source-age must be a number from 0 to 100" in err and "one per face" in err
    assert "Traceback" not in err


def test_app_mode_switch_and_source_age(app_server, face_photo, tmp_path):
    from gradio_client import Client, handle_file

    url, _ = app_server
    client = Client(url, verbose=False)
    src = tmp_path / "photo.png"
    Image.fromarray(face_photo).save(src)

    def after(*args):
        (_, out), _ = client.predict(handle_file(str(src)), -1, *args, api_name="/edit")
        return np.asarray(Image.open(out).convert("RGB")).astype(int)

    detail, replace = after(70, 8, 4.5, "detail", ""), after(70, 8, 4.5, "replace", "")
    assert not np.array_equal(detail, replace)
    assert np.abs(after(42, 8, 4.5, "detail", "42") - face_photo).max() <= 1  # the face's own age, typed
    assert np.array_equal(after(70, 8, 4.5), detail)  # the default: detail-preserving, from the age as read
    said = client.predict(handle_file(str(src)), -1, api_name="/face_ages")
    assert "reads this face as" in said
    from gradio_client.exceptions import AppError

    for bad, word in (("old", "must be a number"), ("140", "from 0 to 100"), ("30, 40", "one per face")):
        with pytest.raises(AppError, match=word):
            after(70, 8, 4.5, "detail", bad)


def test_typed_face_ages():
    from faceage.edit.photo_editor import parse_ages

    assert parse_ages("") is None and parse_ages("  ") is None and parse_ages(None) is None
    assert parse_ages("34") == 34.0 and parse_ages(" 34, 61.5") == [34.0, 61.5] and parse_ages("34,") == [34.0, None]
    for bad in ("old", "34; 61", "-3", "nan", "200"):
        with pytest.raises(BadParameterError, match="own age"):
            parse_ages(bad)


def test_the_detail_path_never_decodes_below_age_one(tiny_weights):
    """Model ages below 1 decode a baby whose change on an adult photo is not a face: the detail path decodes
    at least age 1 (the replace path still shows the model's face at the age asked)."""
    from pathlib import Path

    from faceage.cusp.editor import DETAIL_MIN_AGE, CUSPEditor

    photo = Path(__file__).resolve().parents[1] / "train" / "real_photos" / "smile.jpg"
    s = CUSPEditor.load(tiny_weights, device="cpu").open(photo)
    assert DETAIL_MIN_AGE == 1.0
    assert np.array_equal(s.edit(0, 8, 4.5), s.edit(1, 8, 4.5))
    assert not np.array_equal(s.edit(0, 8, 4.5, mode="replace"), s.edit(1, 8, 4.5, mode="replace"))
