"""imgan.hub: registry, downloads (resume, mirrors, locking, offline), cache checks, safe loading.

Downloads talk only to a local HTTP server on 127.0.0.1 that serves a tiny generated checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from imgan import __version__
from imgan.errors import DownloadError, ModelError, OfflineError
from imgan.hub import (
    WeightSpec,
    cached_path,
    fetch,
    get_spec,
    load_state_dict,
    pin_path,
    read_pin,
    registry,
    unwrap_state_dict,
    verify_cache,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
WELL_FORMED_DIGEST = (
    r"sha256:[0-9a-f]{64}|md5:[0-9a-f]{32}|gitblob:[0-9a-f]{40}|sha256-prefix:[0-9a-f]{8,64}|unpublished|none"
)
ARCH_PARAMS = {
    "rrdbnet": {"in_channels", "out_channels", "num_features", "num_blocks", "num_grow", "scale"},
    "srvgg": {"in_channels", "out_channels", "num_features", "num_conv", "scale", "act"},
    "srresnet": {"in_channels", "out_channels", "num_features", "num_blocks", "scale"},
    "cyclegan": {"in_channels", "out_channels", "num_features", "num_blocks"},
    "pix2pix": {"in_channels", "out_channels", "num_features", "num_downs", "dropout"},
    "aginggan": {"in_channels", "out_channels", "num_features", "num_blocks"},
    "vgg19": set(),  # the perceptual-loss feature extractor: fixed torchvision architecture
    "inpaint_ffc": {"in_channels", "out_channels", "num_features", "num_blocks"},
    "inpaint_opencv": {"method", "radius"},  # builtin: OpenCV, no file
    "inpaint_migan": {"resolution"},  # TorchScript: params of the wrapper
    "inpaint_lama": set(),
    "inception-fid": set(),  # FID's feature extractor: fixed architecture (imgan.archs.inception)
    "glyph-classifier": set(),  # the text2img default's measuring classifier: its defaults
    "dfgan": {"image_size", "num_features", "noise_dim", "cond_dim", "out_channels", "text_encoder", "vocab_size",
              "embedding_dim"},
}


# --------------------------------------------------------------------------------------------
# A local file server that records requests, honours "Range: bytes=N-", and can misbehave.


class FileServer:
    """State of the test server; the handler reads and records through it."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.files: dict[str, bytes] = {}
        self.requests: list[dict[str, str | None]] = []
        self.body_bytes: dict[str, int] = {}
        self.cut_after: dict[str, int] = {}  # path -> bytes; cuts the next response once
        self.ignore_range = False
        self.gate: threading.Event | None = None  # when set, responses wait for it
        self.request_seen = threading.Event()
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return self.base_url + path


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
        state = self.server.state
        range_header = self.headers.get("Range")
        with state.lock:
            state.requests.append(
                {"path": self.path, "range": range_header, "agent": self.headers.get("User-Agent")}
            )
        state.request_seen.set()
        if state.gate is not None:
            state.gate.wait(timeout=15)
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and not state.ignore_range:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        with state.lock:
            cut = state.cut_after.pop(self.path, None)
        if cut is not None:
            payload = payload[:cut]
            self.close_connection = True
        # Count before writing: the client may finish reading before this thread runs again.
        with state.lock:
            state.body_bytes[self.path] = state.body_bytes.get(self.path, 0) + len(payload)
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: FileServer


@pytest.fixture
def server() -> Iterator[FileServer]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = FileServer(f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield httpd.state
    finally:
        if httpd.state.gate is not None:
            httpd.state.gate.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------------------------
# Test checkpoints and specs


def tiny_tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "body.0.weight": torch.randn(8, 3, 3, 3, generator=generator),
        "body.0.bias": torch.randn(8, generator=generator),
        "body.1.weight": torch.randn(8, generator=generator),
        "body.2.weight": torch.randn(48, 8, 3, 3, generator=generator),
    }


def saved(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def checkpoint() -> bytes:
    """A few-kilobyte torch.save of {"params": {...}}, as BasicSR-style checkpoints are wrapped."""
    return saved({"params": tiny_tensors()})


def digest_of(content: bytes, algorithm: str = "sha256") -> str:
    if algorithm == "gitblob":  # asks git itself, so the check is independent of imgan's code
        result = subprocess.run(
            ["git", "hash-object", "--stdin"], input=content, capture_output=True, check=True
        )
        return "gitblob:" + result.stdout.decode().strip()
    return f"{algorithm}:{hashlib.new(algorithm, content).hexdigest()}"


def make_spec(
    *urls: str, content: bytes, algorithm: str = "sha256", **changes: object
) -> WeightSpec:
    spec = WeightSpec(
        name="tiny-test",
        task="upscale",
        arch="srvgg",
        params={"in_channels": 3, "out_channels": 3, "num_features": 8, "num_conv": 1, "scale": 4},
        scale=4,
        urls=urls,
        digest=digest_of(content, algorithm),
        size=len(content),
        format="pth",
        key="params",
        value_range=(0.0, 1.0),
        license="MIT",
        source="https://example.invalid/tiny",
        paper="",
        description="tiny test weights",
    )
    return dataclasses.replace(spec, **changes)


def part_of(spec: WeightSpec) -> Path:
    path = cached_path(spec)
    return path.with_name(path.name + ".part")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# fetch


def test_fetch_downloads_verifies_and_caches(server: FileServer, checkpoint: bytes) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    calls: list[tuple[int, int | None]] = []

    path = fetch(spec, progress=lambda done, total: calls.append((done, total)))

    assert path == cached_path(spec)
    assert path.read_bytes() == checkpoint
    assert not part_of(spec).exists()
    assert calls[-1] == (len(checkpoint), len(checkpoint))
    state_dict, metadata = load_state_dict(path, key=spec.key)
    assert metadata == {}
    assert torch.equal(state_dict["body.2.weight"], tiny_tensors()["body.2.weight"])


def test_fetch_identifies_itself_as_imgan(server: FileServer, checkpoint: bytes) -> None:
    server.files["/tiny.pth"] = checkpoint
    fetch(make_spec(server.url("/tiny.pth"), content=checkpoint))
    assert server.requests[0]["agent"] == f"imgan/{__version__}"


def test_fetch_returns_cached_file_without_network(server: FileServer, checkpoint: bytes) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    first = fetch(spec)
    second = fetch(spec)
    assert second == first
    assert len(server.requests) == 1


def test_bad_digest_raises_and_leaves_no_file(server: FileServer, checkpoint: bytes) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint, digest="sha256:" + "0" * 64)

    with pytest.raises(DownloadError, match=r"'tiny-test'.*/tiny\.pth.*sha256 is [0-9a-f]{64}"):
        fetch(spec)

    assert not cached_path(spec).exists()
    assert not part_of(spec).exists()


def test_oversized_download_is_stopped_and_removed(server: FileServer, checkpoint: bytes) -> None:
    server.files["/tiny.pth"] = checkpoint + b"trailing junk"
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)

    with pytest.raises(DownloadError, match=f"more than the published {len(checkpoint)} bytes"):
        fetch(spec)

    assert not part_of(spec).exists()
    assert not cached_path(spec).exists()


def test_interrupted_download_keeps_part_and_resumes_with_range(
    server: FileServer, checkpoint: bytes
) -> None:
    half = len(checkpoint) // 2
    server.files["/tiny.pth"] = checkpoint
    server.cut_after["/tiny.pth"] = half
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)

    with pytest.raises(DownloadError, match="connection"):
        fetch(spec)
    assert part_of(spec).read_bytes() == checkpoint[:half]
    assert not cached_path(spec).exists()

    path = fetch(spec)

    assert server.requests[-1]["range"] == f"bytes={half}-"
    assert server.body_bytes["/tiny.pth"] == len(checkpoint)  # nothing fetched twice
    assert sha256_of(path) == hashlib.sha256(checkpoint).hexdigest()
    assert not part_of(spec).exists()


def test_server_ignoring_range_restarts_from_zero(server: FileServer, checkpoint: bytes) -> None:
    server.files["/tiny.pth"] = checkpoint
    server.ignore_range = True
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    part_of(spec).parent.mkdir(parents=True)
    part_of(spec).write_bytes(checkpoint[:100])

    path = fetch(spec)

    assert server.requests[0]["range"] == "bytes=100-"
    assert path.read_bytes() == checkpoint


def test_stale_part_that_fails_verification_is_downloaded_again_from_zero(
    server: FileServer, checkpoint: bytes
) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    part_of(spec).parent.mkdir(parents=True)
    part_of(spec).write_bytes(b"x" * 100)  # not the start of this file

    path = fetch(spec)

    assert [request["range"] for request in server.requests] == ["bytes=100-", None]
    assert path.read_bytes() == checkpoint


def test_mirror_is_used_when_primary_url_fails(server: FileServer, checkpoint: bytes) -> None:
    server.files["/mirror/tiny.pth"] = checkpoint
    urls = server.url("/gone/tiny.pth"), server.url("/mirror/tiny.pth")
    spec = make_spec(*urls, content=checkpoint)

    path = fetch(spec)

    paths = [request["path"] for request in server.requests]
    assert paths == ["/gone/tiny.pth", "/mirror/tiny.pth"]
    assert path.read_bytes() == checkpoint


def test_error_names_every_url_tried_and_why(server: FileServer, checkpoint: bytes) -> None:
    spec = make_spec(server.url("/a/tiny.pth"), server.url("/b/tiny.pth"), content=checkpoint)

    with pytest.raises(DownloadError) as caught:
        fetch(spec)

    message = str(caught.value)
    assert server.url("/a/tiny.pth") + ": HTTP 404" in message
    assert server.url("/b/tiny.pth") + ": HTTP 404" in message
    assert str(cached_path(spec)) in message
    assert "\n" not in message


def test_offline_error_names_url_and_target_and_sends_nothing(
    server: FileServer, checkpoint: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGAN_OFFLINE", "1")
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)

    with pytest.raises(OfflineError) as caught:
        fetch(spec)

    assert str(caught.value) == (
        f"model 'tiny-test' is not in the cache and IMGAN_OFFLINE is set: "
        f"download {server.url('/tiny.pth')} and save it as {cached_path(spec)}"
    )
    assert server.requests == []


def test_offline_still_returns_a_cached_file(
    server: FileServer, checkpoint: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    cached_path(spec).parent.mkdir(parents=True)
    cached_path(spec).write_bytes(checkpoint)
    monkeypatch.setenv("IMGAN_OFFLINE", "true")

    assert fetch(spec) == cached_path(spec)


def test_imgan_offline_zero_allows_downloads(
    server: FileServer, checkpoint: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGAN_OFFLINE", "0")
    server.files["/tiny.pth"] = checkpoint
    assert fetch(make_spec(server.url("/tiny.pth"), content=checkpoint)).is_file()


def test_cached_file_of_wrong_size_is_fetched_again(server: FileServer, checkpoint: bytes) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    cached_path(spec).parent.mkdir(parents=True)
    cached_path(spec).write_bytes(checkpoint[:10])

    path = fetch(spec)

    assert path.read_bytes() == checkpoint
    assert len(server.requests) == 1


@pytest.mark.parametrize("algorithm", ["md5", "gitblob"])
def test_md5_and_git_blob_digests_are_verified(
    server: FileServer, checkpoint: bytes, algorithm: str
) -> None:
    server.files["/good.pth"] = checkpoint
    server.files["/bad.pth"] = checkpoint[:-1] + bytes([checkpoint[-1] ^ 1])
    good = make_spec(server.url("/good.pth"), content=checkpoint, algorithm=algorithm)
    bad = make_spec(server.url("/bad.pth"), content=checkpoint, algorithm=algorithm)

    assert fetch(good).read_bytes() == checkpoint
    with pytest.raises(DownloadError, match=f"{algorithm} is "):
        fetch(bad)


def test_sha256_prefix_digest_is_verified_by_its_first_digits(
    server: FileServer, checkpoint: bytes
) -> None:
    prefix = hashlib.sha256(checkpoint).hexdigest()[:8]
    server.files["/good.pth"] = checkpoint
    server.files["/bad.pth"] = checkpoint[:-1] + bytes([checkpoint[-1] ^ 1])
    good = make_spec(server.url("/good.pth"), content=checkpoint, digest=f"sha256-prefix:{prefix}")
    bad = make_spec(server.url("/bad.pth"), content=checkpoint, digest=f"sha256-prefix:{prefix}")

    assert fetch(good).read_bytes() == checkpoint
    with pytest.raises(DownloadError, match=f"expected one starting with {prefix}"):
        fetch(bad)


@pytest.mark.parametrize("digest", ["sha256-prefix:dcbb9e9", "sha256-prefix:" + "a" * 65])
def test_sha256_prefix_digest_needs_8_to_64_hex_digits(digest: str, checkpoint: bytes) -> None:
    with pytest.raises(ModelError, match="sha256-prefix:<8 to 64 hex>"):
        make_spec("https://example.invalid/tiny.pth", content=checkpoint, digest=digest)


def test_vgg19_entry_is_listed_for_the_perceptual_task() -> None:
    spec = get_spec("vgg19-imagenet")
    assert (spec.task, spec.hidden, spec.digest) == ("perceptual", False, "sha256-prefix:dcbb9e9d")
    assert spec.filename == "vgg19-dcbb9e9d.pth"


_CHILD = """
import json, logging, sys
from imgan.hub import WeightSpec, fetch
assert "torch" not in sys.modules
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
fields = json.loads(sys.argv[1])
fields["urls"] = tuple(fields["urls"])
fields["value_range"] = tuple(fields["value_range"])
print(fetch(WeightSpec(**fields)))
"""


def _spawn_fetch(spec: WeightSpec) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(dataclasses.asdict(spec))],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_fetching_at_once_download_once(
    server: FileServer, checkpoint: bytes
) -> None:
    server.files["/tiny.pth"] = checkpoint
    server.gate = threading.Event()  # hold the first download until the second process waits
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    first = _spawn_fetch(spec)
    second: subprocess.Popen[str] | None = None
    try:
        assert server.request_seen.wait(timeout=15)
        second = _spawn_fetch(spec)
        assert second.stderr is not None
        second_log = ""
        for line in second.stderr:  # ends early (and fails below) if the second never waits
            second_log += line
            if "waiting for another process" in line:
                break
        assert "waiting for another process" in second_log
        server.gate.set()
        first_out, first_err = first.communicate(timeout=20)
        second_out, second_err = second.communicate(timeout=20)
    finally:
        server.gate.set()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()

    assert first.returncode == 0, first_err
    assert second.returncode == 0, second_err
    assert Path(first_out.strip()) == Path(second_out.strip()) == cached_path(spec)
    assert len(server.requests) == 1
    assert server.body_bytes["/tiny.pth"] == len(checkpoint)
    assert sha256_of(cached_path(spec)) == hashlib.sha256(checkpoint).hexdigest()


# --------------------------------------------------------------------------------------------
# verify_cache


def test_verify_cache_flags_a_corrupted_file(server: FileServer, checkpoint: bytes) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    other = make_spec(server.url("/never-fetched.pth"), content=checkpoint, name="absent")
    path = fetch(spec)
    assert verify_cache(specs=[spec, other]) == [("tiny-test", path, True, "ok")]

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    [(name, reported, ok, reason)] = verify_cache(specs=[spec, other])
    assert (name, reported, ok) == ("tiny-test", path, False)
    assert reason.startswith("sha256 is ")


def test_unpublished_digest_is_pinned_on_first_download(
    server: FileServer, checkpoint: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint, digest="unpublished", size=None)
    with caplog.at_level("WARNING", logger="imgan.hub"):
        path = fetch(spec)
    expected = hashlib.sha256(checkpoint).hexdigest()
    assert read_pin(path) == (expected, len(checkpoint))
    assert pin_path(path).read_text() == f"{expected} {len(checkpoint)}\n"
    assert "publishes no checksum" in caplog.text and expected in caplog.text
    assert fetch(spec) == path and len(server.requests) == 1  # later uses: the cache, checked
    assert verify_cache(specs=[spec]) == [("tiny-test", path, True, "ok")]

    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    [(_, _, ok, reason)] = verify_cache(specs=[spec])
    assert not ok and f"first download recorded {expected}" in reason


def test_unpublished_digest_refuses_a_changed_file_on_redownload(server: FileServer, checkpoint: bytes) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint, digest="unpublished", size=None)
    path = fetch(spec)
    path.unlink()
    server.files["/tiny.pth"] = checkpoint[:-1] + bytes([checkpoint[-1] ^ 1])  # upstream file changed
    with pytest.raises(DownloadError, match="first download recorded"):
        fetch(spec)
    assert not path.exists() and not part_of(spec).exists()
    assert read_pin(path) == (hashlib.sha256(checkpoint).hexdigest(), len(checkpoint))


def test_unpublished_digest_file_without_its_record_is_downloaded_again(
    server: FileServer, checkpoint: bytes
) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint, digest="unpublished", size=None)
    path = fetch(spec)
    pin_path(path).unlink()
    assert fetch(spec) == path and len(server.requests) == 2
    assert read_pin(path) is not None


def test_verify_cache_of_the_registry_reports_cached_files_only() -> None:
    spec = get_spec("realesr-animevideov3")
    cached_path(spec).parent.mkdir(parents=True)
    cached_path(spec).write_bytes(b"not the weights")

    results = {name: (ok, reason) for name, _, ok, reason in verify_cache()}

    # The corrupted download, and the weights that ship inside the package (always present).
    shipped = {name for name, entry in registry().items() if entry.embedded}
    assert {"imgan-sr-x4", "imgan-sketch2photo", "imgan-text2img"} <= shipped
    assert set(results) == {"realesr-animevideov3", *shipped}
    assert results["realesr-animevideov3"] == (False, f"size is 15 bytes, expected {spec.size}")
    assert all(results[name] == (True, "ok") for name in shipped)


# --------------------------------------------------------------------------------------------
# load_state_dict / unwrap_state_dict


def test_load_prefers_params_ema_over_params(tmp_path: Path) -> None:
    tensors = tiny_tensors()
    path = tmp_path / "both.pth"
    path.write_bytes(saved({"params": {"x": torch.zeros(1)}, "params_ema": tensors}))

    state_dict, _ = load_state_dict(path)

    assert state_dict.keys() == tensors.keys()


def test_load_uses_the_given_key(tmp_path: Path) -> None:
    path = tmp_path / "both.pth"
    path.write_bytes(saved({"params": {"x": torch.zeros(1)}, "params_ema": tiny_tensors()}))

    state_dict, _ = load_state_dict(path, key="params")

    assert list(state_dict) == ["x"]


def test_load_strips_module_prefix_and_metadata_entry(tmp_path: Path) -> None:
    wrapped = {f"module.{name}": tensor for name, tensor in tiny_tensors().items()}
    wrapped["_metadata"] = {"": {"version": 1}}  # type: ignore[assignment]
    path = tmp_path / "ddp.pth"
    path.write_bytes(saved({"state_dict": wrapped, "epoch": 3}))

    state_dict, _ = load_state_dict(path)

    assert sorted(state_dict) == sorted(tiny_tensors())


def test_unwrap_descends_nested_wrappers() -> None:
    checkpoint = {"model": {"netG": tiny_tensors(), "netD": {"w": torch.ones(1)}}, "epoch": 9}
    assert unwrap_state_dict(checkpoint).keys() == tiny_tensors().keys()


def test_unwrap_refuses_something_that_is_not_a_state_dict() -> None:
    with pytest.raises(ModelError, match="no state dict of tensors.*epoch"):
        unwrap_state_dict({"epoch": 3, "config": {"lr": 1e-4}})


def test_load_reads_safetensors_with_metadata(tmp_path: Path) -> None:
    from imgan.archs.srvgg import SRVGGNetCompact

    params = {"in_channels": 3, "out_channels": 3, "num_features": 8, "num_conv": 1, "scale": 4, "act": "prelu"}
    tensors = SRVGGNetCompact(**params).state_dict()
    path = tmp_path / "ours.safetensors"
    written = {"arch": "srvgg", "params": json.dumps(params), "scale": "4", "value_range": "[0.0, 1.0]"}
    save_file(tensors, str(path), metadata=written)

    state_dict, metadata = load_state_dict(path)

    assert metadata == written
    assert torch.equal(state_dict["body.0.bias"], tensors["body.0.bias"])


class Payload:
    """Stands in for any object a malicious pickle might smuggle in."""


def test_load_refuses_pickles_with_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    path.write_bytes(saved({"params": tiny_tensors(), "extra": Payload()}))

    with pytest.raises(ModelError, match=r"contains code or unknown objects \(.*Payload\)"):
        load_state_dict(path)


def test_load_reports_a_damaged_file(tmp_path: Path, checkpoint: bytes) -> None:
    path = tmp_path / "cut.pth"
    path.write_bytes(checkpoint[: len(checkpoint) // 2])

    with pytest.raises(ModelError, match="cannot read checkpoint .*download it again"):
        load_state_dict(path)


# --------------------------------------------------------------------------------------------
# registry


def test_real_registry_entries_are_well_formed() -> None:
    specs = registry()
    assert "realesr-animevideov3" in specs
    for name, spec in specs.items():
        assert spec.name == name
        assert re.fullmatch(WELL_FORMED_DIGEST, spec.digest), name
        assert bool(spec.embedded or spec.urls) != spec.builtin, name  # a file to use, or none at all
        assert (spec.digest == "none") == spec.builtin, name
        if spec.digest == "unpublished":  # upstream serves these over plain http only, with no digest
            assert all(url.startswith("http://efrosgans.eecs.berkeley.edu/") for url in spec.urls), name
        else:
            assert all(url.startswith("https://") for url in spec.urls), name
        if spec.digest.startswith("sha256:"):  # published with its size
            assert spec.size is not None and spec.size > 0, name
        assert set(spec.params) == ARCH_PARAMS[spec.arch], name
        assert spec.params.get("scale", 1) == spec.scale, name
        assert spec.key in ("params", "params_ema", ""), name  # "": a plain state dict


def test_real_registry_denoise_companion_is_hidden_and_compatible() -> None:
    general = get_spec("realesr-general-x4v3")
    assert general.denoise_companion == "realesr-general-wdn-x4v3"
    companion = get_spec(general.denoise_companion)
    assert companion.hidden
    assert (companion.arch, dict(companion.params)) == (general.arch, dict(general.params))


def test_filename_is_the_last_url_component() -> None:
    assert get_spec("realesrgan-x4plus").filename == "RealESRGAN_x4plus.pth"


def test_get_spec_suggests_close_names() -> None:
    with pytest.raises(ModelError, match="did you mean 'realesr-animevideov3'"):
        get_spec("realesr-animevideo")


_VALID_TABLE = """
[tiny]
task = "upscale"
arch = "srvgg"
params = { scale = 4 }
scale = 4
urls = ["https://example.invalid/tiny.pth"]
digest = "sha256:%s"
size = 10
format = "pth"
key = "params"
value_range = [0.0, 1.0]
license = "MIT"
source = "https://example.invalid"
paper = ""
description = "tiny"
""" % ("a" * 64)


def test_registry_reads_a_valid_table(tmp_path: Path) -> None:
    path = tmp_path / "pretrained.toml"
    path.write_text(_VALID_TABLE)
    spec = registry(path)["tiny"]
    assert (spec.urls, spec.size, spec.value_range, spec.hidden) == (
        ("https://example.invalid/tiny.pth",),
        10,
        (0.0, 1.0),
        False,
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace('license = "MIT"\n', ""), r"table \[tiny\] lacks license"),
        (lambda text: text + 'colour = "red"\n', r"table \[tiny\] has unknown field\(s\) colour"),
        (lambda text: text.replace("size = 10", 'size = "10"'), r"\[tiny\] field size must be"),
        (lambda text: text.replace("sha256:", "sha1:"), r"table \[tiny\] digest 'sha1:a+' must be"),
        (lambda text: text + 'denoise_companion = "nope"\n', r"\[tiny\] names denoise_companion"),
    ],
    ids=["missing", "extra", "wrong-type", "bad-digest", "unknown-companion"],
)
def test_registry_rejects_a_bad_table_naming_it(
    tmp_path: Path, edit: object, message: str
) -> None:
    path = tmp_path / "pretrained.toml"
    path.write_text(edit(_VALID_TABLE))  # type: ignore[operator]
    with pytest.raises(ModelError, match=message):
        registry(path)


def test_import_does_not_load_torch() -> None:
    code = "import sys, imgan.hub; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------
# The real published file, when the shared folder is present


def test_shared_real_checkpoint_matches_its_registry_entry() -> None:
    path = SHARED / "weights" / "realesr-animevideov3.pth"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    spec = get_spec("realesr-animevideov3")

    assert path.stat().st_size == spec.size
    assert f"sha256:{sha256_of(path)}" == spec.digest
    state_dict, _ = load_state_dict(path, key=spec.key)
    assert len(state_dict) == 53
