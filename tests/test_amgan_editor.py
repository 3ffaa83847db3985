"""The AMGAN editor API on a real face (tiny random weights): maps, edits, painted maps, tiles, errors."""

import numpy as np
import pytest
import torch
from bad_inputs import BAD_FILES
from PIL import Image

from faceage.amgan.editor import AMGANEditor, as_map
from faceage.amgan.maps import map_to_image, sign_zone_masks
from faceage.errors import BadParameterError, CheckpointError, MissingWeightsError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def editor(amgan_weights):
    return AMGANEditor.load(amgan_weights)


@pytest.fixture(scope="module")
def session(editor, face_photo):
    return editor.open(face_photo)


def test_missing_and_wrong_weights(tmp_path, tiny_weights):
    with pytest.raises(MissingWeightsError, match="AMGAN weights not found"):
        AMGANEditor.load(tmp_path / "none.safetensors")
    with pytest.raises(CheckpointError, match="no AMGAN config"):
        AMGANEditor.load(tiny_weights)  # CUSP weights are refused with a message, not a traceback


def test_aging_map_follows_the_face_landmarks(session):
    face = session.faces[0]
    assert face.x.shape == (1, 3, 64, 64)
    base = session.aging_map(60)
    raised = session.aging_map(60, signs={"forehead": 1.0})
    assert base.shape == raised.shape == (2, 64, 64)
    zone = torch.from_numpy(sign_zone_masks(face.landmarks, 64)["forehead"])
    change = (raised - base)[0].abs()
    assert change[zone].mean() > 0.3  # the forehead zone went from 0.6 to 1.0
    assert change[zone].sum() > 0.7 * change.sum()  # mostly there (the rest is the blur's spill)
    assert abs(float(base[0][zone].mean()) - 0.6) < 0.05  # a sign left out follows the age


def test_edit_changes_only_the_face_and_each_control_matters(session, face_photo):
    a = session.edit(60)
    assert a.shape == face_photo.shape and a.dtype == np.uint8
    changed = np.any(a != face_photo, axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.sum() > 1000
    assert ys.min() >= 60 and ys.max() <= 420 and xs.min() >= 140 and xs.max() <= 500  # face at 90:390, 170:470
    assert np.array_equal(session.edit(60), a)  # deterministic
    assert not np.array_equal(session.edit(20), a)
    assert not np.array_equal(session.edit(60, signs={"nasolabial_left": 1.0, "forehead": 0.0}), a)


def test_attention_mask_comes_with_the_same_edit(session):
    photo, attention = session.edit_with_attention(60, {"forehead": 1.0})
    assert np.array_equal(photo, session.edit(60, {"forehead": 1.0}))
    assert len(attention) == len(session.faces) and attention[0].shape == (64, 64)
    assert 0 <= attention[0].min() and attention[0].max() <= 1 and attention[0].std() > 0
    # out = A * input + (1 - A) * colour with both in [-1, 1]: a pixel moves at most 255 (1 - A) grey levels,
    # so where A = 1 the input is kept
    moved = np.abs(session.edit_crops(60, {"forehead": 1.0})[0].astype(int) - session.faces[0].crop).max(axis=2)
    assert (moved <= 255 * (1 - attention[0]) + 1).all()


def test_painted_map_is_used(session):
    slider_map = session.aging_map(60)
    plain = session.edit_crops(60)[0]
    assert np.array_equal(session.edit_crops(60, painted_map=slider_map)[0], plain)
    picture = map_to_image(slider_map)  # the exported picture, painted white on the forehead
    picture[5:20, 15:50] = 255
    painted = session.edit_crops(60, painted_map=picture)[0]
    diff = np.any(painted != plain, axis=2)
    assert diff[5:20, 15:50].mean() > 0.5
    assert diff[40:, :].mean() < diff[5:20, 15:50].mean() / 4  # far from the stroke little changes
    big = np.kron(picture, np.ones((2, 2, 1), np.uint8))  # a square map of another size is resized
    assert as_map(big, 64).shape == (2, 64, 64)
    gray = np.full((64, 64), 204, np.uint8)  # a gray picture sets every channel, as a file would
    torch.testing.assert_close(as_map(gray, 64), torch.full((2, 64, 64), 0.8))
    torch.testing.assert_close(as_map(gray[..., None], 64), as_map(gray, 64))


def test_tiled_inference_matches_one_pass(amgan_weights, face_photo):
    ed = AMGANEditor.load(amgan_weights, resolution=320)
    s = ed.open_crop(face_photo[90:390, 170:470])
    ed.tile_above = 256  # 320 px: 2 x 2 tiles of 256 px
    tiled = s.edit_crops(50, {"forehead": 0.9})[0]
    ed.tile_above = 1024
    one = s.edit_crops(50, {"forehead": 0.9})[0]
    assert tiled.shape == (320, 320, 3)
    assert np.abs(tiled.astype(int) - one).max() <= 1


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(age=60, signs={"cheek": 0.5}), "'cheek'"),
        (dict(age=60, signs={"forehead": 1.5}), "'forehead'"),
        (dict(age=60, signs={"glabella": "high"}), "'glabella'"),
        (dict(age=-3), "target age"),
        (dict(age=60, painted_map=np.zeros((64, 32, 3), np.uint8)), "square"),
        (dict(age=60, painted_map=np.zeros((0, 0, 3), np.uint8)), "square"),
        (dict(age=60, painted_map=np.zeros((64, 64))), "[C, H, W]"),
        (dict(age=60, painted_map=torch.full((2, 64, 64), 2.0)), "[0, 1]"),
        (dict(age=60, painted_map=[None, None]), "2 painted maps"),
        (dict(age=60, painted_map=torch.zeros((1, 0, 0))), "empty"),
    ],
)
def test_bad_controls_name_the_bad_one(session, kwargs, words):
    with pytest.raises(BadParameterError) as err:
        session.edit(**kwargs)
    assert words in str(err.value)


def test_crops_must_be_square_and_faces_numbered(editor, session, face_photo, tmp_path):
    with pytest.raises(BadParameterError, match="must be square"):
        editor.open_crop(face_photo[:128, :100])
    path = tmp_path / "crop.png"
    Image.fromarray(face_photo[90:390, 170:470]).save(path)
    assert editor.open_crop(path).faces[0].x.shape[-1] == 64  # a file read like any photo
    for face in (-1, len(session.faces), True):
        with pytest.raises(BadParameterError, match="face must be a number"):
            session.aging_map(60, face=face)


def test_resolution_is_checked(amgan_weights):
    with pytest.raises(BadParameterError, match="multiple of 4"):
        AMGANEditor.load(amgan_weights, resolution=66)


@pytest.mark.parametrize("case", BAD_FILES, ids=[c.name for c in BAD_FILES])
def test_bad_files_get_the_same_messages_as_cusp(case, editor, face_photo, tmp_path):
    """The AMGAN editor shares the face pipeline: every bad file of the corpus fails with its message."""
    with pytest.raises(case.error) as err:
        editor.open(case.write(face_photo, tmp_path)).edit(60)
    text = str(err.value).lower().replace("-", "_")
    assert all(w.replace("-", "_") in text for w in case.words)


def test_weights_with_a_removed_option_load_only_at_its_old_default(amgan_weights, tmp_path):
    """A file whose config holds a removed network option (``context``, as the shipped manifest does) loads
    when the option is at its old default, and is refused with a message when the weights needed it."""
    from faceage.checkpoint import load_checkpoint, save_checkpoint

    tensors, manifest = load_checkpoint(amgan_weights)
    for value in (0, 16):
        path = save_checkpoint(
            tmp_path / f"ctx{value}.safetensors",
            tensors,
            dict(manifest, config=dict(manifest["config"], context=value)),
        )
        if value == 0:
            assert AMGANEditor.load(path).G.cfg == AMGANEditor.load(amgan_weights).G.cfg
        else:
            with pytest.raises(CheckpointError, match="context=16 was removed"):
                AMGANEditor.load(path)
