"""Video editing (``faceage.video``): tracking, timing, audio, flicker, atomic output, bad input, CLI.

Clips are made here from the committed real photos (``train/video_clips.py``), small and short; the shipped
CUSP weights run (they load offline).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from faceage.amgan.maps import SIGNS
from faceage.errors import BadVideoError, CancelledError, NoFaceError
from faceage.io import load_image
from faceage.video import VideoEditor
from faceage.video.io import probe, read_frames
from faceage.video.track import OneEuro
from train.video_clips import crossing_faces, moving_photo, sine, write_clip

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def ved():
    return VideoEditor.load(device="cpu")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A face moving, zooming, turning and brightening: 20 frames, 320x240, 10 frames/s, a 440 Hz AAC track,
    tagged as rotated by 90 degrees."""
    path = tmp_path_factory.mktemp("clip") / "moving.mp4"
    return write_clip(path, moving_photo(20), fps=10, audio_hz=440, rotation=90)


@pytest.fixture(scope="module")
def edited(ved, clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "aged.mp4"
    return ved.edit(clip, out, 70), out


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def audio_samples(path: Path) -> np.ndarray:
    with av.open(str(path)) as box:
        return np.concatenate([f.to_ndarray().ravel() for f in box.decode(box.streams.audio[0])])


def test_output_keeps_frames_rate_rotation(edited, clip):
    result, out = edited
    src, dst = probe(clip), probe(out)
    assert (dst.frames, dst.rate, dst.width, dst.height) == (src.frames, src.rate, src.width, src.height)
    assert dst.rotation == src.rotation == 90
    ts_in = [f.pts * f.time_base for _, f in read_frames(clip)]
    ts_out = [f.pts * f.time_base for _, f in read_frames(out)]
    assert ts_in == ts_out
    with av.open(str(out)) as box:
        cc = box.streams.video[0].codec_context
        assert (cc.name, cc.pix_fmt) == ("h264", "yuv420p")  # what browsers play
    assert result.frames == src.frames and len(result.tracks) == 1


def test_face_is_edited_and_rest_untouched(edited, clip):
    _, out = edited
    before = [f for f, _ in read_frames(clip)]
    after = [f for f, _ in read_frames(out)]
    diff = [np.abs(a.astype(int) - b).mean(2) for a, b in zip(before, after)]
    h, w = diff[0].shape
    face = np.mean([d[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].mean() for d in diff])
    corner = np.mean([d[:20, :20].mean() for d in diff])
    assert face > 3 * corner + 0.5, (face, corner)


def test_audio_in_equals_audio_out(edited, clip):
    _, out = edited
    a, b = audio_samples(clip), audio_samples(out)
    assert abs(len(a) - len(b)) <= 1024
    n = min(len(a), len(b))
    assert np.abs(a[:n] - b[:n]).max() < 1e-3
    assert abs(len(b) - len(sine(440, 2.0))) <= 2048  # the clip's duration (2 s at 48 kHz)


def test_crossing_faces_keep_their_identity(ved, tmp_path):
    frames, true_a = crossing_faces(40)
    path = write_clip(tmp_path / "cross.mp4", frames, fps=10)
    result = ved.edit(path, tmp_path / "out.mp4", 70)
    assert len(result.tracks) == 2, [t.path[0] for t in result.tracks]
    a = min(result.tracks, key=lambda t: t.path[0][1])  # starts on the left: person A
    b = max(result.tracks, key=lambda t: t.path[0][1])
    assert sorted(result.faces) == [0, 1] and result.faces[a.id].shape == (128, 128, 3)  # each person's own face
    for index, x, _ in a.path:  # wherever A's track is, it is on A
        assert abs(x - true_a[index][0]) < 40, (index, x, true_a[index][0])
    assert a.path[-1][0] == 39 and a.path[-1][1] > 300  # A is found again after B hid it, as A
    assert b.path[-1][1] < 150
    ved.edit(path, tmp_path / "again.mp4", 70)  # the same clip and settings give the same file
    assert (tmp_path / "again.mp4").read_bytes() == (tmp_path / "out.mp4").read_bytes()


def test_static_clip_does_not_flicker(ved, tmp_path):
    path = write_clip(tmp_path / "still.mp4", moving_photo(15, still=True, noise=4), fps=10, lossless=True)
    result = ved.edit(path, tmp_path / "out.mp4", 70)
    assert result.flicker.pixels > 1000
    assert result.flicker.ratio < 1.0, str(result.flicker)


def test_preview_is_the_first_second(ved, clip, tmp_path):
    out = tmp_path / "preview.mp4"
    result = ved.edit(clip, out, 70, seconds=1.0)
    assert result.frames == probe(out).frames == 10
    assert len(audio_samples(out)) <= 48000 + 2048


def test_cancel_leaves_nothing(ved, clip, tmp_path):
    done = []
    with pytest.raises(CancelledError):
        ved.edit(clip, tmp_path / "out.mp4", 70, progress=lambda d, t: done.append(d), cancel=lambda: len(done) >= 3)
    assert leftovers(tmp_path) == []


def test_no_face_in_any_frame(ved, tmp_path):
    path = write_clip(tmp_path / "empty.mp4", [np.full((120, 160, 3), 90 + i, np.uint8) for i in range(5)])
    with pytest.raises(NoFaceError, match="No face found in any frame"):
        ved.edit(path, tmp_path / "out.mp4", 70)
    assert leftovers(tmp_path) == ["empty.mp4"]


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as box:
        a = box.add_stream("aac", rate=48000)
        a.layout = "mono"
        fr = av.AudioFrame.from_ndarray(sine(440, 0.2)[None], format="fltp", layout="mono")
        fr.sample_rate, fr.pts, fr.time_base = 48000, 0, Fraction(1, 48000)
        box.mux(a.encode(fr))
        box.mux(a.encode(None))
    return path


def _no_frames(path: Path) -> Path:
    """An AVI with a video stream and no frame (an MP4 without frames has no video stream at all)."""
    with av.open(str(path), "w", format="avi") as box:
        v = box.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        box.start_encoding()
        box.mux(v.encode(None))
    return path


def test_variable_frame_rate_keeps_each_frames_time(ved, tmp_path):
    """A phone-like clip whose frames are unevenly spaced is edited, every frame at its own timestamp."""
    src = tmp_path / "vfr.mp4"
    times = (0, 33, 66, 150, 183, 300, 333, 366, 450, 483)  # ms
    with av.open(str(src), "w") as box:
        v = box.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = 320, 240, "yuv420p"
        v.codec_context.time_base = Fraction(1, 1000)
        for pts, rgb in zip(times, moving_photo(len(times))):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts, f.time_base = pts, Fraction(1, 1000)
            box.mux(v.encode(f))
        box.mux(v.encode(None))
    assert probe(src).variable and "variable" in probe(src).describe()
    out = tmp_path / "out.mp4"
    result = ved.edit(src, out, 70)
    assert result.frames == len(times) and len(result.tracks) == 1
    assert [float(f.pts * f.time_base) for _, f in read_frames(out)] == [t / 1000 for t in times]
    diff = np.abs(next(read_frames(out))[0].astype(int) - next(read_frames(src))[0]).mean(2)
    assert diff[80:160, 110:210].mean() > 2 * diff[:20, :20].mean() + 0.5


def _damaged(path: Path, clip: Path) -> Path:
    data = clip.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the index (at the end) is gone
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p, c: (p.write_text("not a video"), p)[1], "not a video faceage can read"),
        (_damaged, "not a video faceage can read"),
        (lambda p, c: _audio_only(p), "no video stream"),
        (lambda p, c: _no_frames(p), "no video frames"),
    ],
)
def test_bad_input_is_one_clear_error(ved, clip, tmp_path, make, message):
    src = make(tmp_path / "bad.mp4", clip)
    out = tmp_path / "out.mp4"
    with pytest.raises(BadVideoError, match=message):
        ved.edit(src, out, 70)
    assert not out.exists() and leftovers(tmp_path) == ["bad.mp4"]


def test_limits_on_size_and_length(ved, clip, tmp_path):
    with pytest.raises(BadVideoError, match="megapixels"):
        ved.edit(clip, tmp_path / "out.mp4", 70, max_pixels=200 * 200)
    with pytest.raises(BadVideoError, match="longer than"):
        ved.edit(clip, tmp_path / "out.mp4", 70, max_seconds=1)
    assert leftovers(tmp_path) == []


def test_one_euro_smooths_a_still_point_and_follows_a_moving_one():
    """In face sizes (what tracks filter): 1% jitter on a still face is cut, a face moving half its size per
    second is followed without lag."""
    rng = np.random.default_rng(0)
    f = OneEuro()
    still = [f(i / 30, np.array([[1.0, 1.0]]) + rng.normal(0, 0.01, (1, 2)))[0, 0] for i in range(90)]
    assert np.std(still[30:]) < 0.005
    g = OneEuro()
    moving = [g(i / 30, np.array([[i / 60, 0.0]]))[0, 0] for i in range(90)]
    assert abs(moving[-1] - 89 / 60) < 0.05  # within 5% of a face


def test_cli_video(clip, tmp_path, capsys):
    from faceage.cli import main

    out = tmp_path / "out.mp4"
    assert main(["--device", "cpu", "video", str(clip), "--age", "70", "--seconds", "0.5", "-o", str(out)]) == 0
    assert probe(out).frames == 5
    err = capsys.readouterr().err
    assert "frames/s" in err and "flicker" in err
    bad = tmp_path / "bad.mp4"
    bad.write_text("x")
    assert main(["video", str(bad), "--age", "70", "-o", str(tmp_path / "o2.mp4")]) == 2
    assert "not a video" in capsys.readouterr().err
    assert not (tmp_path / "o2.mp4").exists()


def test_app_video_tab_preview_and_errors(app_server, clip, tmp_path):
    """The Video tab through the API (tiny weights): the preview is the first second, a bad file a message."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(app_server[0], verbose=False)
    video, status, faces = client.predict(
        handle_file(str(clip)), 70, 8, 4.5, "detail", "", -1, api_name="/video_preview"
    )
    path = video["video"] if isinstance(video, dict) else video
    assert probe(path).frames == 10 and "Preview" in status
    assert load_image(faces).shape == (128, 128, 3)  # one face, labelled with its number and own age
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(AppError, match="not a video"):
        client.predict(handle_file(str(bad)), 70, 8, 4.5, "detail", "", -1, api_name="/video_edit")


def test_app_video_tab_per_sign(app_server, clip, tmp_path):
    """The Video tab per sign, through the API: each renderer previews a clip with one sign set (the two
    renderers' frames differ), the sign inputs are named; a score out of range is a message, not a server
    error."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(app_server[0], verbose=False)
    names = [
        p["parameter_name"]
        for p in client.view_api(return_format="dict")["named_endpoints"]["/video_edit"]["parameters"]
    ]
    assert names[7:10] == ["renderer", "follow_age", "aging_map"] and names[10:] == list(SIGNS)
    frames = {}
    for renderer in ("cusp", "amgan"):
        video, status, _ = client.predict(
            handle_file(str(clip)), 60, renderer=renderer, follow_age=False, forehead=1.0, api_name="/video_preview"
        )
        path = video["video"] if isinstance(video, dict) else video
        frames[renderer] = next(read_frames(path))[0].astype(int)
        assert probe(path).frames == 10 and "Preview" in status
    assert np.abs(frames["cusp"] - frames["amgan"]).mean() > 0.5
    with pytest.raises(AppError, match="greater than maximum"):
        client.predict(handle_file(str(clip)), 60, follow_age=False, forehead=3.0, api_name="/video_preview")


def test_video_tab_runs_nothing_until_used(app_server):
    """No event of the page's load touches the Video tab, and its editor is made only on the first click."""
    import app
    from ui.video_tab import VideoPanel

    demo = app.build(app_server[1])
    video_ids = {
        c["id"] for c in demo.config["components"] if str(c.get("props", {}).get("elem_id", "")).startswith("video_")
    }
    assert len(video_ids) >= 10
    for dep in demo.config["dependencies"]:
        if any(t[1] == "load" for t in dep["targets"]):
            assert not video_ids & set(dep["inputs"] + dep["outputs"]), dep["api_name"]
    assert VideoPanel(editor=object(), missing=None)._editors == {}


def test_a_clip_does_not_hold_up_photo_edits(app_server):
    """Clips queue among themselves (one at a time), not in front of the photo tabs' slider edits."""
    import app

    fns = {fn.api_name: fn for fn in app.build(app_server[1]).fns.values()}
    assert fns["video_edit"].concurrency_id == fns["video_preview"].concurrency_id
    assert fns["video_edit"].concurrency_id not in {fns[k].concurrency_id for k in ("edit", "edit_photo", "amgan_edit")}


def test_full_colour_range_is_kept(ved, tmp_path):
    """A full-range (0-255 luma) clip comes out full range, its untouched pixels at the same grey levels
    (read as limited range they would be off by ~10 levels)."""
    frames = moving_photo(6)
    src = tmp_path / "full.mp4"
    with av.open(str(src), "w") as box:
        v = box.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 320, 240, "yuv420p"
        v.codec_context.color_range = 2  # JPEG: full range
        for f in frames:
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(
                format="yuv420p", src_color_range="JPEG", dst_color_range="JPEG"
            )
            vf.color_range = 2
            box.mux(v.encode(vf))
        box.mux(v.encode(None))
    out = tmp_path / "out.mp4"
    ved.edit(src, out, 70)
    with av.open(str(out)) as box:
        assert box.streams.video[0].codec_context.color_range == 2
    first = next(read_frames(out))[0]
    assert abs(float(first[:20, :20].mean()) - float(frames[0][:20, :20].mean())) < 3
