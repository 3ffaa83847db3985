"""Every input of the bad-input corpus (tests/bad_inputs.py) through the three ways in.

Python API: a typed ``FaceAgeError`` whose message says what was wrong and what to do, or, for the
valid odd formats, a correct RGB edit of the right size. CLI (a subprocess): exit 2, exactly one
line on stderr, no traceback. Running app (gradio_client on localhost): a readable ``gr.Error``, and
a valid request right after each bad one still works. Tiny random weights throughout.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bad_inputs import BAD_FILES, PARAMETERS, VALID_FILES
from PIL import Image

from faceage.cusp.editor import CUSPEditor

ROOT = Path(__file__).resolve().parents[1]
AGE, SIGMA_M, SIGMA_G = 70, 8.0, 4.5
HIDDEN_ERROR = "verbose error reporting"  # what Gradio says instead of the message of an unexpected error
APP_FILES = [c for c in BAD_FILES if c.name != "over-max-bytes"]  # Gradio refuses that one at upload


def by_name(cases):
    return pytest.mark.parametrize("case", cases, ids=[c.name for c in cases])


def assert_says(message: str, *fragments: str) -> None:
    """Each fragment is in the message (case and - vs _ ignored), and no traceback is."""
    text = message.lower().replace("-", "_")
    for fragment in fragments:
        assert fragment.replace("-", "_") in text, f"{fragment!r} not in {message!r}"
    assert "traceback" not in text and HIDDEN_ERROR not in text


def assert_valid_edit(case, face_photo, loaded: np.ndarray, out: np.ndarray) -> None:
    """``loaded`` is the upright RGB image the file stands for; ``out`` its edit, changed in every face."""
    expected = case.expected(face_photo)
    assert loaded.shape == expected.shape and loaded.dtype == np.uint8
    assert np.abs(loaded.astype(float) - expected).mean() <= case.tol
    assert out.shape == loaded.shape and out.dtype == np.uint8
    assert np.array_equal(out[:40], loaded[:40])  # the background above the faces is untouched
    n = round(case.faces**0.5)  # many-faces is an n x n tiling: every tile's face was edited
    for band_out, band_in in zip(np.array_split(out, n, 0), np.array_split(loaded, n, 0)):
        for tile_out, tile_in in zip(np.array_split(band_out, n, 1), np.array_split(band_in, n, 1)):
            assert np.any(tile_out != tile_in)


def rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# --------------------------------------------------------------------------- Python API


@pytest.fixture(scope="module")
def editor(tiny_weights):
    return CUSPEditor.load(tiny_weights)


@by_name(BAD_FILES)
def test_api_bad_file(case, editor, face_photo, tmp_path):
    path = case.write(face_photo, tmp_path)
    with pytest.raises(case.error) as err:
        editor.open(path).edit(AGE, SIGMA_M, SIGMA_G)
    assert_says(str(err.value), *case.words)


@by_name(VALID_FILES)
def test_api_valid_odd_file(case, editor, face_photo, tmp_path):
    session = editor.open(case.write(face_photo, tmp_path))
    assert len(session.faces) == case.faces
    assert_valid_edit(case, face_photo, session.photo, session.edit(AGE, SIGMA_M, SIGMA_G))


@pytest.fixture(scope="module")
def session(editor, face_photo):
    return editor.open(face_photo)


@by_name(PARAMETERS)
def test_api_bad_parameter(case, editor, session, face_photo):
    with pytest.raises(case.error) as err:
        if case.face is not None:
            session = editor.open(face_photo, face_index=case.face)
        session.edit(case.age, case.sigma_m, case.sigma_g)
    assert_says(str(err.value), case.word)


# --------------------------------------------------------------------------- CLI


def cli(weights, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "faceage.cli", "--weights", str(weights), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


def assert_one_line_error(run: subprocess.CompletedProcess, *fragments: str) -> None:
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert_says(run.stderr, *fragments)


@by_name(BAD_FILES)
def test_cli_bad_file(case, tiny_weights, face_photo, tmp_path):
    path = case.write(face_photo, tmp_path)
    run = cli(tiny_weights, "edit", path, "--age", AGE, "-o", tmp_path / "out.png")
    assert_one_line_error(run, *case.words)
    assert not (tmp_path / "out.png").exists()


@by_name(VALID_FILES)
def test_cli_valid_odd_file(case, tiny_weights, face_photo, tmp_path):
    path = case.write(face_photo, tmp_path)
    run = cli(tiny_weights, "edit", path, "--age", AGE, "-o", tmp_path / "out.png")
    assert run.returncode == 0, run.stderr
    out = rgb(tmp_path / "out.png")
    assert out.shape == case.expected(face_photo).shape and np.any(out != case.expected(face_photo))


@by_name(PARAMETERS)
def test_cli_bad_parameter(case, tiny_weights, face_photo, tmp_path):
    src = tmp_path / "photo.png"
    Image.fromarray(face_photo).save(src)
    face = [] if case.face is None else ["--face", case.face]
    run = cli(
        tiny_weights,
        "edit",
        src,
        "--age",
        case.age,
        "--sigma-m",
        case.sigma_m,
        "--sigma-g",
        case.sigma_g,
        *face,
        "-o",
        tmp_path / "out.png",
    )
    assert_one_line_error(run, case.word)


# --------------------------------------------------------------------------- running app


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client

    return Client(app_server[0], verbose=False)


@pytest.fixture(scope="module")
def good_photo(face_photo, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("good") / "photo.png"
    Image.fromarray(face_photo).save(path)
    return path


def app_edit(client, photo, face=-1, age=AGE, sigma_m=SIGMA_M, sigma_g=SIGMA_G):
    """``/edit`` through gradio_client: ((before, after), mask) as arrays."""
    from gradio_client import handle_file

    (before, after), mask = client.predict(
        None if photo is None else handle_file(str(photo)), face, age, sigma_m, sigma_g, api_name="/edit"
    )
    return (rgb(before), rgb(after)), rgb(mask)


def app_error(client, photo, **values) -> str:
    """The message of the ``gr.Error`` that ``/edit`` answers with."""
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        app_edit(client, photo, **values)
    return str(err.value)


def app_error_raw(url: str, photo: Path, face, age, sigma_m, sigma_g) -> str:
    """Like ``app_error`` for values gradio_client refuses to send (NaN, inf: not strict JSON),
    through Gradio's plain HTTP API (upload, POST the call, read its event stream)."""
    import httpx

    with httpx.Client(base_url=url, timeout=120) as http:
        with open(photo, "rb") as f:
            path = http.post("gradio_api/upload", files={"files": f}).raise_for_status().json()[0]
        body = json.dumps(
            {
                "data": [
                    {"path": path, "meta": {"_type": "gradio.FileData"}},
                    face,
                    age,
                    sigma_m,
                    sigma_g,
                    "detail",
                    None,
                ]
            }
        )
        call = http.post("gradio_api/call/edit", content=body, headers={"content-type": "application/json"})
        stream = http.get(f"gradio_api/call/edit/{call.raise_for_status().json()['event_id']}").text
    event, data = stream.strip().split("\n")[-2:]
    assert event == "event: error", stream
    return json.loads(data.removeprefix("data: "))["error"]


def assert_still_serves(client, good_photo, face_photo):
    (before, after), _ = app_edit(client, good_photo, age=30, sigma_m=0, sigma_g=0)
    assert np.array_equal(before, face_photo) and after.shape == face_photo.shape


@by_name(APP_FILES)
def test_app_bad_file(case, client, face_photo, good_photo, tmp_path):
    assert_says(app_error(client, case.write(face_photo, tmp_path)), *case.words)
    assert_still_serves(client, good_photo, face_photo)


@by_name(VALID_FILES)
def test_app_valid_odd_file(case, client, face_photo, tmp_path):
    (before, after), mask = app_edit(client, case.write(face_photo, tmp_path))
    assert_valid_edit(case, face_photo, before, after)
    assert mask.shape == (128, 256, 3)  # mask heat map | skip blur, 64 px each, shown at 2x


@by_name(PARAMETERS)
def test_app_bad_parameter(case, client, app_server, face_photo, good_photo):
    values = dict(face=-1 if case.face is None else case.face, age=case.age, sigma_m=case.sigma_m, sigma_g=case.sigma_g)
    strict_json = all(isinstance(v, (int, str)) or np.isfinite(v) for v in values.values())
    message = (
        app_error(client, good_photo, **values) if strict_json else app_error_raw(app_server[0], good_photo, **values)
    )
    assert_says(message, case.word)
    assert_still_serves(client, good_photo, face_photo)


def test_app_without_photo_or_with_a_non_number_face(client, face_photo, good_photo):
    assert_says(app_error(client, None), "upload a photo")
    assert_says(app_error(client, good_photo, face="first"), "face", "must be a finite number")
    assert_still_serves(client, good_photo, face_photo)


def test_app_refuses_an_upload_over_the_size_limit(client, app_server, face_photo, good_photo, tmp_path):
    """Gradio's own upload limit is set to faceage.io.MAX_BYTES: the client refuses to send such a file,
    and the server answers a direct upload with 413 and a message."""
    import httpx

    (case,) = [c for c in BAD_FILES if c.name == "over-max-bytes"]
    path = case.write(face_photo, tmp_path)
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        app_edit(client, path)
    with open(path, "rb") as f:
        reply = httpx.post(app_server[0] + "gradio_api/upload", files={"files": f}, timeout=120)
    assert reply.status_code == 413 and "maximum allowed size" in reply.text
    assert_still_serves(client, good_photo, face_photo)


@pytest.mark.parametrize("device", ["foo", "mps", "cuda:7"])
def test_cli_bad_device(device, tiny_weights, face_photo, tmp_path):
    """A device that is not one, or is not on this machine: one line, exit 2 (not torch's traceback)."""
    import torch

    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has Apple's GPU")
    src = tmp_path / "photo.png"
    Image.fromarray(face_photo).save(src)
    run = cli(tiny_weights, "--device", device, "edit", src, "--age", AGE, "-o", tmp_path / "out.png")
    assert_one_line_error(run, device.split(":")[0])


def test_wrong_or_damaged_weights_are_refused_clearly(tiny_weights, amgan_weights, face_photo, tmp_path):
    """AMGAN weights given to CUSP, and a CUSP file missing a tensor: the API raises CheckpointError, the CLI
    says so in one line, and the app still starts and says why CUSP cannot run."""
    import app
    from faceage.checkpoint import load_checkpoint, save_checkpoint
    from faceage.errors import CheckpointError

    tensors, manifest = load_checkpoint(tiny_weights)
    damaged = tmp_path / "damaged.safetensors"
    save_checkpoint(damaged, dict(list(tensors.items())[1:]), manifest)
    src = tmp_path / "photo.png"
    Image.fromarray(face_photo).save(src)
    for weights, words in ((amgan_weights, "not cusp weights"), (damaged, "does not match its cusp config")):
        with pytest.raises(CheckpointError) as err:
            CUSPEditor.load(weights)
        assert_says(str(err.value), words)
        assert_one_line_error(cli(weights, "edit", src, "--age", AGE, "-o", tmp_path / "out.png"), words)
        a = app.App(weights, amgan_weights=amgan_weights)
        assert a.editor is None and words in a.missing.lower()
