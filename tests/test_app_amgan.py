"""The app's AgingMapGAN tab through gradio_client on localhost (tiny random weights, a real face)."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

SCORES = [0.6] * 11  # one per sign, faceage.amgan.maps.SIGNS order


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client

    return Client(app_server[0], verbose=False)


@pytest.fixture(scope="module")
def photo(face_photo, tmp_path_factory):
    path = tmp_path_factory.mktemp("amgan_app") / "p.png"
    Image.fromarray(face_photo).save(path)
    return path


def rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_both_models_keep_their_endpoint_names(client):
    """The AMGAN tab is built before CUSP's events: its handlers must not take CUSP's names."""
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/edit", "/edit_photo", "/download", "/amgan_edit", "/amgan_reset"} <= names
    # Gradio renames a name taken twice (/edit_1) and names unnamed events after their handler (/lambda)
    assert not [n for n in names if n[-2:] == "_1" or n == "/lambda"], sorted(names)


def test_the_api_names_every_parameter(client):
    """What a program sees: the sign names as parameters, the painted map optional, every public endpoint
    without a generic ``param_N`` and with a short name for its returns."""
    from faceage.amgan.maps import SIGNS

    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/face_view", "/face_ages"} <= set(api)
    for name, endpoint in api.items():
        params = [p["parameter_name"] for p in endpoint["parameters"]]
        assert not [p for p in params if p.startswith("param_")], (name, params)
        labels = [r.get("label") or "" for r in endpoint["returns"]]
        assert not [x for x in labels if x.startswith("value_") or len(x) > 40], (name, labels)  # short names
    edit = {p["parameter_name"]: p for p in api["/amgan_edit"]["parameters"]}
    assert list(edit)[4 : 4 + len(SIGNS)] == list(SIGNS)
    assert edit["aging_map"]["parameter_has_default"] and edit["forehead"]["parameter_default"] == 0.6
    assert [p["parameter_name"] for p in api["/edit"]["parameters"]] == [
        "photo",
        "face_index",
        "age",
        "sigma_m",
        "sigma_g",
        "mode",
        "source_age",
    ]


def test_a_program_can_call_amgan_by_sign_name(client, photo):
    from gradio_client import handle_file

    (_, after), _, _ = client.predict(
        handle_file(str(photo)), follow_age=False, forehead=1.0, mode="replace", api_name="/amgan_edit"
    )
    assert Path(after).is_file()


def test_edit_signs_and_painted_map(client, photo, face_photo, tmp_path):
    from gradio_client import handle_file

    (before, plain), download, attention, canvas = client.predict(
        handle_file(str(photo)), -1, 60, True, *SCORES, "detail", None, "amgan", api_name="/amgan_reset"
    )
    b, a = rgb(before), rgb(plain)
    assert np.array_equal(b, face_photo) and a.shape == face_photo.shape
    assert np.array_equal(rgb(download), a)  # the download is the full-resolution result, with its settings
    assert Image.open(download).text["model"] == "amgan" and Image.open(download).text["age"] == "60.0"
    ys, xs = np.nonzero(np.any(a != b, axis=2))
    assert len(ys) > 1000 and ys.min() >= 60 and ys.max() <= 420 and xs.min() >= 140 and xs.max() <= 500

    heat = rgb(attention)  # 1 - A in red over the 64-px crop of the tiny model, shown at 2x
    assert heat.shape == (128, 128, 3)

    background = rgb(canvas["background"])  # the map over the face, 4x the 64-px crop
    assert background.shape == (256, 256, 3) and not canvas["layers"]

    (_, raised), download, _ = client.predict(
        handle_file(str(photo)), -1, 60, False, 1.0, *SCORES[1:], None, "detail", None, "amgan", api_name="/amgan_edit"
    )  # the forehead raised alone
    assert '"forehead": 1.0' in Image.open(download).text["signs"]
    assert np.any(rgb(raised) != a)

    layer = np.zeros((256, 256, 4), np.uint8)
    layer[20:80, 60:200] = 255  # a white stroke across the forehead
    Image.fromarray(layer).save(tmp_path / "layer.png")
    value = {
        "background": handle_file(canvas["background"]),
        "layers": [handle_file(str(tmp_path / "layer.png"))],
        "composite": None,
    }
    (_, painted), _, _ = client.predict(
        handle_file(str(photo)), -1, 60, True, *SCORES, value, "detail", None, "amgan", api_name="/amgan_edit"
    )
    ys, _ = np.nonzero(np.any(rgb(painted) != a, axis=2))
    assert len(ys) > 500
    assert np.median(ys) < 240  # above the middle of the face (rows 90..390): where the forehead was painted


def test_errors_are_messages(client, photo, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank)
    with pytest.raises(AppError, match="No face"):
        client.predict(
            handle_file(str(blank)), -1, 60, True, *SCORES, None, "detail", None, "amgan", api_name="/amgan_edit"
        )
    with pytest.raises(AppError, match="Forehead wrinkles must be a number from 0 to 1"):
        client.predict(
            handle_file(str(photo)),
            -1,
            60,
            False,
            1.7,
            *SCORES[1:],
            None,
            "detail",
            None,
            "amgan",
            api_name="/amgan_edit",
        )
    (_, after), _, _ = client.predict(
        handle_file(str(photo)), -1, 30, True, *SCORES, None, "detail", None, "amgan", api_name="/amgan_edit"
    )
    assert Image.open(after).size == (640, 480)  # the server still serves


def test_missing_amgan_weights_keep_the_page_working(tiny_weights, tmp_path):
    import gradio as gr

    import app

    a = app.App(tiny_weights, amgan_weights=tmp_path / "absent.safetensors")
    assert a.editor is not None and a.amgan.editor is None and "AMGAN weights not found" in a.amgan.missing
    app.build(a)  # the page builds: CUSP works, the AMGAN tab says what is missing
    with pytest.raises(Exception, match="AMGAN weights not found"):
        a.amgan.edit(str(tmp_path / "x.png"), -1, 60, True, *SCORES, None)
    # events that fire without the user asking (a canvas at page load, a new photo) stay silent
    assert a.amgan.paint(None, -1, 60, True, *SCORES, None) == (gr.skip(),) * 3
    assert a.amgan.when_opened(True, None, -1, 60, True, *SCORES, None) == (gr.skip(),) * 4


def test_unreadable_painted_layer_is_a_message(client, photo, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    value = {"background": None, "layers": [handle_file(str(junk))], "composite": None}
    with pytest.raises(AppError, match="painted aging map could not be read"):
        client.predict(
            handle_file(str(photo)), -1, 60, True, *SCORES, value, "detail", None, "amgan", api_name="/amgan_edit"
        )


def test_the_cusp_renderer_is_the_default_and_a_sign_acts_in_its_zone(client, photo, face_photo):
    """The per-sign tab's default renderer: CUSP's decodes blended by the map. Raising the forehead alone
    changes the upper face more than the lower; the PNG says how it was made."""
    from gradio_client import handle_file

    common = dict(follow_age=False, age=40, mode="replace", api_name="/amgan_edit")
    (_, plain), _, _ = client.predict(handle_file(str(photo)), **common)
    (_, raised), download, _ = client.predict(handle_file(str(photo)), forehead=1.0, **common)
    assert Image.open(download).text["model"] == "cusp_map"
    change = np.abs(rgb(raised) - rgb(plain)).sum(axis=2)
    ys, _ = np.nonzero(change > 10)
    assert len(ys) > 0 and np.median(ys) < 90 + 150  # the face spans rows 90-390 of face_photo: upper half
    # the CUSP tab's sigmas reach the renderer (and the PNG says which)
    (_, loose), download, _ = client.predict(handle_file(str(photo)), forehead=1.0, sigma_m=0.0, sigma_g=0.0, **common)
    assert Image.open(download).text["sigma_m"] == "0.0" and np.any(rgb(loose) != rgb(raised))


def test_the_per_sign_sliders_stream_while_dragging(tiny_weights, amgan_weights):
    """The age and every sign slider of the per-sign tab edit on ``.input`` (stale moves dropped, no spinner) as
    well as on release: the tab is live while dragging, like the CUSP tab."""
    import app
    from faceage.amgan.maps import SIGNS

    a = app.App(tiny_weights, amgan_weights=amgan_weights)
    cfg = app.build(a).config
    elem = {c["id"]: c.get("props", {}).get("elem_id") for c in cfg["components"]}
    live = [d for d in cfg["dependencies"] if (d.get("api_name") or "").startswith("amgan_live")]
    assert all(d["trigger_mode"] == "always_last" and d["show_progress"] == "hidden" for d in live)
    dragged = {elem[target] for d in live for target, event in d["targets"] if event == "input"}
    assert dragged == {"amgan_age", *(f"amgan_{s}" for s in SIGNS)}
