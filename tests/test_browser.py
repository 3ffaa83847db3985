"""End to end in headless Chromium, as a person would: upload a photo, drag the age slider, see the edit.

Needs Debian's Chromium (/usr/bin/chromium) and the ``playwright`` wheel (never ``playwright install``);
skips without them. Set FACEAGE_SCREENSHOT=/path.png to keep the final screenshot.
"""

import io
import os
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from train.bench.screenshot import drag

os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 120_000  # generous: CI machines may share their CPUs

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} absent (apt-get install chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")

RESULT_SRCS = "() => [...document.querySelectorAll('#result img')].map(e => e.src)"
NEW_RESULT = """old => {
    const s = [...document.querySelectorAll('#result img')].map(e => e.src);
    return s.length === 2 && s.join() !== old.join();
}"""


@pytest.fixture(scope="module")
def served(app_server):
    """The app on tiny weights at a free localhost port: (url, App)."""
    return app_server


@pytest.fixture
def page():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            pg = browser.new_page(viewport={"width": 1280, "height": 900})
            pg.set_default_timeout(TIMEOUT_MS)
            yield pg
        finally:
            browser.close()


def _local(url: str) -> bool:
    u = urllib.parse.urlsplit(url)
    return u.scheme in ("blob", "data") or (
        u.scheme in ("http", "https", "ws", "wss") and u.hostname in ("127.0.0.1", "localhost")
    )


def _images(page, srcs) -> list[np.ndarray]:
    """The images behind ``srcs`` (URLs the page shows), fetched through the page. A fetch is tried again when
    it breaks off: Gradio rewrites a cached file in place when the same picture is sent again (its name is its
    content's hash), and a read during the rewrite gets fewer bytes than announced."""

    def fetch(src):
        for attempt in range(3):
            try:
                return np.asarray(Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB"))
            except (sync_api.Error, OSError):
                if attempt == 2:
                    raise
                page.wait_for_timeout(100)

    return [fetch(s) for s in srcs]


def _before_after(page, srcs, photo):
    """Fetch the ImageSlider's two images; return (before, after), telling them apart by content."""
    imgs = _images(page, srcs)
    same = [np.array_equal(i, photo) for i in imgs]
    assert sum(same) == 1, "exactly one of the two result images should be the uploaded photo"
    return imgs[same.index(True)], imgs[same.index(False)]


def test_upload_then_drag_age_slider(served, page, face_photo, tmp_path):
    from faceage.cusp.mask import PRESETS

    url, app_obj = served
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    src = tmp_path / "photo.png"
    Image.fromarray(face_photo).save(src)

    page.goto(url)
    page.set_input_files("#photo input[type=file]", src)  # upload fires the edit
    page.wait_for_function(NEW_RESULT, arg=[])
    first = page.evaluate(RESULT_SRCS)
    before, after0 = _before_after(page, first, face_photo)
    assert after0.shape == face_photo.shape and np.any(after0 != before)

    # Drag the age thumb from 70 towards 20 with the mouse: pointerup on the range fires `.release`.
    age_box = page.locator("#age input[type=number]")
    assert age_box.input_value() == "70"
    drag(page, "#age input[type=range]", 0.2, start=0.7)
    new_age = int(age_box.input_value())
    assert 5 <= new_age <= 35, new_age

    page.wait_for_function(NEW_RESULT, arg=first)  # poll until the result images are replaced
    before1, after1 = _before_after(page, page.evaluate(RESULT_SRCS), face_photo)
    assert np.any(after1 != after0), "dragging the age slider did not change the edit"
    # ...and it is the edit for the age the slider shows (edits are deterministic).
    (_, expected), _ = app_obj.edit(str(src), -1, new_age, *PRESETS["custom preservation"])
    np.testing.assert_array_equal(after1, np.asarray(Image.open(expected).convert("RGB")))

    shot = Path(os.environ.get("FACEAGE_SCREENSHOT") or tmp_path / "browser.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 0

    assert requests, "no requests recorded"
    outside = [u for u in requests if not _local(u)]
    assert not outside, f"requests left localhost: {outside}"


FACE_SRCS = "() => [...document.querySelectorAll('#face_result img')].map(e => e.src).join()"
RECORD = """() => { window.__frames = new Set(); window.__rec = setInterval(() => {
    const s = [...document.querySelectorAll('#face_result img')].map(e => e.src).join();
    if (s) window.__frames.add(s); }, 15); }"""


def upload_face(page, url, face_photo, tmp_path) -> Path:
    """Open the app, upload ``face_photo`` and wait for the face view's before/after; returns the file."""
    src = tmp_path / "photo.png"
    Image.fromarray(face_photo).save(src)
    page.goto(url)
    page.set_input_files("#photo input[type=file]", src)
    page.wait_for_function(f"() => ({FACE_SRCS})().split(',').length === 2")
    return src


def settled_box(page, locator, tries: int = 20) -> dict:
    """``locator``'s bounding box once the layout stops moving (pictures that load after the face view, such as
    the face strip, push the controls down; a drag started before that misses the slider)."""
    box = locator.bounding_box()
    for _ in range(tries):
        page.wait_for_timeout(150)
        again = locator.bounding_box()
        if again == box:
            break
        box = again
    return box


def test_dragging_a_slider_streams_the_face_and_ends_on_the_released_age(served, page, face_photo, tmp_path):
    """The face view updates while the age thumb moves (a 2-second drag), and the last frame is the edit at
    the age the slider shows when released."""
    import time

    from faceage.cusp.mask import PRESETS

    url, app_obj = served
    src = upload_face(page, url, face_photo, tmp_path)
    first = page.evaluate(FACE_SRCS)

    track = page.locator("#age input[type=range]")
    track.scroll_into_view_if_needed()
    start_age = int(page.locator("#age input[type=number]").input_value())
    box = settled_box(page, track)
    y = box["y"] + box["height"] / 2
    page.evaluate(RECORD)
    page.mouse.move(box["x"] + 0.7 * box["width"], y)
    page.mouse.down()
    for i in range(1, 41):  # 40 moves over 2 s, from age 70 towards 20
        page.mouse.move(box["x"] + (0.7 - 0.5 * i / 40) * box["width"], y)
        time.sleep(0.05)
    during = page.evaluate("() => window.__frames.size")
    page.mouse.up()
    new_age = int(page.locator("#age input[type=number]").input_value())
    assert new_age < start_age, f"the drag did not move the age slider (still {new_age})"
    befores, afters = app_obj.face_view(str(src), -1, new_age, *PRESETS["custom preservation"])
    expected = np.asarray(Image.open(afters).convert("RGB"))

    def shown_after():
        imgs = _images(page, page.evaluate(FACE_SRCS).split(","))
        before = np.asarray(Image.open(befores).convert("RGB"))
        return [i for i in imgs if not np.array_equal(i, before)]

    deadline = time.time() + TIMEOUT_MS / 1000
    while time.time() < deadline:
        page.wait_for_timeout(200)
        if page.evaluate(FACE_SRCS) != first and any(np.array_equal(a, expected) for a in shown_after()):
            break
    else:
        pytest.fail(f"the face view never showed the edit at the released age {new_age}")
    print(f"\nface view frames shown during a 2-s drag: {during - 1} (besides the one before it)")
    assert during - 1 >= 3, f"only {during - 1} frames streamed while dragging"

    # the keyboard: arrow keys on the focused slider give a result too
    shown = page.evaluate(FACE_SRCS)
    track.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"() => document.querySelector('#age input[type=number]').value === '{new_age + 2}'")
    _, afters = app_obj.face_view(str(src), -1, new_age + 2, *PRESETS["custom preservation"])
    expected = np.asarray(Image.open(afters).convert("RGB"))
    for _ in range(100):
        if page.evaluate(FACE_SRCS) != shown and any(np.array_equal(a, expected) for a in shown_after()):
            break
        page.wait_for_timeout(200)
    else:
        pytest.fail("arrow keys on the age slider did not update the face view")
    # ...and the whole photo follows the key's release, as it follows a mouse release
    (_, whole), _ = app_obj.edit(str(src), -1, new_age + 2, *PRESETS["custom preservation"])
    whole = np.asarray(Image.open(whole).convert("RGB"))
    for _ in range(100):
        srcs = page.evaluate(RESULT_SRCS)
        if srcs and any(np.array_equal(i, whole) for i in _images(page, srcs)):
            break
        page.wait_for_timeout(200)
    else:
        pytest.fail("arrow keys on the age slider did not update the whole photo")


def test_example_gallery_download_and_progression(served, page):
    """Click an example face, get the settings-stamped PNG from the download link, make a progression."""
    from faceage.edit.progression import DEFAULT_AGES

    url, app_obj = served
    if not app_obj.examples:
        pytest.skip("no example faces (FACEAGE_EXAMPLES unset and no UTKFace test split)")
    page.goto(url)
    page.locator("#examples img").first.click()  # the gallery fills the photo and the edit runs
    page.wait_for_function(NEW_RESULT, arg=[])
    link = page.locator("#download a[href*='faceage_age70.png']")
    link.wait_for()
    png = Image.open(io.BytesIO(page.request.get(urllib.parse.urljoin(url, link.get_attribute("href"))).body()))
    assert png.format == "PNG" and png.text["model"] == "cusp" and float(png.text["age"]) == 70
    assert png.size == Image.open(app_obj.examples[0][0]).size  # the full-resolution photo

    page.click("#make_progression")
    page.wait_for_function("() => document.querySelectorAll('#animation img, #strip img').length === 2")
    gif = Image.open(io.BytesIO(page.request.get(page.locator("#animation img").get_attribute("src")).body()))
    assert gif.format == "GIF" and gif.n_frames == 2 * len(DEFAULT_AGES) - 2


AMGAN_SRCS = "() => [...document.querySelectorAll('#amgan_result img')].map(e => e.src)"
AMGAN_NEW = """old => {
    const s = [...document.querySelectorAll('#amgan_result img')].map(e => e.src);
    return s.length === 2 && s.join() !== old.join();
}"""


def test_amgan_tab_paint_on_the_aging_map(served, page, face_photo, tmp_path):
    """Upload on the CUSP tab, open the per-sign tab: the map appears on the canvas and a brush stroke on the
    forehead re-ages the upper face (rendered by CUSP's decodes, the tab's default)."""
    import re

    url, app_obj = served
    src = tmp_path / "photo.png"
    Image.fromarray(face_photo).save(src)
    page.goto(url)
    opened_before = len(app_obj.amgan.cache.sessions)
    page.set_input_files("#photo input[type=file]", src)  # on the CUSP tab: only CUSP runs
    page.wait_for_function(NEW_RESULT, arg=[])
    assert len(app_obj.amgan.cache.sessions) == opened_before, "AMGAN ran before its tab was opened"
    page.get_by_role("tab", name=re.compile("clinical sign")).click()  # opening it: the map and the edit
    page.wait_for_function(AMGAN_NEW, arg=[])
    first = page.evaluate(AMGAN_SRCS)
    _, after0 = _before_after(page, first, face_photo)

    drag(page, "#amgan_canvas canvas", 0.65, start=0.35, at=0.15)  # the aligned face: its top is the forehead
    page.wait_for_function(AMGAN_NEW, arg=first)  # the stroke re-ran the edit with the painted map
    _, after1 = _before_after(page, page.evaluate(AMGAN_SRCS), face_photo)
    ys, _ = np.nonzero(np.any(after1 != after0, axis=2))
    assert len(ys) > 200 and np.median(ys) < 240, "the painted forehead should change the upper face (rows 90..390)"
    page.screenshot(path=str(tmp_path / "amgan.png"), full_page=True)


def test_faces_are_picked_by_picture(served, page):
    """A group photo: the face picker shows every face; clicking one edits only it, "Edit all faces" all."""
    url, app_obj = served
    src = Path(__file__).resolve().parents[1] / "train" / "real_photos" / "family.jpg"  # 4 faces
    page.goto(url)
    page.set_input_files("#photo input[type=file]", src)
    page.wait_for_function("() => { const i = document.querySelector('#faces img'); return i && i.naturalWidth > 0; }")
    page.wait_for_function("() => document.querySelector('#read_ages').innerText.includes('these faces')")
    strip = page.locator("#faces img")
    assert page.evaluate("() => document.querySelector('#faces img').naturalWidth") == 4 * 128  # 4 tiles
    box = strip.bounding_box()
    strip.click(position={"x": box["width"] * 2.5 / 4, "y": box["height"] / 2})  # the third tile
    page.wait_for_function("() => document.querySelector('#read_ages').innerText.includes('this face')")
    expected = app_obj.session(str(src), None).read_ages[2]
    assert f"about {expected:.0f}" in page.locator("#read_ages").inner_text()
    page.click("#all_faces")
    page.wait_for_function("() => document.querySelector('#read_ages').innerText.includes('these faces')")


def test_pin_compare_and_restore_settings(served, page, face_photo, tmp_path):
    """Pin a result, change the age: the comparison shows A and the new B. Paste a settings text: the sliders
    take its values and the result is the edit at them. Open the page with URL parameters: the same."""
    from faceage.cusp.mask import PRESETS

    url, app_obj = served
    src = upload_face(page, url, face_photo, tmp_path)
    page.wait_for_function(
        "() => document.querySelector('#settings textarea, #settings input').value.startsWith('age=70')"
    )
    page.locator("#compare_box").click()  # open the accordion
    page.click("#pin")
    page.wait_for_function("() => document.querySelector('#pinned_note').innerText.includes('age=70')")
    shown = page.evaluate(FACE_SRCS)

    box = page.locator("#settings textarea, #settings input").first
    box.fill("age=25&sigma_m=8&sigma_g=4.5&mode=detail&face=all")
    box.press("Enter")
    page.wait_for_function("() => document.querySelector('#age input[type=number]').value === '25'")
    page.wait_for_function(f"old => ({FACE_SRCS})() !== old", arg=shown)
    _, expected_face = app_obj.face_view(str(src), -1, 25, *PRESETS["custom preservation"])
    expected = np.asarray(Image.open(expected_face).convert("RGB"))
    page.wait_for_function("() => document.querySelectorAll('#compare img').length === 2")

    def compare_has_new():
        imgs = _images(page, page.evaluate("() => [...document.querySelectorAll('#compare img')].map(e => e.src)"))
        return any(np.array_equal(i, expected) for i in imgs) and not all(np.array_equal(i, expected) for i in imgs)

    for _ in range(100):
        if compare_has_new():
            break
        page.wait_for_timeout(200)
    else:
        pytest.fail("the comparison never showed the pinned A beside the new B")

    page.goto(url + "?age=33&sigma_m=2")
    page.wait_for_function("() => document.querySelector('#age input[type=number]')?.value === '33'")
    assert page.locator("#sigma_m input[type=number]").input_value() == "2"
