"""The app's outputs (issue #6): the download PNG and its settings, the age progression, the example gallery."""

import json
import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ARGS = (-1, 70, 8, 4.5)  # face (all), age, sigma_m, sigma_g


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client

    return Client(app_server[0], verbose=False)


@pytest.fixture
def photo_file(face_photo, tmp_path):
    path = tmp_path / "p.png"
    Image.fromarray(face_photo).save(path)
    return path


def test_download_is_the_full_resolution_edit_with_its_settings(client, photo_file, tiny_weights):
    from gradio_client import handle_file

    import faceage
    from faceage.checkpoint import load_checkpoint

    (_, after), _ = client.predict(handle_file(str(photo_file)), *ARGS, api_name="/edit")
    path = client.predict(handle_file(str(photo_file)), *ARGS, api_name="/download")
    assert os.path.basename(path) == "faceage_age70.png"
    png = Image.open(path)
    assert png.format == "PNG" and png.size == (640, 480)
    np.testing.assert_array_equal(np.asarray(png.convert("RGB")), np.asarray(Image.open(after).convert("RGB")))
    text = png.text  # the tEXt chunks
    assert text["faceage_version"] == faceage.__version__ and text["Software"] == f"faceage {faceage.__version__}"
    assert text["model"] == "cusp" and text["weights"] == tiny_weights.name
    assert text["weights_sha256"] == load_checkpoint(tiny_weights)[1]["sha256"]
    assert (float(text["age"]), float(text["sigma_m"]), float(text["sigma_g"])) == (70, 8, 4.5)
    assert text["face"] == "all"

    other = client.predict(handle_file(str(photo_file)), 0, 25, 1.8, 1.8, api_name="/download")
    text = Image.open(other).text
    assert (text["face"], float(text["age"]), float(text["sigma_m"])) == ("0", 25, 1.8)


def test_progression_strip_gif_and_files(client, photo_file):
    from gradio_client import handle_file

    from faceage.edit.progression import DEFAULT_AGES

    strip, gif, files = client.predict(handle_file(str(photo_file)), -1, 8, 4.5, api_name="/progression")
    n = len(DEFAULT_AGES)
    s = np.asarray(Image.open(strip).convert("RGB"))
    side = s.shape[0]  # the face at its own resolution in the photo (above the tiny model's 64 px)
    assert s.shape == (side, side * n, 3) and side > 64
    tiles = [s[:, i * side : (i + 1) * side] for i in range(n)]
    assert all(np.any(tiles[0] != t) for t in tiles[1:])  # each age gives another face
    assert json.loads(Image.open(strip).text["age"]) == [float(a) for a in DEFAULT_AGES]
    anim = Image.open(gif)
    assert anim.format == "GIF" and anim.n_frames == 2 * n - 2  # up the ages and back down
    names = {os.path.basename(f if isinstance(f, str) else f["path"]) for f in files}
    assert (
        {"faceage_progression.gif", "faceage_progression.png"}
        <= names
        <= {"faceage_progression.gif", "faceage_progression.png", "faceage_progression.mp4"}
    )


def test_progression_needs_a_photo(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Upload a photo"):
        client.predict(None, -1, 8, 4.5, api_name="/progression")


def test_examples_from_a_folder_or_none(tmp_path, monkeypatch, tiny_weights):
    import app
    from ui.examples import ENV, gather_examples

    folder = tmp_path / "faces"
    folder.mkdir()
    for name in ("b_old.png", "a_young.jpg"):
        Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not a photo")
    dest = tmp_path / "dest"
    dest.mkdir()
    monkeypatch.setenv(ENV, str(folder))
    found = gather_examples(dest)
    assert [label for _, label in found] == ["a_young", "b_old"]
    assert all(os.path.dirname(p) == str(dest) and os.path.isfile(p) for p, _ in found)  # copies, served from dest

    a = app.App(tiny_weights)  # start-up reads the variable
    assert [label for _, label in a.examples] == ["a_young", "b_old"]
    assert _elem_ids(app.build(a)) >= {"examples", "cusp_weights", "amgan_weights"} and "no_examples" not in _elem_ids(
        app.build(a)
    )

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(ENV, str(empty))
    a = app.App(tiny_weights)
    assert a.examples == []
    ids = _elem_ids(app.build(a))
    assert "no_examples" in ids and "examples" not in ids  # hidden, with a note saying how to add some


def _elem_ids(demo) -> set:
    return {c.get("props", {}).get("elem_id") for c in demo.config["components"]}


def test_examples_from_the_utkface_test_split(tmp_path):
    from conftest import UTK

    from faceage.data.utkface import parse_name
    from ui.examples import MAX_EXAMPLES, gather_examples

    if not (UTK / "test.txt").is_file():
        pytest.skip("UTKFace not available")
    found = gather_examples(tmp_path, utkface_root=UTK)
    test_names = set((UTK / "test.txt").read_text().split())
    assert 4 <= len(found) <= MAX_EXAMPLES
    ages = [int(label.split()[-1]) for _, label in found]
    assert ages == sorted(ages) and ages[-1] - ages[0] >= 50  # young to old
    assert len({a // 10 for a in ages}) == len(ages)  # one per decade
    for (path, _label), age in zip(found, ages):
        assert os.path.dirname(path) == str(tmp_path)  # copied out of the shards, never into the repository
        assert os.path.basename(path) in test_names  # a test-split face, never a training one
        assert parse_name(os.path.basename(path)).age == age
        Image.open(path).verify()
