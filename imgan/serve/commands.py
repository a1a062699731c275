"""The commands the page offers: their main options (typed, with limits) and the pipeline each request runs.

Each command lists the options the page shows, checks the values a request sends (an unknown key
or a value out of range is refused with 422), and builds its ``Pipeline`` with the same
``imgan.tasks.<task>.pipeline`` function the command line uses. Models are registry names only,
checked against the registry's list for the command's task: a request never names a path.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgan import catalog, hub
from imgan.errors import UsageError
from imgan.serve.uploads import ApiError
from imgan.tasks import STYLES

if TYPE_CHECKING:
    from imgan.batch import Pipeline

OPTION_TYPES = ("number", "select", "checkbox", "text")
MAX_TEXT_OPTION = 400


@dataclass(frozen=True)
class Option:
    """One option of a command as the page shows it, and how a sent value is checked."""

    name: str
    label: str
    type: str
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    integer: bool = False
    optional: bool = False
    """null is a value: the model's own (scale, truncation) or a random one (seed)."""

    def as_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"name": self.name, "label": self.label, "type": self.type, "default": self.default,
                                  "help": self.help}
        if self.type == "number":
            record.update(min=self.minimum, max=self.maximum, step=self.step, integer=self.integer,
                          optional=self.optional)
        if self.type == "select":
            record["choices"] = list(self.choices)
        return record

    def parse(self, value: Any) -> Any:
        """The sent value, checked; ApiError(422) with a one-line reason otherwise."""
        if value is None and (self.optional or self.type == "text"):
            return None if self.optional else ""
        if self.type == "checkbox":
            if not isinstance(value, bool):
                raise ApiError(422, f"option {self.name}: send true or false")
            return value
        if self.type == "select":
            if value not in self.choices:
                raise ApiError(422, f"option {self.name}: use one of {', '.join(self.choices)}")
            return value
        if self.type == "text":
            if not isinstance(value, str) or len(value) > MAX_TEXT_OPTION:
                raise ApiError(422, f"option {self.name}: send text of at most {MAX_TEXT_OPTION} characters")
            return value.strip()
        return self._number(value)

    def _number(self, value: Any) -> int | float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ApiError(422, f"option {self.name}: send a number")
        if self.integer and value != int(value):
            raise ApiError(422, f"option {self.name}: send a whole number")
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            raise ApiError(422, f"option {self.name}: {value:g} is outside {self.minimum:g} to {self.maximum:g}")
        return int(value) if self.integer else float(value)


@dataclass(frozen=True)
class Command:
    """A command of the page: what it takes as input, its options and its registry task."""

    name: str
    title: str
    input: str  # "image", "sketch" (an image or a drawn canvas), "captions"
    task: str
    default_model: str
    options: tuple[Option, ...]
    mask: bool = False

    def models(self) -> list[str]:
        """The registry models of this command's task (never a file)."""
        return [spec.name for spec in catalog.listed_specs(self.task)]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "input": self.input, "mask": self.mask,
                "options": [option.as_json() for option in self.options], "models": self.models(),
                "default_model": self.default_model}

    def values(self, text: str | None) -> dict[str, Any]:
        """The options sent as a JSON object (absent ones take their defaults); 422 for unknown keys."""
        given: Any = {}
        if text is not None and text.strip():
            try:
                given = json.loads(text)
            except ValueError:
                raise ApiError(422, "options: send a JSON object such as {\"scale\": 2}") from None
        if not isinstance(given, dict):
            raise ApiError(422, "options: send a JSON object such as {\"scale\": 2}")
        known = {option.name: option for option in self.options}
        unknown = sorted(set(given) - set(known))
        if unknown:
            names = ", ".join(known) or "none"
            raise ApiError(422, f"{self.name} has no option {', '.join(unknown)}; its options: {names}")
        return {name: option.parse(given[name]) if name in given else option.default for name, option in known.items()}


_SCALE = Option("scale", "Scale", "number", None, "Output scale; empty: the model's own.", minimum=0.25, maximum=8,
                step=0.25, optional=True)
_DENOISE = Option("denoise", "Denoise", "number", None, "Denoise strength 0..1 (models with a denoise companion).",
                  minimum=0, maximum=1, step=0.05, optional=True)
_STYLE = Option("style", "Style", "select", "monet", "The painter.", choices=tuple(STYLES))
_STRENGTH = Option("strength", "Strength", "number", 1.0, "1: the painting; lower blends it with the photo.",
                   minimum=0, maximum=1, step=0.05)
_FROM_PHOTO = Option("from_photo", "From a photo", "checkbox", False, "The input is a photo: draw its edges first.")
_SIZE = Option("size", "Working size", "number", 256, "Longer side the model works at (multiple of 32; 0: the "
               "input's own).", minimum=0, maximum=2048, step=32, integer=True)
_FACE = Option("face", "Face boxes", "text", "", "x,y,w,h in pixels, several separated by ';' (empty: find faces).")
_DILATE = Option("dilate", "Grow hole", "number", 0, "Grow the hole by N pixels.", minimum=0, maximum=256, step=1,
                 integer=True)
_FEATHER = Option("feather", "Feather", "number", 0, "Blend the fill over an N-pixel band.", minimum=0, maximum=256,
                  step=1, integer=True)
_STRATEGY = Option("strategy", "Strategy", "select", "crop", "crop: each hole with context; resize: the whole "
                   "image at the model's size; full: the whole image as it is.", choices=("crop", "resize", "full"))
_INVERT = Option("invert_mask", "Invert mask", "checkbox", False, "The mask is black = fill.")
_COUNT = Option("n", "Pictures", "number", 4, "Pictures per caption.", minimum=1, maximum=64, step=1, integer=True)
_SEED = Option("seed", "Seed", "number", None, "The same seed gives the same pictures; empty: random.", minimum=0,
               maximum=2**53 - 64, step=1, integer=True, optional=True)
_TRUNCATION = Option("truncation", "Truncation", "number", None, "Noise scale 0..1; empty: the model's own.",
                     minimum=0, maximum=1, step=0.01, optional=True)
_GRID = Option("grid", "Grid", "checkbox", False, "One contact sheet per caption, the caption under it.")

COMMANDS: dict[str, Command] = {command.name: command for command in (
    Command("upscale", "Upscale", "image", "upscale", "imgan-sr-x4", (_SCALE, _DENOISE)),
    Command("stylize", "Stylize", "image", "stylize", STYLES["monet"], (_STYLE, _STRENGTH)),
    Command("sketch2photo", "Sketch to photo", "sketch", "sketch2photo", "imgan-sketch2photo", (_FROM_PHOTO, _SIZE)),
    Command("age", "Age faces", "image", "age", "fast-aginggan", (_FACE,)),
    Command("inpaint", "Inpaint", "image", "inpaint", "imgan-inpaint", (_DILATE, _FEATHER, _STRATEGY, _INVERT),
            mask=True),
    Command("text2img", "Text to image", "captions", "text2img", "imgan-text2img", (_COUNT, _SEED, _TRUNCATION, _GRID)),
)}


def find_command(name: str | None) -> Command:
    if not name:
        raise ApiError(422, f"say which command to run: {', '.join(COMMANDS)}")
    if name not in COMMANDS:
        raise ApiError(422, f"unknown command {name[:40]!r}; use one of {', '.join(COMMANDS)}")
    return COMMANDS[name]


def is_installed(spec: hub.WeightSpec) -> bool:
    """Whether the model can run without a download (built in, shipped with imgan, added, or in the cache)."""
    return spec.builtin or hub.cached_path(spec).is_file()


def choose_model(command: Command, model: str | None, values: Mapping[str, Any], *, style_given: bool) -> str:
    """The registry model a request runs: the one named (checked), the style's (stylize), or the default."""
    if command.name == "stylize" and (style_given or not model):
        model = STYLES[values["style"]]
    model = model or command.default_model
    names = command.models()
    if model not in names:
        shown = model if len(model) <= 60 else model[:57] + "..."
        raise ApiError(422, f"{shown!r} is not a {command.name} model; use one of {', '.join(names)}")
    spec = hub.get_spec(model)
    needed = [spec]
    if values.get("denoise") is not None:
        if spec.denoise_companion is None:
            raise ApiError(422, f"denoise needs a model with a denoise companion; {model} has none")
        needed.append(hub.get_spec(spec.denoise_companion))
    missing = [needed_spec.name for needed_spec in needed if not is_installed(needed_spec)]
    if missing:
        raise ApiError(422, f"model {', '.join(missing)} is not downloaded yet; download it in the model list first")
    return model


def build_pipeline(command: Command, model: str, values: Mapping[str, Any], *, mask: str | None) -> Pipeline:
    """The command's pipeline, made by the same task function as on the command line; 422 for a usage error."""
    try:
        if command.name == "upscale":
            from imgan.tasks import upscale

            return upscale.pipeline(model, scale=values["scale"], denoise=values["denoise"])
        if command.name == "stylize":
            from imgan.tasks import translate

            style = next((short for short, name in STYLES.items() if name == model), model)
            return translate.pipeline(style, strength=values["strength"])
        if command.name == "sketch2photo":
            from imgan.tasks import sketch2photo

            return sketch2photo.pipeline(model, from_photo=values["from_photo"], size=values["size"])
        if command.name == "age":
            from imgan.faces import parse_face_box
            from imgan.tasks import age

            boxes = [part.strip() for part in values["face"].split(";") if part.strip()]
            return age.pipeline(model, faces=[parse_face_box(box) for box in boxes] or None)
        if command.name == "inpaint":
            from imgan.tasks import inpaint

            return inpaint.pipeline(model, mask=mask, invert_mask=values["invert_mask"], resize_mask=True,
                                    dilate=values["dilate"], feather=values["feather"], strategy=values["strategy"])
    except UsageError as error:
        raise ApiError(422, str(error).replace("--", "")) from None
    raise ApiError(422, f"{command.name} takes captions, not images")
