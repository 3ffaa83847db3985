"""Per-sign aging of a video (``VideoEditor.edit(signs=..., painted_map=...)``, ``faceage video --sign/--map``):
rendered by CUSP's decodes or by the AgingMapGAN network, each sign acting where its zone is.

A still clip made losslessly from a committed real photo, so the change is the edit's, not the codec's."""

from __future__ import annotations

import numpy as np
import pytest

from faceage.amgan.maps import build_aging_map, map_to_image
from faceage.errors import BadParameterError
from faceage.video import VideoEditor
from faceage.video.io import read_frames
from train.video_clips import moving_photo, write_clip

pytest.importorskip("av")
NASOLABIAL = {"nasolabial_left": 1.0, "nasolabial_right": 1.0}


@pytest.fixture(scope="module")
def still(tmp_path_factory):
    path = tmp_path_factory.mktemp("still") / "still.mp4"
    return write_clip(path, moving_photo(4, size=(320, 320), still=True, noise=0), fps=10, lossless=True)


@pytest.fixture(scope="module")
def cusp():
    return VideoEditor.load(device="cpu")


@pytest.fixture(scope="module")
def unchanged(cusp, still, tmp_path_factory):
    """The clip edited to the face's own age without signs: no change, only the encoder's own (the test
    clip is lossless, the output is not)."""
    out = tmp_path_factory.mktemp("unchanged") / "same.mp4"
    cusp.edit(still, out, 30, source_age=30)
    return out


def change_by_band(src, out, track) -> list[float]:
    """Mean |out - src| over the frames in the top, middle and bottom thirds of the face's mesh box."""
    x0, y0 = track.points.min(0).astype(int)
    x1, y1 = track.points.max(0).astype(int)
    d = np.mean([np.abs(b.astype(int) - a).mean(2) for (a, _), (b, _) in zip(read_frames(src), read_frames(out))], 0)
    third = (y1 - y0) // 3
    return [float(d[y0 + k * third : y0 + (k + 1) * third, x0:x1].mean()) for k in range(3)]


def likeness(base, a, b, track) -> float:
    """Correlation, over the face's mesh box, of the changes ``a`` and ``b`` make to ``base`` (signed grey
    levels averaged over the frames: the encoder's own noise differs between files, a sign's change does not)."""
    x0, y0 = track.points.min(0).astype(int)
    x1, y1 = track.points.max(0).astype(int)

    def mean(path):
        return np.mean([f.astype(float) for f, _ in read_frames(path)], 0).mean(2)[y0:y1, x0:x1]

    m = mean(base)
    return float(np.corrcoef((mean(a) - m).ravel(), (mean(b) - m).ravel())[0, 1])


def test_each_sign_acts_in_its_zone(cusp, still, unchanged, tmp_path):
    """At the face's own age a sign is the only change: the forehead's is in the top third of the face, the
    nasolabial folds' below it."""
    forehead = cusp.edit(still, tmp_path / "f.mp4", 30, source_age=30, signs={"forehead": 1.0})
    folds = cusp.edit(still, tmp_path / "n.mp4", 30, source_age=30, signs=NASOLABIAL)
    top, mid, low = change_by_band(unchanged, tmp_path / "f.mp4", forehead.tracks[0])
    assert top > 2 * max(mid, low) and top > 1.0, (top, mid, low)
    top, mid, low = change_by_band(unchanged, tmp_path / "n.mp4", folds.tracks[0])
    assert max(mid, low) > 2 * top and max(mid, low) > 1.0, (top, mid, low)


def test_painted_map_is_the_signs_map(cusp, still, unchanged, tmp_path):
    """A map painted on the face's crop (here: the forehead sign's, as ``faceage amgan-map`` exports it from
    the clip's first frame) ages the forehead as the sign does; a map that is not square is refused before
    anything is written."""
    size = cusp.editor.resolution
    face = cusp.editor.open(next(read_frames(still))[0]).faces[0]
    painted = map_to_image(build_aging_map(face.aligned.landmarks, size, {"forehead": 1.0}, 30))
    result = cusp.edit(still, tmp_path / "p.mp4", 30, source_age=30, painted_map=painted)
    top, mid, low = change_by_band(unchanged, tmp_path / "p.mp4", result.tracks[0])
    assert top > 2 * max(mid, low) and top > 1.0, (top, mid, low)
    cusp.edit(still, tmp_path / "s.mp4", 30, source_age=30, signs={"forehead": 1.0})
    cusp.edit(still, tmp_path / "n.mp4", 30, source_age=30, signs=NASOLABIAL)
    same, other = (likeness(unchanged, tmp_path / "p.mp4", tmp_path / k, result.tracks[0]) for k in ("s.mp4", "n.mp4"))
    assert same > 0.5 and other < 0.3, (same, other)  # the painted map's change is the forehead sign's
    with pytest.raises(BadParameterError, match="square"):
        cusp.edit(still, tmp_path / "bad.mp4", 30, painted_map=painted[:, :-8])
    assert not (tmp_path / "bad.mp4").exists()


def test_amgan_renders_signs_in_a_video(still, unchanged, tmp_path):
    """The AgingMapGAN renderer edits the clip from the signs, only inside the face."""
    ved = VideoEditor.load(device="cpu", renderer="amgan")
    result = ved.edit(still, tmp_path / "a.mp4", 30, source_age=30, signs={"forehead": 1.0, **NASOLABIAL})
    assert result.frames == 4 and len(result.tracks) == 1
    top, mid, low = change_by_band(unchanged, tmp_path / "a.mp4", result.tracks[0])
    first, same = next(read_frames(tmp_path / "a.mp4"))[0], next(read_frames(unchanged))[0]
    outside = np.abs(first.astype(int) - same)[:40].mean()  # above the head
    assert min(top, mid) > 1.0 and outside < 0.2, (top, mid, low, outside)
    with pytest.raises(BadParameterError, match="renderer"):
        VideoEditor.load(device="cpu", renderer="stylegan")


def test_cli_video_signs_and_map(still, tmp_path, capsys):
    from PIL import Image

    from faceage.cli import main

    out = tmp_path / "out.mp4"
    args = ["--device", "cpu", "video", str(still), "--age", "40", "-o", str(out)]
    assert main([*args, "--sign", "forehead=1", "--renderer", "amgan"]) == 0 and out.exists()
    painted = tmp_path / "painted.png"
    Image.fromarray(np.full((64, 64), 200, np.uint8)).save(painted)
    assert main([*args, "--map", str(painted), "--sign", "forehead=1"]) == 2
    assert "--map replaces --sign" in capsys.readouterr().err
    assert main([*args, "--sign", "forehead=3"]) == 2
    assert "score of 'forehead'" in capsys.readouterr().err
