"""The page of imgan serve in a real browser: Chromium driven by Playwright against the real server.

Each test does what a user does (choose a file, paint, draw, type, press Run) and checks what comes
back: the page shows it, and the downloaded file is what the command line makes. Screenshots go
under the test's tmp_path; with IMGAN_SCREENSHOTS=docs the upscale view is also written to
docs/serve.png (the README's picture).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
DOCS = Path(__file__).resolve().parents[1] / "docs"

SERVE_EXTRA = 'the serve extra is not installed: pip install "imgan[serve]"'
pytest.importorskip("fastapi", reason=SERVE_EXTRA)
pytest.importorskip("uvicorn", reason=SERVE_EXTRA)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need Playwright: pip install playwright")
pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"the browser tests need Chromium at {CHROMIUM}")

RESULT_TIMEOUT_MS = 30_000


@dataclass
class Tab:
    """A page of the browser and what it did: console errors, uncaught errors, every URL it asked for."""

    page: sync_api.Page
    base: str
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def foreign_requests(self) -> list[str]:
        origin = urlsplit(self.base).netloc
        return [url for url in self.requests
                if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).netloc != origin]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The real server on a free port in a thread, on the CPU (so its pixels match the CLI's on the CPU)."""
    from imgan.serve import ServeSettings, serve_in_thread

    with serve_in_thread(ServeSettings(port=0, device="cpu")) as running:
        yield running.url.rstrip("/")


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture
def tab(browser: sync_api.Browser, server: str) -> Iterator[Tab]:
    """The page loaded and ready (commands and models fetched)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(RESULT_TIMEOUT_MS)
    tab = Tab(page, server)
    page.on("console", lambda message: tab.console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: tab.console_errors.append(str(error)))
    page.on("request", lambda request: tab.requests.append(request.url))
    page.goto(server + "/")
    page.wait_for_selector("body.ready")
    yield tab
    context.close()


def screenshot(tab: Tab, tmp_path: Path, name: str, *, docs: bool = False) -> Path:
    path = tmp_path / f"{name}.png"
    tab.page.screenshot(path=path)
    if docs and os.environ.get("IMGAN_SCREENSHOTS") == "docs":
        shutil.copyfile(path, DOCS / "serve.png")
    return path


def photo(path: Path, size: tuple[int, int]) -> Path:
    """A small crop of scikit-image's cat photo (bundled with it, no download): real texture to upscale."""
    from skimage import data

    cat = Image.fromarray(data.chelsea()).crop((40, 0, 400, 240))
    cat.resize(size, Image.Resampling.LANCZOS).save(path)
    return path


def pick_command(tab: Tab, title: str) -> None:
    tab.page.locator(".command", has_text=title).click()


def run_and_download(tab: Tab, tmp_path: Path, name: str) -> Image.Image:
    """Press Run, wait for the job to finish and the viewer to show its first result; that result, downloaded."""
    page = tab.page
    page.click("#run")
    page.wait_for_selector("#jobs li:first-child.job-done")
    page.wait_for_selector("#download:visible")
    page.wait_for_function("() => { const image = document.querySelector('#after-image');"
                           " return image.complete && image.naturalWidth > 0; }")
    with page.expect_download() as download:
        page.click("#download")
    path = tmp_path / f"{name}-downloaded.png"
    download.value.save_as(path)
    return Image.open(path)


def stroke(page: sync_api.Page, selector: str, points: list[tuple[float, float]]) -> None:
    """Drag the mouse through points given as fractions of the element's box."""
    box = page.locator(selector).bounding_box()
    at = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in points]
    page.mouse.move(*at[0])
    page.mouse.down()
    for x, y in at[1:]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()


def set_range(page: sync_api.Page, selector: str, value: int) -> None:
    page.eval_on_selector(selector, "(input, value) => { input.value = value;"
                          " input.dispatchEvent(new Event('input', {bubbles: true})); }", str(value))


UNLABELLED_CONTROLS = """() => [...document.querySelectorAll("input, select, textarea, button")]
    .filter((control) => control.checkVisibility() || control.closest("label")?.checkVisibility())
    .filter((control) => !(control.labels?.length || control.getAttribute("aria-label")
                           || control.getAttribute("aria-labelledby") || control.textContent.trim()))
    .map((control) => control.outerHTML)"""


def test_page_loads_offline_and_lists_every_command(tab: Tab) -> None:
    titles = tab.page.locator(".command").all_inner_texts()
    assert titles == ["Upscale", "Stylize", "Sketch to photo", "Age faces", "Inpaint", "Text to image"]
    assert tab.page.locator("#model").input_value() == "imgan-sr-x4"
    for title in titles:
        pick_command(tab, title)
        assert tab.page.evaluate(UNLABELLED_CONTROLS) == [], title
    tab.page.click("#tab-models")
    assert tab.page.locator("#models-body tr", has_text="imgan-sr-x4").locator(".badge").inner_text() == "Built in"
    assert tab.console_errors == []
    assert tab.foreign_requests() == []
    assert any(url.endswith("/api/commands") for url in tab.requests)


def test_errors_are_messages_on_the_page(tab: Tab, tmp_path: Path) -> None:
    message = tab.page.locator("#message")
    tab.page.click("#run")
    assert "Add an image first" in message.inner_text()
    tab.page.click("#message-close")
    assert message.is_hidden()
    pick_command(tab, "Stylize")  # its models are downloads, none of them in the test's empty cache
    tab.page.set_input_files("#file-input", str(photo(tmp_path / "cat.png", (48, 32))))
    tab.page.click("#run")
    message.filter(has_text="not downloaded").wait_for()
    assert tab.page.locator("#run-hint").inner_text() == "Download cyclegan-monet first."


def drop_file(page: sync_api.Page, path: Path) -> None:
    """Drop a file on the page as a file manager would (a drop event carrying it)."""
    page.evaluate("""async ([name, bytes]) => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([new Uint8Array(bytes)], name, {type: "image/png"}));
        for (const type of ["dragenter", "dragover", "drop"]) {
            document.body.dispatchEvent(new DragEvent(type, {dataTransfer: transfer, bubbles: true, cancelable: true}));
        }
    }""", [path.name, list(path.read_bytes())])


def zoom_level(tab: Tab) -> str:
    return tab.page.locator("#zoom-level").inner_text()


def test_upscale_shows_before_and_after_and_downloads_what_the_cli_makes(tab: Tab, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from imgan.cli import app

    source = photo(tmp_path / "cat.png", (96, 64))
    tab.page.set_input_files("#file-input", str(source))
    drop_file(tab.page, photo(tmp_path / "small.png", (24, 16)))
    sync_api.expect(tab.page.locator("#input-strip .thumb-name")).to_have_text(["cat.png", "small.png"])
    tab.page.click("#input-strip button[aria-label='Show cat.png']")
    downloaded = run_and_download(tab, tmp_path, "upscale")
    tab.page.locator("#result-strip .thumb").nth(1).wait_for()  # one thumbnail per result
    assert tab.page.locator("#result-meta").inner_text() == "96 × 64 → 384 × 256"
    tab.page.wait_for_function("() => document.querySelector('#before-image').naturalWidth === 96")
    screenshot(tab, tmp_path, "upscale", docs=True)

    tab.page.click("#zoom-actual")
    assert zoom_level(tab) == "100%"
    tab.page.click("#zoom-in")
    assert zoom_level(tab) == "125%"
    tab.page.locator("#viewport").hover()
    tab.page.mouse.wheel(0, -200)
    assert int(zoom_level(tab).rstrip("%")) > 125
    layer = tab.page.locator("#layer")
    moved_from = layer.evaluate("layer => layer.style.transform")
    stroke(tab.page, "#viewport", [(0.7, 0.3), (0.6, 0.4)])  # pan
    assert layer.evaluate("layer => layer.style.transform") != moved_from
    stroke(tab.page, "#split", [(0.5, 0.5), (-3, 0.5)])  # the before/after handle, dragged left
    assert int(tab.page.locator("#split").get_attribute("aria-valuenow")) < 50
    tab.page.click("#zoom-fit")
    tab.page.click("#result-strip button[aria-label='Show result small.png']")
    assert tab.page.locator("#result-meta").inner_text() == "24 × 16 → 96 × 64"
    assert tab.console_errors == []

    cli_output = tmp_path / "cli.png"
    result = CliRunner().invoke(app, ["upscale", str(source), "-o", str(cli_output), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert downloaded.size == (384, 256)
    page_pixels = np.asarray(downloaded.convert("RGB"), dtype=np.int16)
    cli_pixels = np.asarray(Image.open(cli_output).convert("RGB"), dtype=np.int16)
    assert np.abs(page_pixels - cli_pixels).max() <= 2


def test_inpaint_fills_the_painted_stroke_and_keeps_the_rest(tab: Tab, tmp_path: Path) -> None:
    source = photo(tmp_path / "cat.png", (48, 32))
    pick_command(tab, "Inpaint")
    tab.page.set_input_files("#file-input", str(source))
    tab.page.locator(".mask-canvas").wait_for()
    set_range(tab.page, "#brush-size", 6)
    stroke(tab.page, ".mask-canvas", [(0.25, 0.5), (0.75, 0.5)])
    screenshot(tab, tmp_path, "inpaint-mask")
    downloaded = run_and_download(tab, tmp_path, "inpaint")
    screenshot(tab, tmp_path, "inpaint")

    assert downloaded.size == (48, 32)
    before = np.asarray(Image.open(source).convert("RGB"), dtype=np.int16)
    after = np.asarray(downloaded.convert("RGB"), dtype=np.int16)
    rows, cols = np.mgrid[0:32, 0:48] + 0.5
    # distance of each pixel centre from the stroke, a segment from (12, 16) to (36, 16) in image pixels
    distance = np.hypot(np.maximum(0, np.maximum(12 - cols, cols - 36)), rows - 16)
    inside, outside = distance < 2, distance > 5
    assert np.abs(after - before)[inside].mean() > 3
    assert np.array_equal(after[outside], before[outside])
    assert tab.console_errors == []


def test_sketch2photo_turns_the_drawing_into_a_photo(tab: Tab, tmp_path: Path) -> None:
    pick_command(tab, "Sketch to photo")
    assert tab.page.locator("#sketch").is_visible()
    set_range(tab.page, "#pen-size", 5)
    stroke(tab.page, "#sketch", [(0.2, 0.7), (0.5, 0.2), (0.8, 0.7), (0.2, 0.7)])
    stroke(tab.page, "#sketch", [(0.35, 0.75), (0.35, 0.9), (0.65, 0.9), (0.65, 0.75)])
    downloaded = run_and_download(tab, tmp_path, "sketch2photo")
    screenshot(tab, tmp_path, "sketch2photo")
    assert downloaded.size == (256, 256)
    assert tab.page.locator("#result-meta").inner_text() == "256 × 256"
    pixels = np.asarray(downloaded.convert("RGB"), dtype=np.int16)
    assert pixels.std() > 5  # a picture, not a blank page
    assert tab.console_errors == []


def test_text2img_shows_pictures_per_caption_and_the_unknown_words(tab: Tab, tmp_path: Path) -> None:
    pick_command(tab, "Text to image")
    tab.page.fill("#captions", "a blue sneaker\nthe digit seven in red zorblax")
    tab.page.fill("#option-text2img-n", "2")
    tab.page.fill("#option-text2img-seed", "7")
    tab.page.click("#run")
    groups = tab.page.locator(".caption-group")
    groups.nth(1).wait_for()
    tab.page.wait_for_function("() => { const images = [...document.querySelectorAll('.card img')];"
                               " return images.length === 4 && images.every((image) => image.naturalWidth > 0); }")
    screenshot(tab, tmp_path, "text2img")
    assert groups.locator(".caption").all_inner_texts() == ["a blue sneaker", "the digit seven in red zorblax"]
    assert groups.nth(0).locator(".chip").count() == 0
    assert groups.nth(1).locator(".chip").all_inner_texts() == ["zorblax"]
    assert tab.console_errors == []


def test_a_model_download_shows_its_outcome(tab: Tab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGAN_OFFLINE", "1")  # no network in tests: the download fails, and the page says why
    pick_command(tab, "Stylize")
    assert tab.page.locator("#model option:checked").inner_text().startswith("cyclegan-monet (not installed")
    tab.page.click("#model-state button")
    tab.page.locator("#message", has_text="Download of cyclegan-monet failed").wait_for()
    assert "IMGAN_OFFLINE" in tab.page.locator("#message").inner_text()
    assert tab.page.locator("#model-state button").inner_text().startswith("Retry download")


def test_with_a_token_the_page_signs_in_from_the_printed_address(browser: sync_api.Browser) -> None:
    from imgan.serve import ServeSettings, serve_in_thread

    with serve_in_thread(ServeSettings(port=0, device="cpu", token="secret-token")) as running:
        page = browser.new_page()
        try:
            page.goto(running.url)
            page.locator("#message", has_text="?token=").wait_for()  # without it: what to do, not a blank page
            page.goto(f"{running.url}?token=secret-token")
            page.wait_for_selector("body.ready")
            assert page.locator(".command").count() == 6
        finally:
            page.close()
