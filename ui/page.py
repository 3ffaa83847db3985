"""The page: its layout (the CUSP tab, the per-sign tab), which event calls which :class:`ui.server.App`
handler, and how the server is started (``launch``: one model job at a time, a bounded queue)."""

from __future__ import annotations

import html

import gradio as gr

from faceage import settings
from faceage.cusp.mask import PRESETS
from faceage.edit import progression as prog
from faceage.io import MAX_BYTES
from faceage.provenance import weights_note
from ui.amgan_tab import build_amgan_tab, how_changed
from ui.components import NumberBox, NumberSlider, PaintCanvas, PhotoInput, edit_mode, structure_sliders
from ui.examples import ENV as EXAMPLES_ENV
from ui.examples import MAX_EXAMPLES
from ui.server import FACE_VIEW_HEIGHT, THUMBNAIL, App
from ui.session_cache import face_choice
from ui.video_tab import build_video_tab

QUEUE_SIZE = 32  # requests waiting beyond this are refused ("queue is full") instead of piling up
# Gradio's slider fires `release` on pointer-up only: a key released on a focused slider stands for one too,
# so arrow keys (and Page/Home/End) update the whole photo, the download and the settings, not only the face view.
KEY_RELEASE_JS = """() => {
  const keys = ["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "PageUp", "PageDown", "Home", "End"];
  document.addEventListener("keyup", (e) => {
    if (keys.includes(e.key) && e.target instanceof HTMLInputElement && e.target.type === "range") {
      e.target.dispatchEvent(new PointerEvent("pointerup", {bubbles: true}));
    }
  });
}"""


def _pin(face_result, face_index, age, sigma_m, sigma_g, mode, source_age):
    """Keep the face view's result as A: (state, a note of its settings, the comparison showing A twice)."""
    if not face_result or face_result[1] is None:
        raise gr.Error("Edit a photo first: the result shown is what gets pinned.")
    note = f"**A:** {settings.to_text(age, sigma_m, sigma_g, mode, source_age, face_choice(face_index))}"
    return face_result[1], note, (face_result[1], face_result[1])


def _compare(pinned, face_result):
    """The comparison: A (pinned) beside the face view's current result, once something is pinned."""
    if pinned is None or not face_result or face_result[1] is None:
        return gr.skip()
    return pinned, face_result[1]


def _picked(evt: gr.SelectData) -> int:
    """The face number under the click in the face picker (its tiles are ``THUMBNAIL`` px wide; 0 = largest)."""
    return int(evt.index[0] // THUMBNAIL)


def build(app: App) -> gr.Blocks:
    with gr.Blocks(title="faceage", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# faceage\nAge or rejuvenate a face. **CUSP**: **sigma_m** loosens structure where the "
            "age classifier looks (the mask), **sigma_g** everywhere: higher = more shape change. "
            "**Per clinical sign**: age each sign on its own, or paint where the face ages."
        )
        if app.missing:
            gr.Markdown(f"**CUSP weights not loaded:** {html.escape(app.missing)}", elem_id="missing")
        with gr.Row():
            photo = PhotoInput(
                label="Photo", type="filepath", sources=["upload", "webcam", "clipboard"], elem_id="photo"
            )
            face_result = gr.ImageSlider(
                label="The face: before / after (live)",
                type="numpy",
                format="png",
                height=FACE_VIEW_HEIGHT,
                elem_id="face_result",
            )
        result = gr.ImageSlider(label="The whole photo: before / after", type="numpy", format="png", elem_id="result")
        example_loaded = _examples(app, photo)
        with gr.Row():
            with gr.Column(scale=2):
                face_pick = gr.Image(
                    label="Faces (click one; number: read age)",
                    type="filepath",
                    interactive=False,
                    height=THUMBNAIL + 40,
                    buttons=[],
                    elem_id="faces",
                )
                with gr.Row():
                    all_faces = gr.Button("Edit all faces", size="sm", elem_id="all_faces")
                    face_index = NumberBox(
                        value=-1, precision=0, label="Face (-1 = all, 0 = largest)", visible=False, elem_id="face_index"
                    )
            mode = edit_mode()
            source_age = gr.Textbox(
                "",
                label="The face's own age",
                info="Empty: as the classifier reads it. With several faces, one per face, e.g. 34, 61",
                elem_id="source_age",
            )
        read_ages = gr.Markdown("", label="face ages", elem_id="read_ages")
        with gr.Tabs():
            with gr.Tab("CUSP: target age, structure preservation", id="cusp", elem_id="cusp_tab"):
                if app.editor is not None:
                    gr.Markdown(weights_note(app.editor.info), elem_id="cusp_weights")
                with gr.Row():
                    age = NumberSlider(0, 100, value=70, step=1, label="Target age", elem_id="age")
                    sigma_m, sigma_g = structure_sliders()
                with gr.Row():
                    preset = gr.Radio(list(PRESETS), value="custom preservation", label="Structure preservation preset")
                    apply = gr.Button("Apply", variant="primary")
                with gr.Row():
                    settings_box = gr.Textbox(
                        label="Settings: copy them to keep; paste (or open a result PNG) and press Enter to restore",
                        buttons=["copy"],
                        elem_id="settings",
                    )
                    restore_png = gr.UploadButton(
                        "Restore from a result PNG", file_types=[".png"], elem_id="restore_png"
                    )
                with gr.Accordion("Compare: pin a result, then change the settings", open=False, elem_id="compare_box"):
                    with gr.Row():
                        pin = gr.Button("Pin this result as A", elem_id="pin")
                        pinned_note = gr.Markdown("", elem_id="pinned_note")
                    compare = gr.ImageSlider(
                        label="A (pinned) / B (now)",
                        type="numpy",
                        format="png",
                        height=FACE_VIEW_HEIGHT,
                        elem_id="compare",
                    )
                    make_grid = gr.Button("The face at this age with each preset", elem_id="make_grid")
                    grid = gr.Image(label="Presets", type="filepath", interactive=False, elem_id="presets_grid")
                pinned = gr.State(None)
                with gr.Row():
                    mask = gr.Image(
                        label="Mask M | the skip blur it steers",
                        type="numpy",
                        interactive=False,
                        height=280,
                        elem_id="mask",
                    )
                    download = gr.File(label="Full-size PNG (settings inside)", interactive=False, elem_id="download")
                with gr.Accordion("Age progression", open=True):
                    ages = ", ".join(f"{a:g}" for a in prog.DEFAULT_AGES)
                    make_progression = gr.Button(f"Make an age progression ({ages})", elem_id="make_progression")
                    with gr.Row():
                        strip = gr.Image(label="Ages", type="filepath", interactive=False, height=240, elem_id="strip")
                        animation = gr.Image(
                            label="Animated", type="filepath", interactive=False, height=240, elem_id="animation"
                        )
                        progression_files = gr.File(
                            label="Strip, GIF, MP4",
                            file_count="multiple",
                            interactive=False,
                            height=240,
                            elem_id="progression_files",
                        )
            with gr.Tab("Per clinical sign: paintable aging map", id="amgan", elem_id="amgan_tab") as t:
                build_amgan_tab(
                    app.amgan,
                    photo,
                    face_index,
                    slider=NumberSlider,
                    canvas=PaintCanvas,
                    loaded=example_loaded,
                    tab=t,
                    how=[mode, source_age],
                    sigmas=[sigma_m, sigma_g],
                )
            with gr.Tab("Video", id="video", elem_id="video_tab"):
                build_video_tab(app)
        inputs = [photo, face_index, age, sigma_m, sigma_g, mode, source_age]
        model = dict(concurrency_id="model")
        new_photo = [photo.upload(app.edit, inputs, [result, mask], api_name="edit_photo", **model)]
        edits = []
        for slider in (age, sigma_m, sigma_g):
            edits.append(
                slider.release(
                    app.edit,
                    inputs,
                    [result, mask],
                    trigger_mode="always_last",
                    show_progress="minimal",
                    api_name="edit_slider",
                    api_visibility="private",
                    **model,
                )
            )
        clicked = apply.click(app.edit, inputs, [result, mask], api_name="edit", **model)
        clicked.then(app.download, inputs, download, api_name="download", **model)
        if example_loaded is not None:  # clicking an example face edits it
            new_photo.append(example_loaded.then(app.edit, inputs, [result, mask], api_visibility="private", **model))
        new_photo[0].then(app.face_ages, [photo, face_index], read_ages, api_name="face_ages", **model)
        for e in new_photo[1:]:  # a new photo: its faces' ages as the classifier reads them
            e.then(app.face_ages, [photo, face_index], read_ages, api_visibility="private", **model)
        face_index.change(app.face_ages, [photo, face_index], read_ages, api_visibility="private", **model)
        for i, e in enumerate(new_photo):  # the faces found, as pictures to pick from
            e.then(
                app.face_thumbnails,
                photo,
                face_pick,
                api_name="faces" if i == 0 else "faces_example",
                api_visibility="public" if i == 0 else "private",
                **model,
            )
        face_pick.select(_picked, None, face_index, api_name="pick_face", api_visibility="private", queue=False)
        all_faces.click(lambda: -1, None, face_index, api_name="all_faces", api_visibility="private", queue=False)
        edits.append(
            face_index.change(
                app.edit,
                inputs,
                [result, mask],
                trigger_mode="always_last",
                api_name="edit_face_choice",
                api_visibility="private",
                **model,
            )
        )
        for trigger in how_changed(mode, source_age):  # the age box: once typed (Enter or leaving it), not per key
            edits.append(
                trigger(
                    app.edit,
                    inputs,
                    [result, mask],
                    trigger_mode="always_last",
                    show_progress="minimal",
                    api_name="edit_how",
                    api_visibility="private",
                    **model,
                )
            )
        edits += new_photo
        clicked.then(app.face_view, inputs, face_result, api_name="face_view", **model)
        controls = [face_index, age, sigma_m, sigma_g, mode, source_age]
        restored = [
            settings_box.submit(app.restore, settings_box, controls, api_name="restore", queue=False),
            restore_png.upload(
                app.restore, restore_png, controls, api_name="restore_png", api_visibility="private", queue=False
            ),
            demo.load(app.restore_url, None, controls, api_name="restore_url", api_visibility="private", queue=False),
        ]
        edits += [
            r.then(
                app.edit_if_photo, inputs, [result, mask], api_name="edit_restored", api_visibility="private", **model
            )
            for r in restored
        ]
        for e in edits:  # the face view, settings and download follow every edit (App keeps the last edit)
            e.then(app.face_view, inputs, face_result, api_name="face_view_after", api_visibility="private", **model)
            e.then(
                app.settings_text, controls, settings_box, api_name="settings", api_visibility="private", queue=False
            )
            e.then(app.download, inputs, download, api_visibility="private", **model)
        make_grid.click(
            app.presets_grid, [photo, face_index, age, mode, source_age], grid, api_name="presets_grid", **model
        )
        pin.click(
            _pin,
            [face_result, *controls],
            [pinned, pinned_note, compare],
            api_name="pin",
            api_visibility="private",
            queue=False,
        )
        face_result.change(
            _compare,
            [pinned, face_result],
            compare,
            api_name="compare",
            api_visibility="private",
            trigger_mode="always_last",
            show_progress="hidden",
            queue=False,
        )
        for slider in (age, sigma_m, sigma_g):  # live: the face while dragging, stale moves dropped
            slider.input(
                app.face_view,
                inputs,
                face_result,
                trigger_mode="always_last",
                show_progress="hidden",
                api_name="face_view_live",
                api_visibility="private",
                **model,
            )
        demo.load(None, None, None, js=KEY_RELEASE_JS)
        preset.change(lambda p: PRESETS[p], preset, [sigma_m, sigma_g], api_name="preset", api_visibility="private")
        make_progression.click(
            app.progression,
            [photo, face_index, sigma_m, sigma_g, mode, source_age],
            [strip, animation, progression_files],
            api_name="progression",
            **model,
        )
    return demo


def _examples(app: App, photo):
    """The gallery of example faces, a click putting one into ``photo`` (that event is returned), or a
    note saying how to get one (``None``)."""
    if not app.examples:
        gr.Markdown(
            f"No example faces here: set `{EXAMPLES_ENV}` to a folder of photos (or put the UTKFace "
            "data at `../shared/data/utkface`) and restart.",
            elem_id="no_examples",
        )
        return None
    paths, labels = zip(*app.examples)
    # thumbnails of a fixed size whatever their number (a gr.Gallery stretches a few across the page)
    ex = gr.Examples(
        [[p] for p in paths],
        [photo],
        label=f"Example faces, click one: {', '.join(labels)}",
        examples_per_page=MAX_EXAMPLES,
        cache_examples=False,
        elem_id="examples",
    )
    return ex.load_input_event


def launch(demo: gr.Blocks, **kwargs):
    """Queue and serve ``demo`` with faceage's limits (one model job at a time, bounded queue and uploads)."""
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return demo.launch(max_file_size=MAX_BYTES, **kwargs)
