"""imgan serve's JSON API through FastAPI's test client: every command, bad uploads, limits, the token, the queue.

Results are compared with what the command line writes for the same input. Models are the
embedded defaults, or tiny random-weight stand-ins put in the (temporary) cache under a registry
name; the download button fetches from a local HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from imgan import hub
from imgan.archs import build_model
from imgan.cli import app as cli_app
from imgan.serve import ServeSettings, create_app, serve_in_thread
from imgan.serve.settings import checked, page_url

BASE = "http://127.0.0.1:7860"
runner = CliRunner()


def png_bytes(width: int = 24, height: int = 16, *, seed: int = 0, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(buffer, "PNG")
    return buffer.getvalue()


def mask_bytes(width: int = 24, height: int = 16) -> bytes:
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[4:10, 6:14] = 255
    buffer = io.BytesIO()
    Image.fromarray(mask, "L").save(buffer, "PNG")
    return buffer.getvalue()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def cli_output(tmp_path: Path, name: str, data: bytes, *args: str) -> np.ndarray:
    """What the command line writes for the same input and options."""
    source = tmp_path / f"cli-{name}"
    source.write_bytes(data)
    target = tmp_path / f"cli-out-{name}"
    result = runner.invoke(cli_app, [*args[:1], str(source), *args[1:], "--out", str(target), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return np.asarray(Image.open(target))


@pytest.fixture
def settings() -> ServeSettings:
    return ServeSettings(device="cpu")


@pytest.fixture
def client(settings: ServeSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url=BASE) as test_client:
        yield test_client


def submit(client: TestClient, command: str, *, images: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
           mask: tuple[str, bytes] | None = None, options: dict[str, Any] | None = None,
           model: str | None = None, captions: str | None = None, headers: dict[str, str] | None = None,
           ) -> Any:
    data = {"command": command}
    if options is not None:
        data["options"] = json.dumps(options)
    if model is not None:
        data["model"] = model
    if captions is not None:
        data["captions"] = captions
    files = [("images", (name, content, "application/octet-stream")) for name, content in images]
    if mask is not None:
        files.append(("mask", (mask[0], mask[1], "image/png")))
    if not files:  # multipart even without files, as the page's FormData sends it
        files = [("images", ("", b"", "application/octet-stream"))] if command != "text2img" else None
    if files is None:
        boundary = "imgan-test-boundary"
        body = "".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n{value}\r\n"
                       for key, value in data.items()) + f"--{boundary}--\r\n"
        return client.post("/api/jobs", content=body.encode(), headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}", **(headers or {})})
    return client.post("/api/jobs", data=data, files=files, headers=headers)


def finished(client: TestClient, job_id: str) -> dict[str, Any]:
    job = client.app.state.jobs.find(job_id)
    assert job.finished.wait(120), "the job did not finish"
    return client.get(f"/api/jobs/{job_id}").json()


def run(client: TestClient, command: str, **kwargs: Any) -> dict[str, Any]:
    response = submit(client, command, **kwargs)
    assert response.status_code == 202, response.text
    return finished(client, response.json()["id"])


def registry_with(monkeypatch: pytest.MonkeyPatch, name: str, params: dict[str, Any]) -> hub.WeightSpec:
    """Put tiny random weights in the cache under the registry name ``name`` (its digest made to match)."""
    spec = dataclasses.replace(hub.get_spec(name), params=params)
    torch.manual_seed(0)
    path = hub.cached_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(build_model(spec.arch, params).state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    spec = dataclasses.replace(spec, digest=f"sha256:{digest}", size=path.stat().st_size)
    specs = {**hub.registry(), name: spec}
    monkeypatch.setattr(hub, "registry", lambda path=None: specs)
    return spec


# --------------------------------------------------------------------------------------------
# What the page reads first


def test_info_gives_the_limits_the_device_and_no_token(client: TestClient) -> None:
    info = client.get("/api/info").json()
    assert info["device"] == "cpu"
    assert info["max_pixels"] == 178_956_970
    assert info["max_upload_bytes"] == 50 * 2**20
    assert info["token_required"] is False


def test_commands_list_every_command_with_its_registry_models(client: TestClient) -> None:
    commands = {command["name"]: command for command in client.get("/api/commands").json()}
    assert list(commands) == ["upscale", "stylize", "sketch2photo", "age", "inpaint", "text2img"]
    assert [command["name"] for command in commands.values() if command["mask"]] == ["inpaint"]
    assert commands["text2img"]["input"] == "captions" and commands["sketch2photo"]["input"] == "sketch"
    assert all(command["default_model"] in command["models"] for command in commands.values())
    assert {"telea", "ns", "imgan-inpaint"} <= set(commands["inpaint"]["models"])
    scale = next(option for option in commands["upscale"]["options"] if option["name"] == "scale")
    assert scale["type"] == "number" and scale["default"] is None and scale["optional"] is True
    strategy = next(option for option in commands["inpaint"]["options"] if option["name"] == "strategy")
    assert strategy["choices"] == ["crop", "resize", "full"]


def test_models_say_what_is_installed_and_what_can_be_downloaded(client: TestClient) -> None:
    models = {model["name"]: model for model in client.get("/api/models").json()}
    assert models["imgan-sr-x4"] | {"description": ""} == {
        "name": "imgan-sr-x4", "task": "upscale", "description": "", "installed": True, "embedded": True,
        "size_bytes": models["imgan-sr-x4"]["size_bytes"], "downloadable": False}
    assert models["telea"]["installed"] is True and models["telea"]["downloadable"] is False
    assert models["realesrgan-x4plus"]["installed"] is False and models["realesrgan-x4plus"]["downloadable"] is True


# --------------------------------------------------------------------------------------------
# Every command gives what the command line gives


def test_upscale_gives_the_cli_result_and_a_download(client: TestClient, tmp_path: Path) -> None:
    data = png_bytes(seed=1)
    job = run(client, "upscale", images=[("holiday photo.png", data)], options={"scale": 2})
    assert (job["state"], job["position"], job["error"]) == ("done", 0, None)
    assert (job["progress"]["done"], job["progress"]["total"]) == (1, 1)
    result = job["results"][0]
    assert (result["width"], result["height"], result["input_width"], result["input_height"]) == (48, 32, 24, 16)
    assert result["download_name"] == "holiday photo_x2.png"
    output = client.get(result["output"])
    assert output.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(pixels(output.content), cli_output(tmp_path, "a.png", data, "upscale", "--scale",
                                                                     "2"))
    download = client.get(result["output"], params={"download": 1})
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "holiday%20photo_x2.png" in download.headers["content-disposition"]


def test_a_job_of_one_picture_tells_its_tiles(client: TestClient) -> None:
    job = run(client, "upscale", images=[("a.png", png_bytes(24, 16))], options={"scale": 2})
    tiles = job["progress"]["tiles"]
    assert tiles["total"] >= 1 and tiles["done"] == tiles["total"]
    several = run(client, "upscale", images=[("a.png", png_bytes()), ("b.png", png_bytes(seed=1))])
    assert several["progress"] == {"done": 2, "total": 2, "tiles": None}


def test_the_input_view_is_a_png_of_the_upload(client: TestClient) -> None:
    data = png_bytes(20, 12, seed=2, mode="L")
    job = run(client, "upscale", images=[("grey.png", data)])
    view = client.get(job["results"][0]["input"])
    assert view.headers["content-type"] == "image/png"
    np.testing.assert_array_equal(pixels(view.content), pixels(data))


def test_several_images_in_one_job_each_get_a_result(client: TestClient) -> None:
    job = run(client, "upscale", images=[("a.png", png_bytes(16, 16, seed=3)), ("b.png", png_bytes(8, 12, seed=4))],
              options={"scale": 1})
    sizes = {result["name"]: (result["width"], result["height"]) for result in job["results"]}
    assert sizes == {"a.png": (16, 16), "b.png": (8, 12)}
    assert job["progress"] == {"done": 2, "total": 2, "tiles": None}


def test_sketch2photo_gives_the_cli_result(client: TestClient, tmp_path: Path) -> None:
    data = png_bytes(32, 24, seed=5)
    job = run(client, "sketch2photo", images=[("shoe.png", data)], options={"size": 64, "from_photo": True})
    result = job["results"][0]
    assert result["download_name"] == "shoe_photo.png"
    expected = cli_output(tmp_path, "s.png", data, "sketch2photo", "--size", "64", "--from-photo")
    np.testing.assert_array_equal(pixels(client.get(result["output"]).content), expected)


def test_inpaint_with_a_mask_gives_the_cli_result(client: TestClient, tmp_path: Path) -> None:
    data, mask = png_bytes(seed=6), mask_bytes()
    job = run(client, "inpaint", images=[("room.png", data)], mask=("painted.png", mask), options={"dilate": 1})
    filled = pixels(client.get(job["results"][0]["output"]).content)
    (tmp_path / "mask.png").write_bytes(mask)
    expected = cli_output(tmp_path, "r.png", data, "inpaint", "--mask", str(tmp_path / "mask.png"), "--dilate", "1")
    np.testing.assert_array_equal(filled, expected)
    np.testing.assert_array_equal(filled[12:, :], pixels(data)[12:, :])  # far from the hole: untouched
    assert job["results"][0]["download_name"] == "room_inpainted.png"


def test_inpaint_with_a_classical_model_and_an_inverted_mask(client: TestClient) -> None:
    inverted = 255 - pixels(mask_bytes())
    buffer = io.BytesIO()
    Image.fromarray(inverted, "L").save(buffer, "PNG")
    job = run(client, "inpaint", images=[("a.png", png_bytes(seed=7))], mask=("m.png", buffer.getvalue()),
              model="telea", options={"invert_mask": True})
    assert job["model"] == "telea" and job["results"][0]["state"] == "done"


def test_stylize_runs_the_style_picked(client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    registry_with(monkeypatch, "cyclegan-vangogh", {"in_channels": 3, "out_channels": 3, "num_features": 4,
                                                    "num_blocks": 1})
    data = png_bytes(seed=8)
    job = run(client, "stylize", images=[("view.png", data)], options={"style": "vangogh", "strength": 0.5})
    result = job["results"][0]
    assert (job["model"], result["download_name"]) == ("cyclegan-vangogh", "view_vangogh.png")
    expected = cli_output(tmp_path, "v.png", data, "stylize", "--style", "vangogh", "--strength", "0.5")
    np.testing.assert_array_equal(pixels(client.get(result["output"]).content), expected)


def test_age_with_a_face_box(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    registry_with(monkeypatch, "fast-aginggan", {"in_channels": 3, "out_channels": 3, "num_features": 4,
                                                 "num_blocks": 1})
    job = run(client, "age", images=[("me.png", png_bytes(seed=9))], options={"face": "4,2,12,12"})
    assert (job["state"], job["results"][0]["download_name"]) == ("done", "me_aged.png")


def test_age_without_a_face_fails_that_image_with_a_message(client: TestClient,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    registry_with(monkeypatch, "fast-aginggan", {"in_channels": 3, "out_channels": 3, "num_features": 4,
                                                 "num_blocks": 1})
    job = run(client, "age", images=[("noise.png", png_bytes(seed=10))])
    assert job["state"] == "failed"
    assert job["results"][0]["error"] == "noise.png: no face found; give one with --face x,y,w,h"
    assert job["error"] == job["results"][0]["error"]


def test_text2img_gives_the_cli_pictures_and_the_unknown_words(client: TestClient, tmp_path: Path) -> None:
    job = run(client, "text2img", captions="a red 3\nthe digit seven in blue zorg\n\n", options={"n": 2, "seed": 5})
    assert job["progress"] == {"done": 2, "total": 2, "tiles": None}
    results = job["results"]
    assert [(r["caption"], r["seed"], r["oov"]) for r in results] == [
        ("a red 3", 5, []), ("a red 3", 6, []),
        ("the digit seven in blue zorg", 5, ["zorg"]), ("the digit seven in blue zorg", 6, ["zorg"])]
    assert results[0]["download_name"] == "a-red-3_5.png" and results[0]["input"] is None
    cli = runner.invoke(cli_app, ["text2img", "a red 3", "--n", "2", "--seed", "5", "--out", str(tmp_path),
                                  "--device", "cpu"])
    assert cli.exit_code == 0, cli.output
    np.testing.assert_array_equal(pixels(client.get(results[1]["output"]).content),
                                  np.asarray(Image.open(tmp_path / "a-red-3_6.png")))


def test_text2img_grid_and_a_caption_with_no_known_word(client: TestClient) -> None:
    job = run(client, "text2img", captions="a blue sneaker\nzorg blarg", options={"n": 4, "seed": 1, "grid": True})
    sheet, failed = job["results"]
    assert (sheet["state"], sheet["download_name"], sheet["width"] >= 256) == ("done", "a-blue-sneaker.png", True)
    assert (failed["state"], failed["caption"], failed["oov"]) == ("failed", "zorg blarg", ["zorg", "blarg"])
    assert failed["error"].startswith("caption 2 'zorg blarg': imgan-text2img knows none of its words")


# --------------------------------------------------------------------------------------------
# Bad requests are messages, never a 500


def test_a_corrupt_upload_is_a_message_naming_the_file(client: TestClient) -> None:
    truncated = png_bytes(64, 64, seed=11)[:200]
    response = submit(client, "upscale", images=[("broken.png", truncated)])
    assert response.status_code == 415
    assert response.json()["error"].startswith("broken.png: ")


def test_a_file_that_is_no_image_is_refused(client: TestClient) -> None:
    response = submit(client, "upscale", images=[("notes.txt", b"hello, not a picture")])
    assert response.status_code == 415
    assert response.json() == {"error": "notes.txt: not an image, or not a format imgan reads (png, jpg, webp, tiff, "
                                        "bmp, gif, ppm)"}


@pytest.mark.parametrize(("form", "status", "message"), [
    ({"command": "upscale"}, 400, "no image: upload at least one for upscale"),
    ({"command": "sharpen", "images": True}, 422, "unknown command 'sharpen'; use one of upscale, stylize, "
     "sketch2photo, age, inpaint, text2img"),
    ({"command": "upscale", "images": True, "options": {"sharpness": 1}}, 422,
     "upscale has no option sharpness; its options: scale, denoise"),
    ({"command": "upscale", "images": True, "options": {"scale": 100}}, 422, "option scale: 100 is outside 0.25 to 8"),
    ({"command": "upscale", "images": True, "options": {"scale": "big"}}, 422, "option scale: send a number"),
    ({"command": "upscale", "images": True, "options": "[1]"}, 422, "options: send a JSON object such as "
     "{\"scale\": 2}"),
    ({"command": "sketch2photo", "images": True, "options": {"size": 100}}, 422,
     "size 100: use 0 (the input's own resolution) or a multiple of 32 from 64 up (256 is what the model was "
     "trained at)"),
    ({"command": "upscale", "images": True, "model": "../../etc/passwd"}, 422,
     "'../../etc/passwd' is not a upscale model; use one of "),
    ({"command": "upscale", "images": True, "model": "imgan-inpaint"}, 422, "'imgan-inpaint' is not a upscale model"),
    ({"command": "upscale", "images": True, "model": "realesrgan-x4plus"}, 422,
     "model realesrgan-x4plus is not downloaded yet; download it in the model list first"),
    ({"command": "upscale", "images": True, "options": {"denoise": 0.5}}, 422,
     "denoise needs a model with a denoise companion; imgan-sr-x4 has none"),
    ({"command": "upscale", "images": True, "mask": True}, 422, "upscale takes no mask; masks are for inpaint"),
    ({"command": "inpaint", "images": True}, 422, "inpaint needs one mask: paint it over the image or upload it"),
    ({"command": "text2img", "captions": " \n "}, 400, "no caption: type at least one, one per line"),
    ({"command": "text2img", "captions": "a 3", "images": True}, 422, "text2img takes captions, not images"),
    ({"command": "text2img", "captions": "a 3", "options": {"n": 0}}, 422, "option n: 0 is outside 1 to 64"),
])
def test_bad_requests_are_one_line_refusals(client: TestClient, form: dict[str, Any], status: int,
                                            message: str) -> None:
    response = submit(client, form["command"], images=[("a.png", png_bytes())] if form.get("images") else [],
                      mask=("m.png", mask_bytes()) if form.get("mask") else None,
                      options=form.get("options") if not isinstance(form.get("options"), str) else json.loads(
                          form["options"]), model=form.get("model"), captions=form.get("captions"))
    assert response.status_code == status
    assert response.json()["error"].startswith(message)
    assert list(client.app.state.results.iterdir()) == []  # the refused job's folder is gone


def test_an_empty_file_is_no_upload(client: TestClient) -> None:
    response = submit(client, "upscale", images=[("empty.png", b"")])
    assert (response.status_code, response.json()) == (400, {"error": "empty.png: empty file; nothing was uploaded"})


def test_a_form_that_is_not_multipart_is_refused(client: TestClient) -> None:
    response = client.post("/api/jobs", content=b'{"command": "upscale"}', headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["error"]) == (
        415, "send the job as multipart/form-data (a form with files)")


def test_unknown_jobs_and_files_are_404(client: TestClient) -> None:
    assert client.get("/api/jobs/0123456789abcdef").status_code == 404
    job = run(client, "upscale", images=[("a.png", png_bytes())])
    assert client.get(f"/api/jobs/{job['id']}/files/7/output").json() == {
        "error": f"job {job['id']} has no finished file 7"}
    assert client.get(f"/api/jobs/{job['id']}/files/0/secret").status_code == 404


# --------------------------------------------------------------------------------------------
# Limits


def test_an_upload_over_the_size_limit_is_413(tmp_path: Path) -> None:
    with TestClient(create_app(ServeSettings(device="cpu", max_upload_bytes=1000)), base_url=BASE) as client:
        response = submit(client, "upscale", images=[("big.png", png_bytes(64, 64))])
        assert response.status_code == 413
        assert response.json() == {"error": "big.png: larger than the upload limit of 1000 bytes"}
        assert list(client.app.state.results.iterdir()) == []


def test_an_image_over_the_pixel_limit_is_413_before_decoding() -> None:
    with TestClient(create_app(ServeSettings(device="cpu", max_pixels=300)), base_url=BASE) as client:
        response = submit(client, "upscale", images=[("wide.png", png_bytes(24, 16))])
        assert response.status_code == 413
        assert response.json()["error"].startswith("wide.png: 384 pixels is over the limit of 300")
        assert submit(client, "upscale", images=[("small.png", png_bytes(10, 10))]).status_code == 202


def test_too_many_files_is_413() -> None:
    with TestClient(create_app(ServeSettings(device="cpu", max_files=2)), base_url=BASE) as client:
        response = submit(client, "upscale", images=[(f"{n}.png", png_bytes(seed=n)) for n in range(3)])
        assert (response.status_code, response.json()) == (413, {"error": "too many files: at most 2 per job"})


def test_the_clients_file_name_is_never_a_path(client: TestClient) -> None:
    job = run(client, "upscale", images=[("../../outside/evil.png", png_bytes())], options={"scale": 1})
    result = job["results"][0]
    assert (result["name"], result["download_name"]) == ("evil.png", "evil_x1.png")
    saved = sorted(path.name for path in (client.app.state.results / job["id"]).rglob("*") if path.is_file())
    assert saved == ["0.png", "0.png", "0.view.png"]  # in/0.png, out/0.png, in/0.view.png


# --------------------------------------------------------------------------------------------
# Token, host and origin


def test_with_a_token_every_api_route_needs_it() -> None:
    settings = ServeSettings(device="cpu", token="secret-token-1")
    with TestClient(create_app(settings), base_url=BASE) as client:
        refused = client.get("/api/info")
        assert refused.status_code == 401 and refused.json()["error"].startswith("this server needs its token")
        assert submit(client, "upscale", images=[("a.png", png_bytes())]).status_code == 401
        assert client.get("/api/info", headers={"Authorization": "Bearer secret-token-2"}).status_code == 401
        info = client.get("/api/info", headers={"Authorization": "Bearer secret-token-1"})
        assert info.status_code == 200 and info.json()["token_required"] is True


def test_the_token_in_the_address_sets_a_cookie_that_lets_the_page_in() -> None:
    with TestClient(create_app(ServeSettings(device="cpu", token="secret-token-1")), base_url=BASE) as client:
        assert client.get("/", params={"token": "wrong-token"}, follow_redirects=False).status_code == 401
        response = client.get("/", params={"token": "secret-token-1"}, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, "/")
        cookie = response.headers["set-cookie"]
        assert "imgan_token=secret-token-1" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert client.get("/api/info").status_code == 200  # the client keeps the cookie


def test_a_host_that_is_not_loopback_gets_a_token_in_its_address() -> None:
    settings = checked(ServeSettings(host="0.0.0.0"))
    assert settings.token is not None and len(settings.token) >= 24
    assert page_url(settings, 7860) == f"http://0.0.0.0:7860/?token={settings.token}"
    assert checked(ServeSettings()).token is None
    assert page_url(checked(ServeSettings(host="::1")), 8000) == "http://[::1]:8000/"


def test_without_a_token_only_loopback_names_are_answered(settings: ServeSettings) -> None:
    with TestClient(create_app(settings), base_url="http://attacker.example:7860") as client:
        response = client.get("/api/info")
        assert response.status_code == 403 and "127.0.0.1" in response.json()["error"]


def test_a_post_from_another_site_is_refused(client: TestClient) -> None:
    response = submit(client, "upscale", images=[("a.png", png_bytes())], headers={"Origin": "http://evil.example"})
    assert (response.status_code, response.json()) == (403, {"error": "requests from other sites are refused"})
    same = submit(client, "upscale", images=[("a.png", png_bytes())], headers={"Origin": BASE})
    assert same.status_code == 202


# --------------------------------------------------------------------------------------------
# The queue


def test_jobs_wait_in_line_with_their_position(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from imgan.tasks import upscale

    started, release = threading.Event(), threading.Event()
    real = upscale.upscale_picture

    def held(*args: Any, **kwargs: Any) -> Any:
        started.set()
        assert release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(upscale, "upscale_picture", held)
    first = submit(client, "upscale", images=[("1.png", png_bytes(seed=1))]).json()
    assert started.wait(60)
    second = submit(client, "upscale", images=[("2.png", png_bytes(seed=2))]).json()
    third = submit(client, "upscale", images=[("3.png", png_bytes(seed=3))]).json()
    assert (first["position"], second["position"], third["position"]) == (0, 1, 2)
    waiting = client.get(f"/api/jobs/{third['id']}").json()
    assert (waiting["state"], waiting["position"], waiting["results"]) == ("queued", 2, [])
    assert client.get(f"/api/jobs/{first['id']}").json()["state"] == "running"
    release.set()
    states = [finished(client, job["id"]) for job in (first, second, third)]
    assert [(job["state"], job["position"]) for job in states] == [("done", 0)] * 3


def test_concurrent_jobs_keep_their_own_results(client: TestClient, tmp_path: Path) -> None:
    uploads = {"left.png": png_bytes(24, 16, seed=20), "right.png": png_bytes(20, 12, seed=21)}
    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(lambda item: submit(client, "upscale", images=[item], options={"scale": 2}),
                                  uploads.items()))
    ids = [response.json()["id"] for response in responses]
    assert len(set(ids)) == 2 and all(len(job_id) == 32 for job_id in ids)
    for (name, data), job_id in zip(uploads.items(), ids, strict=True):
        result = finished(client, job_id)["results"][0]
        assert result["name"] == name
        np.testing.assert_array_equal(pixels(client.get(result["input"]).content), pixels(data))
        np.testing.assert_array_equal(pixels(client.get(result["output"]).content),
                                      cli_output(tmp_path, name, data, "upscale", "--scale", "2"))


def test_the_results_folder_is_removed_when_the_server_stops(settings: ServeSettings) -> None:
    app = create_app(settings)
    with TestClient(app, base_url=BASE) as client:
        job = run(client, "upscale", images=[("a.png", png_bytes())])
        results = app.state.results
        assert (results / job["id"] / "out").is_dir()
    assert not results.exists()


def test_serve_in_thread_runs_the_real_server_on_a_free_port() -> None:
    with serve_in_thread(ServeSettings(port=0, device="cpu", token="secret-token-1")) as running:
        assert running.url.startswith("http://127.0.0.1:") and running.token == "secret-token-1"
        request = urllib.request.Request(running.url + "api/info", headers={"Authorization": "Bearer secret-token-1"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.loads(answer.read())["token_required"] is True
        assert running.results.is_dir()
    assert not running.results.exists()


# --------------------------------------------------------------------------------------------
# Downloading a model from the page


class _Weights(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def weights_server() -> Iterator[tuple[str, bytes]]:
    """A local server with a tiny x4 checkpoint in the Real-ESRGAN layout."""
    torch.manual_seed(0)
    params = {"in_channels": 3, "out_channels": 3, "num_features": 8, "num_conv": 1, "scale": 4, "act": "prelu"}
    buffer = io.BytesIO()
    torch.save({"params": build_model("srvgg", params).state_dict()}, buffer)
    handler = type("Handler", (_Weights,), {"body": buffer.getvalue()})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/tiny-x4.pth", buffer.getvalue()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_download_button_fetches_a_model_that_jobs_can_then_use(
        client: TestClient, monkeypatch: pytest.MonkeyPatch, weights_server: tuple[str, bytes]) -> None:
    url, content = weights_server
    spec = dataclasses.replace(
        hub.get_spec("realesr-general-x4v3"), name="tiny-x4", urls=(url,), denoise_companion=None,
        params={"in_channels": 3, "out_channels": 3, "num_features": 8, "num_conv": 1, "scale": 4, "act": "prelu"},
        digest="sha256:" + hashlib.sha256(content).hexdigest(), size=len(content))
    specs = {**hub.registry(), "tiny-x4": spec}
    monkeypatch.setattr(hub, "registry", lambda path=None: specs)
    assert client.get("/api/models/tiny-x4/download").json()["state"] == "idle"
    assert submit(client, "upscale", images=[("a.png", png_bytes())], model="tiny-x4").status_code == 422

    started = client.post("/api/models/tiny-x4/download")
    assert started.status_code == 202 and started.json()["state"] in ("running", "done")
    for thread in threading.enumerate():
        if thread.name == "imgan-download-tiny-x4":
            thread.join(60)
    assert client.get("/api/models/tiny-x4/download").json() == {
        "name": "tiny-x4", "state": "done", "done": len(content), "total": len(content), "error": None}
    assert next(m for m in client.get("/api/models").json() if m["name"] == "tiny-x4")["installed"] is True
    job = run(client, "upscale", images=[("a.png", png_bytes(8, 8))], model="tiny-x4")
    assert (job["state"], job["results"][0]["width"]) == ("done", 32)


def test_downloading_an_embedded_or_unknown_model_is_refused(client: TestClient) -> None:
    embedded = client.post("/api/models/imgan-sr-x4/download")
    assert (embedded.status_code, embedded.json()) == (422, {"error": "imgan-sr-x4 comes with imgan; there is "
                                                                      "nothing to download"})
    unknown = client.post("/api/models/..%2F..%2Fetc/download")
    assert unknown.status_code == 404


# --------------------------------------------------------------------------------------------
# The command


def test_imgan_serve_without_the_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "fastapi", None)
    monkeypatch.delitem(sys.modules, "imgan.serve.app", raising=False)
    result = runner.invoke(cli_app, ["serve"])
    assert result.exit_code == 1
    assert 'imgan serve needs the serve extra: pip install "imgan[serve]"' in result.output


def test_imgan_serve_prints_its_address_and_passes_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    import imgan.serve.app as serve_app

    seen: list[ServeSettings] = []

    def fake_serve(settings: ServeSettings, *, ready: Any, open_browser: bool) -> None:
        seen.append(settings)
        ready(page_url(checked(settings), settings.port))

    monkeypatch.setattr(serve_app, "serve", fake_serve)
    result = runner.invoke(cli_app, ["serve", "--port", "8123", "--token", "my-long-token", "--max-upload-mb", "2",
                                     "--max-pixels", "1000"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "imgan serving on http://127.0.0.1:8123/?token=my-long-token"
    assert (seen[0].max_upload_bytes, seen[0].max_pixels, seen[0].token) == (2 * 2**20, 1000, "my-long-token")
