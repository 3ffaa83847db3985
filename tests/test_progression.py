"""Age progressions (faceage.edit.progression) and the settings in result PNGs (faceage.provenance), via the CLI too."""

import json

import numpy as np
import pytest
from PIL import Image

from faceage.edit import progression as prog


def _frames(n=4, size=64):
    return [prog.labelled(np.full((size, size, 3), 40 * i, np.uint8), f"{10 * i}") for i in range(n)]


def test_labels_strip_and_gif():
    plain = np.full((64, 64, 3), 120, np.uint8)
    marked = prog.labelled(plain, "70")
    assert marked.shape == plain.shape and np.any(marked != plain)
    assert np.array_equal(marked[:20], plain[:20])  # the label stays in the bottom corner, off the face
    frames = _frames()
    assert prog.strip(frames).shape == (64, 256, 3)


def test_gif_goes_up_and_back(tmp_path):
    frames = _frames(4)
    gif = Image.open(prog.save_gif(frames, tmp_path / "a.gif"))
    assert gif.n_frames == 6 and gif.info["loop"] == 0
    means = []
    for i in range(gif.n_frames):
        gif.seek(i)
        means.append(round(float(np.asarray(gif.convert("RGB"))[:20].mean())))
    assert means == [0, 40, 80, 120, 80, 40]


def test_mp4_when_opencv_can(tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = prog.save_mp4(_frames(4), tmp_path / "a.mp4")
    if path is None:
        pytest.skip("no MP4 encoder in this OpenCV")
    video = cv2.VideoCapture(str(path))
    count = 0
    while video.read()[0]:
        count += 1
    assert count == 6


def test_cli_writes_the_settings_and_animations(tiny_weights, face_photo, tmp_path):
    from faceage.checkpoint import load_checkpoint
    from faceage.cli import main

    src = tmp_path / "photo.png"
    Image.fromarray(face_photo).save(src)
    sha = load_checkpoint(tiny_weights)[1]["sha256"]
    w = ["--weights", str(tiny_weights)]
    out = tmp_path / "o.png"
    assert main([*w, "edit", str(src), "--age", "60", "--sigma-m", "2", "--face", "0", "-o", str(out)]) == 0
    text = Image.open(out).text
    assert text["weights_sha256"] == sha and text["model"] == "cusp" and text["face"] == "0"
    assert (float(text["age"]), float(text["sigma_m"]), float(text["sigma_g"])) == (60, 2, 4.5)
    assert text["source"] == "photo.png" and text["Software"].startswith("faceage ")

    assert (
        main(
            [
                *w,
                "progression",
                str(src),
                "--ages",
                "20",
                "40",
                "60",
                "-o",
                str(tmp_path / "s.png"),
                "--gif",
                str(tmp_path / "s.gif"),
            ]
        )
        == 0
    )
    strip = Image.open(tmp_path / "s.png")
    side = strip.size[1]  # each frame: the face at its own resolution in the photo, square
    assert strip.size == (3 * side, side) and side > 64 and json.loads(strip.text["age"]) == [20, 40, 60]
    assert strip.text["mode"] == "detail" and len(json.loads(strip.text["source_ages"])) == 1
    assert Image.open(tmp_path / "s.gif").n_frames == 4
    assert strip.text["face"] == "0"  # all faces opened, the largest shown

    folder = tmp_path / "in"  # a folder: --gif names a folder, each photo's GIF in it under its own name
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(face_photo).save(folder / name)
    ages = ["--ages", "20", "60", "-o", str(tmp_path / "out")]
    assert main([*w, "progression", str(folder), *ages, "--gif", str(tmp_path / "anims")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    assert sorted(p.name for p in (tmp_path / "anims").iterdir()) == ["a.gif", "b.gif"]
    assert main([*w, "progression", str(folder), *ages, "--gif", str(tmp_path / "out")]) == 0  # beside the strips
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.gif", "a.png", "b.gif", "b.png"]
    assert main([*w, "progression", str(folder), *ages, "--gif", str(tmp_path / "x.gif")]) == 2  # a file's name
    assert main([*w, "progression", str(src), "--ages", "20", "-o", str(out), "--gif", str(tmp_path / "x.png")]) == 2
    assert not (tmp_path / "x.gif").exists() and not (tmp_path / "x.png").exists()
