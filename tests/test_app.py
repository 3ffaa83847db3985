"""The Gradio app, driven through gradio_client on localhost (tiny random weights, a real face)."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client

    return Client(app_server[0], verbose=False)


def test_edit_through_the_api(client, face_photo, tmp_path):
    from gradio_client import handle_file

    src = tmp_path / "p.png"
    Image.fromarray(face_photo).save(src)
    (before, after), mask = client.predict(handle_file(str(src)), -1, 70, 8, 4.5, api_name="/edit")
    b, a = np.asarray(Image.open(before).convert("RGB")), np.asarray(Image.open(after).convert("RGB"))
    assert a.shape == face_photo.shape and np.array_equal(b, face_photo)
    assert np.any(a != b)  # the face changed
    assert np.array_equal(a[:40], b[:40])  # the background did not
    assert Image.open(mask).size == (256, 128)  # mask heat map | skip blur, each 64 px at 2x


def test_errors_are_messages_and_server_survives(client, face_photo, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank)
    with pytest.raises(AppError, match="No face"):
        client.predict(handle_file(str(blank)), -1, 70, 8, 4.5, api_name="/edit")
    src = tmp_path / "p.png"
    Image.fromarray(face_photo).save(src)
    with pytest.raises(AppError):  # JSON carries no NaN; an out-of-range age is refused with a message
        client.predict(handle_file(str(src)), -1, 150, 8, 4.5, api_name="/edit")
    (_, after), _ = client.predict(handle_file(str(src)), -1, 30, 0, 0, api_name="/edit")
    assert Image.open(after).size == (640, 480)


def test_app_starts_and_says_which_weights_are_missing(tmp_path):
    import app

    a = app.App(tmp_path / "absent.safetensors")
    assert a.editor is None and "absent.safetensors" in a.missing
    app.build(a)  # the page still builds


def test_presets_grid():
    """The face at one age with each preset, beside the input: 1 + 3 tiles side by side, all different."""
    import app
    from faceage.cusp.mask import PRESETS

    photo = Path(__file__).resolve().parents[1] / "train" / "real_photos" / "smile.jpg"
    grid = np.asarray(Image.open(app.App().presets_grid(str(photo), -1, 70)))
    side = grid.shape[0]
    assert grid.shape[1] == side * (1 + len(PRESETS))
    tiles = [grid[:, i * side : (i + 1) * side].astype(int) for i in range(1 + len(PRESETS))]
    assert all(np.abs(t - tiles[0]).mean() > 0.5 for t in tiles[1:])  # every preset changed the face
    assert np.abs(tiles[1] - tiles[3]).mean() > 0.5  # high and low preservation differ
