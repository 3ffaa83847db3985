"""`faceage amgan`, `faceage amgan-map` and `faceage map` run as a user runs them (a subprocess), tiny random
weights."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def faceage(*args) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "faceage.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


def rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


@pytest.fixture(scope="module")
def photo(face_photo, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "photo.png"
    Image.fromarray(face_photo).save(path)
    return path


def test_signs_map_export_and_painted_map(amgan_weights, photo, face_photo, tmp_path):
    w = ("--weights", amgan_weights)
    run = faceage(
        *w,
        "amgan",
        photo,
        "--age",
        60,
        "--sign",
        "forehead=0.8",
        "--sign",
        "nasolabial_left=0.5",
        "-o",
        tmp_path / "signs.png",
        "--save-map",
        tmp_path / "used.png",
        "--save-attention",
        tmp_path / "att" / "a.png",
    )
    assert run.returncode == 0, run.stderr
    out = Image.open(tmp_path / "signs.png")
    assert out.size == (640, 480) and out.text["model"] == "amgan" and '"forehead": 0.8' in out.text["signs"]
    att = rgb(tmp_path / "att" / "a.png")  # A of the first face, gray, at the crop's size
    assert att.shape == (64, 64, 3) and np.array_equal(att[..., 0], att[..., 2]) and att.std() > 0
    edited = rgb(tmp_path / "signs.png")
    assert np.any(edited != face_photo) and np.array_equal(edited[:40], face_photo[:40])

    assert faceage(*w, "amgan-map", photo, "--age", 60, "-o", tmp_path / "map.png").returncode == 0
    amap = rgb(tmp_path / "map.png")
    assert amap.shape == (64, 64, 3) and amap[..., 0].max() >= 150 and amap[..., 0].min() == 0  # face 0.6, bg 0
    used = rgb(tmp_path / "used.png")  # forehead 0.8 > age 0.6: brighter than the plain map there
    assert (used[..., 0] > amap[..., 0] + 20).sum() > 50

    amap[4:20, 12:52] = 255  # paint the forehead white and edit with the painted map
    Image.fromarray(amap.astype(np.uint8)).save(tmp_path / "painted.png")
    assert faceage(*w, "amgan", photo, "--map", tmp_path / "painted.png", "-o", tmp_path / "p.png").returncode == 0
    assert faceage(*w, "amgan", photo, "--age", 60, "-o", tmp_path / "plain.png").returncode == 0
    painted, plain = rgb(tmp_path / "p.png"), rgb(tmp_path / "plain.png")
    assert np.any(painted != plain) and np.array_equal(painted[:40], plain[:40])


@pytest.mark.parametrize(
    "args, code, words",
    [
        (("--age", 60, "--sign", "cheek=0.5"), 2, "'cheek'"),
        (("--age", 60, "--sign", "forehead=1.5"), 2, "'forehead'"),
        (("--age", 60, "--sign", "forehead"), 2, "NAME=SCORE"),
        ((), 2, "--age"),
        (("--map", "absent.png"), 2, "absent.png"),
        (("--age", 60, "--weights-missing"), 3, "AMGAN weights not found"),
        (("--age", 60, "--output-jpg"), 2, "name the output .png"),
    ],
)
def test_errors_are_one_line_with_exit_codes(amgan_weights, photo, tmp_path, args, code, words):
    weights = tmp_path / "none.safetensors" if "--weights-missing" in args else amgan_weights
    out = tmp_path / ("x.jpg" if "--output-jpg" in args else "x.png")
    args = [a for a in args if a not in ("--weights-missing", "--output-jpg")]
    run = faceage("--weights", weights, "amgan", photo, *args, "-o", out)
    assert run.returncode == code, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and words in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()


def test_folder_batch_with_a_bad_file(amgan_weights, photo, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(photo.read_bytes())
    (folder / "b.jpg").write_bytes(b"not an image")
    run = faceage(
        "--weights",
        amgan_weights,
        "amgan",
        folder,
        "--age",
        70,
        "-o",
        tmp_path / "out",
        "--save-map",
        tmp_path / "maps",
    )
    assert run.returncode == 4, run.stderr  # some files failed: one line each, the others done
    assert "b.jpg" in run.stderr and "Traceback" not in run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]
    assert Image.open(tmp_path / "maps" / "a.png").size == (64, 64)


def test_side_outputs_that_would_overwrite_each_other_are_refused(amgan_weights, photo, tmp_path):
    run = faceage(
        "--weights",
        amgan_weights,
        "amgan",
        photo,
        "--age",
        60,
        "-o",
        tmp_path / "x.png",
        "--save-map",
        tmp_path / "side.png",
        "--save-attention",
        tmp_path / "side.png",
    )
    assert run.returncode == 2 and "--save-map and --save-attention name the same path" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "x.png").exists()


def test_folder_outputs_never_overwrite_photos_or_each_other(amgan_weights, photo, tmp_path):
    """a.png and a.jpg keep a result each; -o naming the input folder, a file, or a folder with no photos
    is refused with one line, before anything is written."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(photo.read_bytes())
    Image.open(photo).convert("RGB").save(folder / "a.jpg")
    w = ("--weights", amgan_weights, "amgan")
    run = faceage(*w, folder, "--age", 70, "-o", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_jpg.png", "a_png.png"]

    before = sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir())
    photo_before = photo.stat().st_mtime_ns
    (tmp_path / "file.png").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    for src, out, words, *side in (
        (folder, folder, "is the input folder"),
        (folder, tmp_path / "file.png", "is a file"),
        (tmp_path / "empty", tmp_path / "out2", "no photos in"),
        (folder, tmp_path / "out2", "/in is the input folder", "--save-map", folder),
        (folder, tmp_path / "out2", "-o and --save-map name the same path", "--save-map", tmp_path / "out2"),
        (folder, tmp_path / "out2", "names a folder", "--save-attention", tmp_path / "att.png"),
        (photo, tmp_path / "out2.png", "name the output .png", "--save-map", tmp_path / "map.jpg"),
        (photo, photo, "is the input photo"),
    ):
        run = faceage(*w, src, "--age", 70, "-o", out, *side)
        assert run.returncode == 2 and words in run.stderr and "Traceback" not in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1
    assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir()) == before
    assert photo.stat().st_mtime_ns == photo_before
    assert not (tmp_path / "out2").exists() and not (tmp_path / "att.png").exists()


def test_map_renders_signs_with_cusp(tiny_weights, photo, face_photo, tmp_path):
    """`faceage map`: the signs (or a painted map) rendered by CUSP's decodes; --age is required."""
    w = ("--weights", tiny_weights)
    plain, raised = tmp_path / "plain.png", tmp_path / "raised.png"
    assert faceage(*w, "map", photo, "--age", "40", "--mode", "replace", "-o", plain).returncode == 0
    run = faceage(*w, "map", photo, "--age", "40", "--sign", "forehead=1", "--mode", "replace", "-o", raised)
    assert run.returncode == 0, run.stderr
    text = Image.open(raised).text
    assert text["model"] == "cusp_map" and json.loads(text["signs"]) == {"forehead": 1.0}
    changed = np.nonzero(np.any(rgb(raised) != rgb(plain), axis=2))[0]
    assert len(changed) > 0 and np.median(changed) < 240  # the upper face (rows 90..390 of the photo)
    bad = faceage(*w, "map", photo, "--sign", "forehead=1", "-o", tmp_path / "x.png")
    assert bad.returncode == 2 and "map needs --age" in bad.stderr
