"""The screenshot in the README: the app on the shipped weights, in headless Chromium, with a real
UTKFace test face uploaded, the age slider dragged up and an age progression made.

    PYTHONPATH=. python train/bench/screenshot.py [--out docs/app_screenshot.png] [--age 60]

Needs Debian's /usr/bin/chromium, the ``playwright`` wheel (never ``playwright install``) and the
UTKFace data at ../shared/data/utkface (non-commercial: one test face is shown, no data is copied into
the repository). The example gallery holds only that face, so no other UTKFace person is pictured.
Runs the app in-process on a free localhost port, as ``tests/test_browser.py`` does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
PHOTO = "30_0_0_20170116183741574.jpg.chip.jpg"  # the uploaded face: a UTKFace test-split face, age 30
WAIT_MS = 180_000


def utkface_test_face(folder: Path, name: str = PHOTO) -> Path:
    """The UTKFace test-split face ``name``, copied into ``folder``."""
    from faceage.data.utkface import UTKFaceIndex, default_root, parse_name

    index = UTKFaceIndex.build(default_root(), verify=False)
    m = next(m for m in index.split("test") if m.record.name == name)
    dest = folder / f"UTKFace test face, age {parse_name(name).age}.jpg"
    with open(index.shards[m.shard], "rb") as f:
        f.seek(m.offset)
        dest.write_bytes(f.read(m.size))
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drag(page, selector: str, fraction: float) -> None:
    """Press in the middle of ``selector`` (a range input, the before/after image) and drag the pointer
    to ``fraction`` of its width."""
    track = page.locator(selector)
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 0.5 * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + fraction * box["width"], y, steps=12)
    page.mouse.up()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "app_screenshot.png")
    ap.add_argument("--age", type=int, default=60, help="where to drag the age slider")
    args = ap.parse_args(argv)
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    sys.path.insert(0, str(ROOT))
    import app
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="faceage-shot-"))
    photo = utkface_test_face(tmp)
    os.environ[app.EXAMPLES_ENV] = str(tmp)  # the gallery: this face only
    a = app.App()  # the shipped weights
    if a.missing:
        print(a.missing, file=sys.stderr)
        return 3
    demo = app.build(a)
    port = free_port()
    app.launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    srcs = "() => [...document.querySelectorAll('#result img')].map(e => e.src).join()"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(WAIT_MS)
            page.goto(f"http://127.0.0.1:{port}/")
            page.set_input_files("#photo input[type=file]", photo)
            page.wait_for_function("() => document.querySelectorAll('#result img').length === 2")
            first = page.evaluate(srcs)
            drag(page, "#age input[type=range]", args.age / 100)
            shown = page.locator("#age input[type=number]").input_value()
            page.wait_for_function(f"() => ({srcs})() !== {first!r}")
            drag(page, "#result img >> nth=0", 0.3)  # the before/after divider: show mostly the aged face
            page.click("#make_progression")
            page.wait_for_function("() => document.querySelector('#animation img') !== null")
            page.wait_for_timeout(1500)  # let the images paint
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    finally:
        demo.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.out}: uploaded {PHOTO}, age slider at {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
