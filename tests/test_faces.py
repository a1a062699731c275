"""Face detection, --face parsing, and face aging with framing and feathered paste-back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from imgan.cli import app
from imgan.engine import Engine
from imgan.errors import InputError, UsageError
from imgan.faces import FaceBox, detect_faces, parse_face_box
from imgan.io import Picture
from imgan.tasks import age as age_module
from imgan.tasks.age import MODEL_SIDE, age_picture, crop_box, feather_mask

skimage_data = pytest.importorskip("skimage.data")

# Hand-checked on the images: eye centres and mouth centre, and a region the head lies in.
ASTRONAUT_LANDMARKS = [(202, 118), (244, 118), (223, 147)]
ASTRONAUT_HEAD = (140, 10, 300, 200)  # left, top, right, bottom
GRACE_LANDMARKS = [(225, 190), (315, 190), (268, 275)]
GRACE_HEAD = (120, 40, 420, 380)


def _check_face(box: FaceBox, landmarks: list[tuple[int, int]], head: tuple[int, int, int, int]) -> None:
    for x, y in landmarks:
        assert box.x <= x < box.x + box.width and box.y <= y < box.y + box.height, (box, (x, y))
    left, top, right, bottom = head
    assert left <= box.x and top <= box.y and box.x + box.width <= right and box.y + box.height <= bottom, box


def _gradient() -> np.ndarray:
    yy, xx = np.mgrid[0:240, 0:320]
    return np.stack([xx / 320 * 255, yy / 240 * 255, np.full_like(xx, 128)], axis=-1).astype(np.uint8)


def _picture(rgb: np.ndarray | torch.Tensor, name: str = "face.png", alpha: bool = False) -> Picture:
    if isinstance(rgb, np.ndarray):
        rgb = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255
    height, width = rgb.shape[-2:]
    alpha_tensor = torch.linspace(0, 1, height * width).reshape(1, 1, height, width) if alpha else None
    return Picture(rgb=rgb, alpha=alpha_tensor, bit_depth=8, grayscale=False, icc_profile=b"icc", exif=None,
                   source_format="png", name=name)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage_data.astronaut()


@pytest.fixture(scope="module")
def astronaut_faces(astronaut: np.ndarray) -> list[FaceBox]:
    return detect_faces(astronaut)


@pytest.fixture(scope="module")
def engine() -> Engine:
    from imgan.archs import build_model
    from imgan.descriptor import ModelDescriptor

    torch.manual_seed(0)
    module = build_model("aginggan", {"num_features": 8, "num_blocks": 1})
    descriptor = ModelDescriptor(module=module, name="t", arch="aginggan", task="age", scale=1, size_multiple=4,
                                 value_range=(-1.0, 1.0))
    return Engine(descriptor, torch.device("cpu"), tile_size=0)


class RecordingEngine:
    """Wraps an engine and records the shape of every image given to ``run``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.shapes: list[tuple[int, ...]] = []

    def run(self, image: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(image.shape))
        return self.engine.run(image)


def _outside_crops_equal(before: torch.Tensor, after: torch.Tensor, faces: list[FaceBox]) -> bool:
    keep = torch.ones(before.shape[-2:], dtype=torch.bool)
    for face in faces:
        left, top, side = crop_box(face)
        keep[max(top, 0):max(top + side, 0), max(left, 0):max(left + side, 0)] = False
    return torch.equal(before[..., keep], after[..., keep])


# --------------------------------------------------------------------------------------------
# Detection


def test_astronaut_has_one_face(astronaut_faces: list[FaceBox]) -> None:
    assert len(astronaut_faces) == 1
    _check_face(astronaut_faces[0], ASTRONAUT_LANDMARKS, ASTRONAUT_HEAD)
    assert astronaut_faces[0].score >= 14


def test_grace_hopper_has_one_face() -> None:
    cbook = pytest.importorskip("matplotlib.cbook")
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as image:
        rgb = np.asarray(image.convert("RGB"))
    faces = detect_faces(rgb)
    assert len(faces) == 1
    _check_face(faces[0], GRACE_LANDMARKS, GRACE_HEAD)


def test_float_input_gives_the_same_face(astronaut: np.ndarray, astronaut_faces: list[FaceBox]) -> None:
    faces = detect_faces(astronaut[::2, ::2].astype(np.float32) / 255)  # half size, float
    assert len(faces) == 1
    _check_face(FaceBox(faces[0].x * 2, faces[0].y * 2, faces[0].width * 2, faces[0].height * 2),
                ASTRONAUT_LANDMARKS, ASTRONAUT_HEAD)


@pytest.mark.parametrize("name", ["coffee", "chelsea", "gradient"])
def test_images_without_faces(name: str) -> None:
    rgb = _gradient() if name == "gradient" else getattr(skimage_data, name)()
    assert detect_faces(rgb) == []


def test_tiny_image_has_no_face() -> None:
    assert detect_faces(np.zeros((10, 12, 3), np.uint8)) == []


# --------------------------------------------------------------------------------------------
# --face


@pytest.mark.parametrize(("text", "box"), [
    ("10,20,30,40", FaceBox(10, 20, 30, 40)),
    (" 1, 2 ,3 ,4 ", FaceBox(1, 2, 3, 4)),
    ("-5,-6,7,8", FaceBox(-5, -6, 7, 8)),
])
def test_parse_face_box(text: str, box: FaceBox) -> None:
    assert parse_face_box(text) == box
    assert str(parse_face_box(text)) == f"{box.x},{box.y},{box.width},{box.height}"


@pytest.mark.parametrize("text", ["", "1,2,3", "1,2,3,4,5", "a,b,c,d", "1.5,2,3,4", "1,2,0,4", "1,2,3,-4", "1;2;3;4",
                                  f"0,0,{10**30},8", f"-{2**31},0,8,8", "0,0,8," + "9" * 5000])
def test_parse_face_box_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--face") as info:
        parse_face_box(text)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_absurd_face_box_is_a_usage_error_before_any_work(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["age", str(tmp_path / "missing.png"), "--model", str(tmp_path / "none.pth"),
                                      "--face", f"0,0,{10**30},8"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: --face '0,0,{10**30},8': numbers must lie within +-2147483647 pixels"


def test_a_box_outside_one_picture_fails_that_picture_alone(tmp_path: Path) -> None:
    from PIL import Image

    from imgan.archs import build_model

    torch.manual_seed(0)
    torch.save(build_model("aginggan", {"num_features": 4, "num_blocks": 1}).state_dict(), tmp_path / "older.pth")
    Image.new("RGB", (24, 8), (90, 60, 40)).save(tmp_path / "strip.png")
    Image.new("RGB", (64, 64), (90, 60, 40)).save(tmp_path / "square.png")
    result = CliRunner().invoke(app, ["age", str(tmp_path / "strip.png"), str(tmp_path / "square.png"), "--model",
                                      str(tmp_path / "older.pth"), "--face", "30,20,4000,4000", "-q"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"failed: {tmp_path / 'strip.png'}: face box 30,20,4000,4000 lies outside "
                                     "the 24x8 image")
    assert result.stdout.strip() == str(tmp_path / "square_aged.png")
    assert not (tmp_path / "strip_aged.png").exists()


def test_parse_face_box_takes_the_largest_png_side() -> None:
    assert parse_face_box(f"-{2**31 - 1},0,{2**31 - 1},1") == FaceBox(-(2**31 - 1), 0, 2**31 - 1, 1)


# --------------------------------------------------------------------------------------------
# Framing and feathering


def test_crop_is_twice_the_face_and_raised() -> None:
    left, top, side = crop_box(FaceBox(100, 100, 50, 50))
    assert side == 100
    assert left == 75 and top < 75


def test_feather_mask() -> None:
    mask = feather_mask(200)[0, 0]
    assert mask.shape == (200, 200)
    assert float(mask.min()) == 0.0 and float(mask.max()) == 1.0
    assert torch.all(mask[:10] == 0) and torch.all(mask[-10:] == 0)
    assert torch.all(mask[:, :15] == 0) and torch.all(mask[:, -15:] == 0)
    assert torch.all(mask[70:140, 60:140] == 1)  # the face box in the crop
    assert torch.equal(mask, mask.flip(1))


# --------------------------------------------------------------------------------------------
# Aging


def test_age_given_face_changes_only_its_crop(astronaut: np.ndarray, engine: Engine,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(age_module, "detect_faces", lambda *_: pytest.fail("detection ran"))
    picture = _picture(astronaut, alpha=True)
    face = FaceBox(175, 68, 97, 98)
    result = age_picture(picture, engine, faces=[face])
    assert result.rgb.shape == picture.rgb.shape and result.rgb.dtype == torch.float32
    assert result.alpha is picture.alpha
    assert dataclasses.replace(result, rgb=picture.rgb) == picture
    assert _outside_crops_equal(picture.rgb, result.rgb, [face])
    centre = (slice(None), slice(None), slice(90, 150), slice(190, 250))
    assert (result.rgb[centre] - picture.rgb[centre]).abs().mean() > 0.01
    assert result.rgb.min() >= 0 and result.rgb.max() <= 1


def test_age_detects_faces(astronaut: np.ndarray, astronaut_faces: list[FaceBox], engine: Engine,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[np.ndarray] = []

    def detect(rgb: np.ndarray) -> list[FaceBox]:  # the real result, cached by the fixture
        seen.append(rgb)
        return astronaut_faces

    monkeypatch.setattr(age_module, "detect_faces", detect)
    picture = _picture(astronaut)
    recorder = RecordingEngine(engine)
    result = age_picture(picture, recorder)
    assert len(seen) == 1 and seen[0].dtype == np.uint8 and np.array_equal(seen[0], astronaut)
    assert recorder.shapes == [(1, 3, MODEL_SIDE, MODEL_SIDE)]
    assert _outside_crops_equal(picture.rgb, result.rgb, astronaut_faces)
    assert not torch.equal(picture.rgb, result.rgb)


@pytest.mark.parametrize("size", [20, 97, 400])
def test_model_sees_512(size: int, engine: Engine) -> None:
    picture = _picture(torch.rand(1, 3, 300, 360))
    recorder = RecordingEngine(engine)
    face = FaceBox(100, 80, size, size)
    result = age_picture(picture, recorder, faces=[face])
    assert recorder.shapes == [(1, 3, 512, 512)]
    assert _outside_crops_equal(picture.rgb, result.rgb, [face])


def test_faceless_picture_raises(engine: Engine) -> None:
    with pytest.raises(InputError, match=r"gradient\.png: no face found.*--face"):
        age_picture(_picture(_gradient(), name="gradient.png"), engine)


def test_face_at_the_border(astronaut: np.ndarray, engine: Engine) -> None:
    picture = _picture(astronaut)
    faces = [FaceBox(-20, 0, 80, 80), FaceBox(470, 460, 60, 60)]  # crops reach far outside the image
    result = age_picture(picture, engine, faces=faces)
    assert result.rgb.shape == picture.rgb.shape
    assert _outside_crops_equal(picture.rgb, result.rgb, faces)
    assert not torch.equal(result.rgb[..., :40, :40], picture.rgb[..., :40, :40])


def test_overlapping_faces_run_one_after_another(astronaut: np.ndarray, engine: Engine) -> None:
    picture = _picture(astronaut)
    faces = [FaceBox(175, 68, 97, 98), FaceBox(200, 90, 80, 80)]
    recorder = RecordingEngine(engine)
    result = age_picture(picture, recorder, faces=faces)
    assert len(recorder.shapes) == 2
    assert _outside_crops_equal(picture.rgb, result.rgb, faces)


def test_tiny_picture(engine: Engine) -> None:
    picture = _picture(torch.rand(1, 3, 8, 8), name="tiny.png")
    with pytest.raises(InputError, match="tiny.png: no face found"):
        age_picture(picture, engine)
    result = age_picture(picture, engine, faces=[FaceBox(0, 0, 8, 8)])
    assert result.rgb.shape == (1, 3, 8, 8)


def _age_face_whole_crop(image: torch.Tensor, face: FaceBox, engine: Engine) -> None:
    """The straightforward framing, holding the whole padded crop: what the windowed one must match."""
    import torch.nn.functional as F

    height, width = image.shape[-2:]
    left, top, side = crop_box(face)
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + side, width), min(top + side, height)
    pads = (x0 - left, left + side - x1, y0 - top, top + side - y1)
    crop = F.pad(image[..., y0:y1, x0:x1], pads, mode="replicate")
    model_in = F.interpolate(crop, size=(MODEL_SIDE, MODEL_SIDE), mode="bicubic", align_corners=False,
                             antialias=side > MODEL_SIDE).clamp(0, 1) if side != MODEL_SIDE else crop
    aged = engine.run(model_in).clamp(0, 1)
    change = F.interpolate(aged - model_in, size=(side, side), mode="bicubic", align_corners=False,
                           antialias=side < MODEL_SIDE)
    mask = feather_mask(side)
    blended = torch.where(mask > 0, (crop + mask * change).clamp(0, 1), crop)
    image[..., y0:y1, x0:x1] = blended[..., y0 - top:y1 - top, x0 - left:x1 - left]


@pytest.mark.parametrize("face", [FaceBox(100, 80, 20, 20), FaceBox(100, 80, 97, 97), FaceBox(100, 80, 256, 256),
                                  FaceBox(-20, 0, 80, 80), FaceBox(300, 250, 60, 60), FaceBox(-100, -100, 300, 600)])
def test_windowed_framing_matches_the_whole_crop(face: FaceBox, engine: Engine) -> None:
    image = torch.rand(1, 3, 300, 360, generator=torch.Generator().manual_seed(1))
    expected = image.clone()
    _age_face_whole_crop(expected, face, engine)
    result = age_picture(_picture(image), engine, faces=[face])
    assert (result.rgb - expected).abs().max() < 1e-4
    assert not torch.equal(result.rgb, image)


@pytest.mark.parametrize("face", [FaceBox(0, 0, 4000, 4000), FaceBox(-(2**31 - 2), 3, 2**31 - 1, 2**31 - 1)])
def test_a_box_far_larger_than_the_picture_is_clipped(face: FaceBox, engine: Engine) -> None:
    picture = _picture(torch.rand(1, 3, 8, 24), name="small.png")
    recorder = RecordingEngine(engine)
    result = age_picture(picture, recorder, faces=[face])
    assert recorder.shapes == [(1, 3, MODEL_SIDE, MODEL_SIDE)]
    assert result.rgb.shape == (1, 3, 8, 24)


def test_clipped_box_lies_within_the_picture_grown_by_its_size() -> None:
    assert age_module._clip_box(FaceBox(0, 0, 4000, 4000), 24, 8) == FaceBox(0, 0, 48, 16)
    assert age_module._clip_box(FaceBox(-10**9, -5, 10**9 + 30, 10), 24, 8) == FaceBox(-24, -5, 54, 10)
    assert age_module._clip_box(FaceBox(-20, 0, 80, 80), 512, 512) == FaceBox(-20, 0, 80, 80)  # cut by the border


def test_face_outside_the_picture(engine: Engine) -> None:
    with pytest.raises(InputError, match=r"small.png: face box 50,50,10,10 lies outside the 40x30 image"):
        age_picture(_picture(torch.rand(1, 3, 30, 40), name="small.png"), engine, faces=[FaceBox(50, 50, 10, 10)])
