"""The CUSP editor API and the CLI, end to end on a real face (tiny random weights)."""

import numpy as np
import pytest
from PIL import Image

from faceage.cusp.editor import CUSPEditor
from faceage.errors import MissingWeightsError, NoFaceError


@pytest.fixture(scope="module")
def editor(tiny_weights):
    return CUSPEditor.load(tiny_weights)


def test_missing_weights_message(tmp_path):
    with pytest.raises(MissingWeightsError, match="not found"):
        CUSPEditor.load(tmp_path / "none.safetensors")


def test_edit_is_deterministic_and_only_changes_the_face(editor, face_photo):
    s = editor.open(face_photo)
    assert len(s.faces) == 1 and s.faces[0].mask.shape[-1] == 64
    a = s.edit(70, 8, 4.5)
    s.edit(20, 0, 0)
    b = s.edit(70, 8, 4.5)  # slider moved away and back: same image
    assert np.array_equal(a, b)
    assert a.shape == face_photo.shape
    changed = np.any(a != face_photo, axis=2)
    assert changed.any()
    ys, xs = np.nonzero(changed)
    # everything outside the face's neighbourhood is bit-identical (the face sits at 90:390, 170:470)
    assert ys.min() >= 60 and ys.max() <= 420 and xs.min() >= 140 and xs.max() <= 500
    assert np.array_equal(a[:50], face_photo[:50]) and np.array_equal(a[:, :120], face_photo[:, :120])


def test_different_ages_give_different_faces(editor, face_photo):
    s = editor.open(face_photo)
    assert not np.array_equal(s.edit_crops(10)[0], s.edit_crops(80)[0])


def test_edit_crop_checks_the_face_number(editor, face_photo):
    from faceage.errors import BadParameterError

    s = editor.open(face_photo)
    view = s.edit_face(40, face=0)  # the face alone, at its own size in the photo (~300 px), even
    assert view.shape[0] == view.shape[1] and view.shape[0] % 2 == 0 and 250 <= view.shape[0] <= 350
    for face in (-1, 1):  # -1 would be the last face silently, 1 an IndexError
        with pytest.raises(BadParameterError, match="face must be a number from 0 to 0"):
            s.edit_face(40, face=face)


def test_no_face(editor):
    yy, xx = np.mgrid[0:200, 0:300]
    with pytest.raises(NoFaceError):
        editor.open(np.stack([yy % 256, xx % 256, (xx + yy) % 256], axis=2).astype(np.uint8))


def test_cli_edit_mask_progression_and_errors(tiny_weights, face_photo, tmp_path, capsys):
    from faceage.cli import main

    src = tmp_path / "photo.jpg"
    Image.fromarray(face_photo).save(src, quality=95)
    w = ["--weights", str(tiny_weights)]
    assert main([*w, "edit", str(src), "--age", "70", "-o", str(tmp_path / "out.png")]) == 0
    out = Image.open(tmp_path / "out.png")
    assert out.size == (640, 480) and out.text["age"] == "70.0"
    assert main([*w, "mask", str(src), "-o", str(tmp_path / "m.png")]) == 0
    assert (
        main(
            [
                *w,
                "progression",
                str(src),
                "--ages",
                "10",
                "50",
                "-o",
                str(tmp_path / "s.png"),
                "--gif",
                str(tmp_path / "s.gif"),
            ]
        )
        == 0
    )
    w_strip, h_strip = Image.open(tmp_path / "s.png").size  # the face at its own size in the photo (~300 px)
    assert w_strip == 2 * h_strip and 250 <= h_strip <= 350
    assert main([*w, "edit", str(tmp_path / "absent.jpg"), "--age", "70", "-o", str(tmp_path / "x.png")]) == 2
    (tmp_path / "junk.jpg").write_bytes(b"not an image")
    assert main([*w, "edit", str(tmp_path / "junk.jpg"), "--age", "70", "-o", str(tmp_path / "x.png")]) == 2
    assert main([*w, "edit", str(src), "--age", "nan", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "absent.jpg" in err and "Traceback" not in err
    assert main(["--weights", str(tmp_path / "none.safetensors"), "edit", str(src), "--age", "7", "-o", "x.png"]) == 3


def test_faces_are_decoded_in_batches_like_one_by_one(editor, face_photo, monkeypatch):
    """A group photo's faces go through the decoder together (in chunks), with each face's own result."""
    import torch

    import faceage.cusp.editor as editor_module

    x = editor.open(face_photo).faces[0].x
    faces = [editor.prepare(v) for v in (x, x.flip(-1), x.flip(-2))]
    monkeypatch.setattr(editor_module, "DECODE_BATCH", 2)  # chunks of 2 and 1
    together = editor._decode(faces, 60, 8.0, 4.5)
    alone = [editor._decode([f], 60, 8.0, 4.5)[0] for f in faces]
    assert len(together) == 3 and together[0].shape == alone[0].shape == x.shape
    for t, a in zip(together, alone):
        torch.testing.assert_close(t, a, atol=1e-5, rtol=0)
    assert not torch.allclose(together[0], together[1])  # each face its own result
