"""The notebook app without a browser: the studio's state and work, and the widgets driven from Python."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")
pytest.importorskip("mediapipe")

from enliven.errors import CheckpointError, FaceTooSmallError, InputError, NoFaceError  # noqa: E402
from enliven.examples import EXAMPLE_DRIVING, EXAMPLE_SOURCE  # noqa: E402
from enliven.inference import AnimateOptions  # noqa: E402
from enliven.io import read_frames, read_image  # noqa: E402
from enliven.notebook import BoxAdjustment, EnlivenApp, Studio  # noqa: E402
from enliven.notebook.inputs import safe_name  # noqa: E402
from enliven.notebook.upload import FilePicker  # noqa: E402


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """A studio with the bundled photo and clip (enliven-lite, paste-back); tests put back what they change."""
    with Studio(AnimateOptions(paste_back=True), work_dir=tmp_path_factory.mktemp("studio")) as made:
        made.load_photo(EXAMPLE_SOURCE)
        made.load_clip(EXAMPLE_DRIVING)
        yield made


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


def test_the_photo_is_cut_around_its_face(studio):
    photo = studio.photo
    assert photo.name == EXAMPLE_SOURCE.name and photo.box == photo.detected
    assert photo.crop.shape == (256, 256, 3)
    height, width = photo.image.shape[:2]
    assert 0 <= photo.box.x0 < photo.box.x1 <= width and photo.box.y1 > photo.box.y0


def test_clip_frames_are_cut_and_tracked_once(studio):
    clip = studio.clip
    assert clip.length == 75 and clip.frame_indices == tuple(range(75)) and clip.fps == 25
    assert clip.crops.shape == (75, 256, 256, 3)
    assert clip.keypoints.value.shape == (75, 468, 2) and not clip.keypoints.value.isnan().any()


@pytest.mark.parametrize(("paste_back", "edit"), [(True, None), (False, None), (False, "smile=0.8,yaw=10")])
def test_a_preview_is_the_frame_the_render_writes(studio, tmp_path, paste_back, edit):
    from enliven.motion.edits import ExpressionEdit

    studio.update(paste_back=paste_back, edit=ExpressionEdit.parse(edit) if edit else None)
    try:
        result = studio.render(tmp_path / "frames/")
        written = sorted((tmp_path / "frames").glob("*.png"))
        assert result.frames == len(written) == 75
        for position in (0, 17, 74):
            preview = studio.preview(position)
            assert preview.frame == position and preview.seconds > 0
            np.testing.assert_array_equal(preview.result, read_image(written[position]))
        assert preview.result.shape == ((512, 512, 3) if paste_back else (256, 256, 3))
    finally:
        studio.update(paste_back=True, edit=None)


def test_options_change_the_preview_and_a_bad_model_changes_nothing(studio):
    relative = studio.preview(40).result
    studio.update(mode="absolute")
    try:
        assert np.abs(studio.preview(40).result.astype(int) - relative).mean() > 0.5
    finally:
        studio.update(mode="relative")
    np.testing.assert_array_equal(studio.preview(40).result, relative)
    with pytest.raises(CheckpointError, match="neither a file nor a known model"):
        studio.update(model="no-such-model")
    assert studio.options.model is None
    np.testing.assert_array_equal(studio.preview(40).result, relative)
    with pytest.raises(ValueError, match="unknown options"):
        studio.update(colour="blue")
    with pytest.raises(InputError, match="not avd"):
        studio.update(mode="avd")  # TPSMM's mode: enliven-lite animates in relative and absolute only
    assert studio.options.mode == "relative"
    np.testing.assert_array_equal(studio.preview(40).result, relative)


def test_the_best_frame_is_the_renders(studio, tmp_path):
    studio.update(find_best_frame=True)
    try:
        studio.preview(10)
        result = studio.render(tmp_path / "best.mp4")
        assert studio.best_frame is not None and studio.best_frame == result.best_frame
    finally:
        studio.update(find_best_frame=None)


def test_an_adjusted_box_moves_the_crop_and_the_render_uses_it(studio, tmp_path):
    before = studio.photo.crop
    try:
        photo = studio.adjust_box(BoxAdjustment(shift_x=0.1, scale=1.3))
        assert photo.box != photo.detected and photo.box.width == pytest.approx(photo.detected.width * 1.3)
        assert not np.array_equal(photo.crop, before)
        assert studio.render(tmp_path / "moved.mp4").source_box == photo.box
    finally:
        studio.adjust_box(BoxAdjustment())
    with pytest.raises(ValueError, match="scale"):
        BoxAdjustment(scale=3.0)


def test_bad_photos_get_one_sentence_and_the_old_photo_stays(studio, tmp_path):
    photo = studio.photo
    corrupt = studio.save_upload("holiday.jpg", b"not an image" * 100)
    with pytest.raises(InputError, match="Cannot read the image"):
        studio.load_photo(corrupt)
    with pytest.raises(InputError, match="does not exist"):
        studio.load_clip(tmp_path / "missing.mp4")
    assert studio.photo is photo
    studio.preview(3)


def test_a_face_model_refuses_photos_without_a_usable_face(tmp_path):
    with Studio(AnimateOptions(model="enliven-lite"), work_dir=tmp_path) as studio:
        photo = studio.load_photo(EXAMPLE_SOURCE)
        assert studio.model_choice is None  # the options name the model
        with pytest.raises(NoFaceError, match="no face was found"):
            studio.load_photo(np.full((300, 300, 3), 120, np.uint8), "wall.png")
        small = np.full((1200, 1200, 3), 200, np.uint8)
        small[:200, :200] = cv2.resize(photo.crop, (200, 200))  # a face far under 15 % of the shorter side
        with pytest.raises(FaceTooSmallError, match="body or a scene"):
            studio.load_photo(small, "scene.png")
        assert studio.photo is photo


def test_auto_picks_the_model_for_each_photo(tmp_path):
    with Studio(work_dir=tmp_path) as studio:  # model auto, the default
        studio.load_photo(EXAMPLE_SOURCE)
        studio.load_clip(EXAMPLE_DRIVING)
        assert studio.model_choice.model == "enliven-lite" and studio.content == "face"
        assert studio.model_choice.line.startswith("model auto: enliven-lite (a face, ")
        studio.load_photo(np.full((300, 300, 3), 120, np.uint8), "wall.png")
        assert (studio.model_choice.model, studio.model_choice.subject, studio.content) == (
            "enliven-any",
            "other",
            "other",
        )
        assert studio.preview(3).result.shape == (256, 256, 3)  # the clip was cut again for the generic model
        studio.load_photo(EXAMPLE_SOURCE)
        assert studio.model_choice.model == "enliven-lite"
        studio.preview(3)


def test_a_long_clip_is_previewed_at_evenly_spaced_frames(tmp_path):
    with Studio(preview_memory_mb=2, work_dir=tmp_path) as studio:  # 2 MiB hold 10 crops of 256 x 256
        studio.load_photo(EXAMPLE_SOURCE)
        clip = studio.load_clip(EXAMPLE_DRIVING)
        assert len(clip.frame_indices) == 10 and clip.frame_indices[0] == 0 and clip.frame_indices[-1] == 74
        assert studio.preview(9).frame == 74


def test_uploads_get_safe_names():
    assert safe_name("../../etc/passwd") == ("passwd", "")
    assert safe_name("my photo (1).JPG") == ("my_photo_1", ".jpg")
    assert safe_name("C:\\Users\\me\\clip.mp4") == ("clip", ".mp4")


# -- the widgets -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def app(studio):
    return EnlivenApp(studio=studio)


def _send(picker: FilePicker, name: str, data: bytes, chunk: int = 1000) -> None:
    """Play the browser's part of an upload: a start message, then the file in chunks."""
    count = max(1, -(-len(data) // chunk))
    picker.receive({"kind": "start", "name": name, "size": len(data), "count": count}, [])
    for index in range(count):
        picker.receive({"kind": "chunk", "index": index}, [memoryview(data[index * chunk : (index + 1) * chunk])])


def test_the_app_shows_a_frame_and_the_slider_changes_it(app):
    app.frame.value = 0
    assert app.frame.max == 74 and app.result_view.value and app.driving_view.value
    first, label = app.result_view.value, app.timing.value
    app.frame.value = 40
    assert (
        app.result_view.value != first and app.timing.value.startswith("frame 41 of 75") and label != app.timing.value
    )
    app.paste_back.value = False
    try:
        assert cv2.imdecode(np.frombuffer(app.result_view.value, np.uint8), cv2.IMREAD_COLOR).shape == (256, 256, 3)
    finally:
        app.paste_back.value = True
    assert app.studio.options.paste_back


def test_the_reference_choice_sets_the_option(app):
    """The "Reference" dropdown's three names are the option's three values (auto is ``None``, the default)."""
    assert app.find_best_frame.value == "auto (bodies: best)" and app.studio.options.find_best_frame is None
    try:
        app.find_best_frame.value = "first frame"
        assert app.studio.options.find_best_frame is False
        app.find_best_frame.value = "best match"
        assert app.studio.options.find_best_frame is True
    finally:
        app.find_best_frame.value = "auto (bodies: best)"
    assert app.studio.options.find_best_frame is None


def test_a_bad_option_is_reported_and_the_widgets_show_the_old_one(app):
    app.model.options = [*app.model.options, "no-such-model"]
    app.model.value = "no-such-model"
    assert "no-such-model" in app.message.value and "color:#b00020" in app.message.value
    assert app.model.value == "auto" and app.studio.options.model is None


def test_uploads_through_the_picker(app):
    photo = app.studio.photo
    _send(app.photo_upload, "holiday.jpg", b"garbage" * 500)
    assert "Cannot read the image holiday.jpg" in app.message.value and "/upload-" not in app.message.value
    app.clip_upload.receive({"kind": "refused", "name": "long.mp4", "size": 200 * 2**20}, [])
    assert "long.mp4 is 200 MB" in app.message.value and "100 MB" in app.message.value
    assert app.studio.photo is photo
    _send(app.photo_upload, "wall.png", _png(np.full((300, 300, 3), 90, np.uint8)))  # no face: model auto moves on
    assert "wall.png: model auto: enliven-any (no face and no person" in app.message.value
    mirrored = np.ascontiguousarray(read_image(EXAMPLE_SOURCE)[:, ::-1])
    _send(app.photo_upload, "mirrored.png", _png(mirrored), chunk=64 * 1024)
    try:
        assert app.studio.photo.name == "mirrored.png" and "model auto: enliven-lite (a face" in app.message.value
        assert app.photo_choice.value is None and app.photo_upload.state == "using mirrored.png"
    finally:
        app.photo_choice.value = EXAMPLE_SOURCE.name
    assert app.studio.photo.name == EXAMPLE_SOURCE.name


def test_an_out_of_order_chunk_is_refused():
    picker, errors = FilePicker(), []
    picker.on_error(errors.append)
    picker.receive({"kind": "start", "name": "a.jpg", "size": 10, "count": 2}, [])
    picker.receive({"kind": "chunk", "index": 1}, [b"12345"])
    assert errors and "out of order" in errors[0]


def test_render_shows_a_player_and_a_download_link(app):
    app.render(wait=True)
    assert app.video.value[4:8] == b"ftyp" and "Download" in app.download.value
    assert "75 frames" in app.render_state.value and not app.render_button.disabled and app.cancel_button.disabled
    assert app.progress.value == app.progress.max == 75


def test_cancel_stops_a_render_and_writes_nothing(app, monkeypatch):
    started, output = threading.Event(), app.studio.work_dir / "cancelled.mp4"
    real_render = app.studio.render

    def slow_render(**kwargs):
        def progress(done, total):
            started.set()
            kwargs["on_progress"](done, total)
            kwargs["cancel"].wait(5)

        return real_render(output, on_progress=progress, cancel=kwargs["cancel"])

    monkeypatch.setattr(app.studio, "render", slow_render)
    app.render()
    assert started.wait(30)
    app.cancel_button.click()
    app.render_panel.thread.join(30)
    assert app.render_state.value.startswith("cancelled") and not output.exists()


def test_the_webcam_widget_animates_camera_frames(app):
    frames = list(read_frames(EXAMPLE_DRIVING))
    try:
        for frame in frames[:3]:
            answer, face = app.webcam.answer(cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))[1].tobytes())
            assert face and cv2.imdecode(np.frombuffer(answer, np.uint8), cv2.IMREAD_COLOR) is not None
        assert app.webcam.session is not None and app.webcam.frames_answered >= 3
        app.overlay.value = "pip"
        assert app.webcam.session.settings.overlay.value == "pip"
    finally:
        app.webcam.stop()
    assert app.webcam.answer(b"not a jpeg") == (None, False)


def test_a_tab_can_be_added(app):
    import ipywidgets as w

    app.add_tab("Stickers", w.Label("soon"))
    assert app.tabs.get_title(3) == "Stickers" and len(app.tabs.children) == 4


def test_generated_motion_tab_previews_and_renders(app):
    tab = app.motion_tab
    assert app.tabs.get_title(2) == "Generated motion" and "happy" in tab.label.options
    tab.label.value, tab.seconds.value, tab.seed.value = "happy", 2.0, 3
    tab.generate()
    assert tab.frame.max == 49 and tab.view.value and "frame 1 of 50" in tab.timing.value
    first = tab.view.value
    tab.frame.value = 30
    assert tab.view.value != first and "frame 31" in tab.timing.value
    tab.start_render(wait=True)
    panel = tab.render_panel
    assert panel.state.value.startswith("50 frames") and panel.video.value and "download" in panel.download.value


def test_expression_sliders_change_every_preview(app):
    app.motion_tab.generate()
    driving, generated = app.result_view.value, app.motion_tab.view.value
    app.edits["smile"].value = 0.8
    try:
        assert str(app.studio.options.edit) == "smile=0.8"
        assert app.result_view.value != driving and app.motion_tab.view.value != generated
    finally:
        app.edit_reset.click()
    assert app.studio.options.edit is None and app.edits["smile"].value == 0.0


def test_a_box_dragged_on_the_photo_moves_the_crop(app):
    found, crop = app.studio.photo.detected, app.studio.photo.crop
    height, width = app.studio.photo.image.shape[:2]
    assert app.photo_view.box == pytest.approx(
        [found.x0 / width, found.y0 / height, found.x1 / width, found.y1 / height]
    )
    side = (found.x1 - found.x0) / width
    try:
        app.photo_view.box = [v + side * 0.2 if i % 2 == 0 else v for i, v in enumerate(app.photo_view.box)]
        assert app.box_x.value == pytest.approx(0.2, abs=0.01) and app.box_scale.value == pytest.approx(1.0)
        assert not np.array_equal(app.studio.photo.crop, crop)
    finally:
        app.box_reset.click()
    np.testing.assert_array_equal(app.studio.photo.crop, crop)
