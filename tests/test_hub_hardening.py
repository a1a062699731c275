"""imgan.hub against hostile files: tampered caches, lying safetensors headers, zip bombs, pickles.

Downloads talk only to the local HTTP server of tests/test_hub.py; every crafted file is tiny.
"""
# ruff: noqa: F811 - the fixtures imported from tests.test_hub are redefined as test arguments

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import struct
import threading
import time
import zipfile
from pathlib import Path

import filelock
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from imgan import hub
from imgan.archs.srvgg import SRVGGNetCompact
from imgan.errors import ImganError, ModelError, OfflineError
from imgan.hub import cached_path, checked_metadata, fetch, load_state_dict, pin_path, verified_record_path
from tests.test_hub import FileServer, checkpoint, make_spec, server  # noqa: F401 - fixtures

runner = CliRunner()
TINY = {"in_channels": 3, "out_channels": 3, "num_features": 8, "num_conv": 1, "scale": 4, "act": "prelu"}


def tampered(content: bytes) -> bytes:
    """Other bytes of the same length: what the size check alone cannot tell apart."""
    data = bytearray(content)
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file imgan.hub hashes, in order."""
    calls: list[Path] = []
    original = hub._hash_file

    def counting(path: Path, algorithm: str) -> str:
        calls.append(Path(path))
        return original(path, algorithm)

    monkeypatch.setattr(hub, "_hash_file", counting)
    return calls


def one_line(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message and "\x1b" not in message, message
    return message


# --------------------------------------------------------------------------------------------
# A cached file is hashed on its first use after any change


def test_tampered_cached_file_of_the_right_size_is_downloaded_again(server: FileServer, checkpoint: bytes) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    path = fetch(spec)
    path.write_bytes(tampered(checkpoint))

    assert fetch(spec) == path

    assert path.read_bytes() == checkpoint
    assert len(server.requests) == 2


def test_tampered_cached_file_offline_is_refused_naming_it_and_the_command(
    server: FileServer, checkpoint: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    path = fetch(spec)
    path.write_bytes(tampered(checkpoint))
    monkeypatch.setenv("IMGAN_OFFLINE", "1")

    with pytest.raises(OfflineError) as caught:
        fetch(spec)

    message = one_line(caught.value)
    assert str(path) in message and "sha256 is " in message
    assert "`imgan models download tiny-test`" in message
    assert path.read_bytes() == tampered(checkpoint)  # offline: left for the user to replace
    assert len(server.requests) == 1


def test_models_download_replaces_a_tampered_file(
    server: FileServer, checkpoint: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgan.cli import app

    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    monkeypatch.setattr(hub, "registry", lambda path=None: {spec.name: spec})
    path = fetch(spec)
    path.write_bytes(tampered(checkpoint))

    result = runner.invoke(app, ["models", "download", "tiny-test", "--quiet"])

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(path)
    assert path.read_bytes() == checkpoint


def test_tampered_file_of_an_unpublished_digest_is_downloaded_again_and_checked_against_its_record(
    server: FileServer, checkpoint: bytes
) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint, digest="unpublished", size=None)
    path = fetch(spec)
    record = pin_path(path).read_text()
    path.write_bytes(tampered(checkpoint))

    assert fetch(spec).read_bytes() == checkpoint

    assert len(server.requests) == 2
    assert pin_path(path).read_text() == record


def test_tampered_embedded_file_is_refused(tmp_path: Path, checkpoint: bytes) -> None:
    shipped = tmp_path / "package" / "tiny.pth"
    shipped.parent.mkdir()
    shipped.write_bytes(tampered(checkpoint))
    # An absolute path stands in for the file inside the package.
    spec = make_spec("https://example.invalid/tiny.pth", content=checkpoint, embedded=str(shipped))

    with pytest.raises(ModelError, match="ships with imgan but .*tiny.pth failed its check .*reinstall imgan"):
        fetch(spec)


def test_an_unchanged_file_is_hashed_once(server: FileServer, checkpoint: bytes, hash_calls: list[Path]) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    path = fetch(spec)
    assert len(hash_calls) == 1  # the download, before it was renamed into place

    for _ in range(3):
        assert fetch(spec) == path

    assert len(hash_calls) == 1


def test_embedded_weights_are_hashed_on_first_use_only(
    tmp_path: Path, checkpoint: bytes, hash_calls: list[Path]
) -> None:
    shipped = tmp_path / "package" / "tiny.pth"
    shipped.parent.mkdir()
    shipped.write_bytes(checkpoint)
    spec = make_spec("https://example.invalid/tiny.pth", content=checkpoint, embedded=str(shipped))

    for _ in range(3):
        assert fetch(spec) == shipped

    assert hash_calls == [shipped]
    assert verified_record_path(spec).parent == hub.weights_dir()  # never written into the package


@pytest.mark.parametrize("change", ["mtime", "inode"])
def test_a_changed_mtime_or_inode_means_hash_again(
    server: FileServer, checkpoint: bytes, hash_calls: list[Path], tmp_path: Path, change: str
) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    path = fetch(spec)
    hash_calls.clear()
    if change == "mtime":
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    else:
        copy = tmp_path / "copy.pth"
        shutil.copyfile(path, copy)
        os.replace(copy, path)

    fetch(spec)
    fetch(spec)

    assert hash_calls == [path]
    assert len(server.requests) == 1


def test_setting_the_mtime_back_after_tampering_does_not_hide_it(server: FileServer, checkpoint: bytes) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    path = fetch(spec)
    stat = path.stat()
    with path.open("r+b") as file:  # same inode, same size
        file.write(tampered(checkpoint))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    assert fetch(spec).read_bytes() == checkpoint
    assert len(server.requests) == 2


@pytest.mark.parametrize("damage", [b"", b"{not json", b"[1, 2]", b'{"digest": "sha256:00"}'])
def test_a_missing_or_damaged_record_means_hash_again(
    server: FileServer, checkpoint: bytes, hash_calls: list[Path], damage: bytes
) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    path = fetch(spec)
    record = verified_record_path(spec)
    good = json.loads(record.read_bytes())
    if damage:
        record.write_bytes(damage)
    else:
        record.unlink()
    hash_calls.clear()

    assert fetch(spec) == path

    assert hash_calls == [path]
    assert json.loads(record.read_bytes()) == good
    assert len(server.requests) == 1


def test_the_record_names_the_digest_and_the_file_state(server: FileServer, checkpoint: bytes) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    path = fetch(spec)
    stat = path.stat()

    record = json.loads(verified_record_path(spec).read_bytes())

    assert record == {
        "path": str(path), "digest": spec.digest, "size": len(checkpoint), "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns, "inode": stat.st_ino, "device": stat.st_dev,
    }
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_a_record_for_another_digest_does_not_count(server: FileServer, checkpoint: bytes) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    fetch(spec)
    other = tampered(checkpoint)
    server.files["/tiny.pth"] = other
    newer = make_spec(server.url("/tiny.pth"), content=other)  # the registry now pins another file

    assert fetch(newer).read_bytes() == other
    assert len(server.requests) == 2


def test_an_unwritable_record_only_costs_a_hash_per_use(
    server: FileServer, checkpoint: bytes, hash_calls: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)
    path = fetch(spec)
    verified_record_path(spec).unlink()
    monkeypatch.setattr(hub, "verified_record_path", lambda spec: path / "under-a-file.verified")
    hash_calls.clear()

    assert fetch(spec) == path and fetch(spec) == path

    assert hash_calls == [path, path]


# --------------------------------------------------------------------------------------------
# Downloads: lock files, and each failure told once


def test_no_lock_file_is_left_after_a_download(server: FileServer, checkpoint: bytes) -> None:
    server.files["/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/tiny.pth"), content=checkpoint)

    path = fetch(spec)

    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.pth", "tiny.pth.verified"]


def test_no_lock_file_is_left_after_a_failed_download(server: FileServer, checkpoint: bytes) -> None:
    spec = make_spec(server.url("/gone.pth"), content=checkpoint)

    with pytest.raises(ImganError):
        fetch(spec)

    assert list(cached_path(spec).parent.iterdir()) == []


class _Signal(logging.Handler):
    """Sets an event when a log message containing ``text`` is emitted."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.INFO)
        self.text, self.seen = text, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


def test_a_waiter_whose_lock_file_was_removed_locks_the_new_one(tmp_path: Path) -> None:
    lock_path = tmp_path / "w.pth.lock"
    holder = filelock.FileLock(str(lock_path))
    holder.acquire()
    waiting = _Signal("waiting for another process")
    level = hub.logger.level
    hub.logger.setLevel(logging.INFO)
    hub.logger.addHandler(waiting)
    inside, leave = threading.Event(), threading.Event()

    def waiter() -> None:
        with hub._download_lock(lock_path, "w"):
            inside.set()
            leave.wait(timeout=15)

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        assert waiting.seen.wait(timeout=15)
        lock_path.unlink()  # what _download_lock does while it still holds the lock
        holder.release()
        assert inside.wait(timeout=15)
        with pytest.raises(filelock.Timeout):  # the waiter holds the file that has the name now
            filelock.FileLock(str(lock_path)).acquire(timeout=0)
    finally:
        hub.logger.removeHandler(waiting)
        hub.logger.setLevel(level)
        leave.set()
        thread.join(timeout=15)
    assert not lock_path.exists()


def test_a_failed_download_is_told_once(
    server: FileServer, checkpoint: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    spec = make_spec(server.url("/gone.pth"), content=checkpoint)

    with caplog.at_level(logging.DEBUG, logger="imgan.hub"), pytest.raises(ImganError) as caught:
        fetch(spec)

    assert "HTTP 404" in str(caught.value)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_failed_mirror_is_told_once_as_a_warning(
    server: FileServer, checkpoint: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    server.files["/mirror/tiny.pth"] = checkpoint
    spec = make_spec(server.url("/gone/tiny.pth"), server.url("/mirror/tiny.pth"), content=checkpoint)

    with caplog.at_level(logging.INFO, logger="imgan.hub"):
        fetch(spec)

    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "/gone/tiny.pth (HTTP 404" in warnings[0] and "next mirror" in warnings[0]


def test_models_download_prints_a_failure_once(
    server: FileServer, checkpoint: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgan.cli import app

    spec = make_spec(server.url("/gone.pth"), content=checkpoint)
    monkeypatch.setattr(hub, "registry", lambda path=None: {spec.name: spec})

    result = runner.invoke(app, ["models", "download", "tiny-test"])

    assert result.exit_code == 1
    assert result.stderr.count("HTTP 404") == 1, result.stderr


# --------------------------------------------------------------------------------------------
# Safetensors: metadata and header checked before anything is built or allocated


def tiny_safetensors(path: Path, **metadata: str) -> Path:
    save_file(SRVGGNetCompact(**TINY).state_dict(), str(path), metadata=metadata)
    return path


@pytest.fixture
def no_real_build(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fails a test that builds a network anywhere but on torch's meta device; lists the builds."""
    import imgan.archs
    import imgan.models

    devices: list[str] = []
    original = imgan.archs.build_model

    def checked(arch: str, params: dict) -> torch.nn.Module:
        device = torch.get_default_device().type
        devices.append(device)
        assert device == "meta", f"built {arch} {params} on {device}"
        return original(arch, params)

    monkeypatch.setattr(imgan.archs, "build_model", checked)
    monkeypatch.setattr(imgan.models, "build_model", checked)
    return devices


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"params": "{not json"}, r"metadata params is not a JSON object"),
        ({"params": "[3, 3, 8]"}, r"metadata params is not a JSON object"),
        ({"params": '"num_features"'}, r"metadata params is not a JSON object"),
        ({"params": "[" * 100_000}, r"metadata params is not a JSON object"),
        ({"params": json.dumps({**TINY, "num_features": [8]})}, r"params 'num_features' is not a number"),
        ({"params": json.dumps({**TINY, "num_features": None})}, r"params 'num_features' is not a number"),
        ({"params": json.dumps({**TINY, "num_features": 10**12})}, r"'num_features' is 10+, outside 0 to 4096"),
        ({"params": json.dumps({**TINY, "num_conv": -1})}, r"'num_conv' is -1, outside 0 to 1000"),
        ({"params": '{"num_features": 1e400}'}, r"params 'num_features' is not a number"),
        ({"params": json.dumps(TINY), "value_range": "[0, 1, 2]"}, r"value_range '\[0, 1, 2\]' is not two numbers"),
        ({"params": json.dumps(TINY), "value_range": "[1, 0]"}, r"value_range .* is not two numbers"),
        ({"params": json.dumps(TINY), "value_range": "[0, NaN]"}, r"value_range .* is not two numbers"),
        ({"params": json.dumps(TINY), "scale": "1e9"}, r"scale '1e9' is not a whole number from 1 to 16"),
        ({"params": json.dumps(TINY), "scale": "64"}, r"scale '64' is not a whole number"),
        ({"arch": "../../os"}, r"arch '../../os' is not an architecture name"),
        ({"arch": "transformer"}, r"names architecture 'transformer', which imgan does not know"),
        ({"params": json.dumps({**TINY, "colour": "red"})}, r"unknown parameter\(s\) colour"),
    ],
    ids=["invalid-json", "list", "string", "deeply-nested", "list-value", "null-value", "huge", "negative",
         "infinite", "range-of-three", "range-reversed", "range-nan", "scale-float", "scale-huge",
         "arch-path", "arch-unknown", "unknown-param"],
)
def test_broken_metadata_is_one_line_model_error_before_any_build(
    tmp_path: Path, metadata: dict[str, str], message: str, no_real_build: list[str]
) -> None:
    from imgan.models import load_model

    path = tiny_safetensors(tmp_path / "broken.safetensors", **{"arch": "srvgg", **metadata})

    with pytest.raises(ModelError, match=message) as caught:
        load_model(str(path), task="upscale")

    assert one_line(caught.value).startswith(f"{path}: ")


def test_params_that_build_terabytes_are_refused_without_allocating(tmp_path: Path, no_real_build: list[str]) -> None:
    """Every number is within its limit, but together they declare a 0.6 TB network."""
    from imgan.models import load_model

    huge = {**TINY, "num_features": 4096, "num_conv": 1000, "scale": 16}
    path = tiny_safetensors(tmp_path / "huge.safetensors", arch="srvgg", params=json.dumps(huge))

    with pytest.raises(ModelError) as caught:
        load_model(str(path), task="upscale")

    held = sum(tensor.numel() for tensor in SRVGGNetCompact(**TINY).state_dict().values())
    message = one_line(caught.value)
    assert f"describes a srvgg network of 151,031,567,104 weights where the file holds {held:,}" in message
    assert no_real_build == ["meta"]


def test_valid_metadata_is_returned_as_written(tmp_path: Path) -> None:
    written = {"arch": "srvgg", "params": json.dumps(TINY), "scale": "4", "value_range": "[0.0, 1.0]",
               "task": "upscale", "source": "imgan train", "step": "2"}
    path = tiny_safetensors(tmp_path / "ok.safetensors", **written)

    _, metadata = load_state_dict(path)

    assert metadata == written


def test_metadata_without_arch_is_not_imgans_and_passes(tmp_path: Path) -> None:
    path = tiny_safetensors(tmp_path / "foreign.safetensors", params="whatever a foreign tool wrote")
    assert load_state_dict(path)[1] == {"params": "whatever a foreign tool wrote"}


@pytest.mark.parametrize("metadata", [None, ["arch"], {"arch": 3}, {1: "srvgg"}])
def test_checked_metadata_needs_a_mapping_of_strings(metadata: object) -> None:
    with pytest.raises(ModelError, match="x.safetensors: metadata is not a mapping of strings to strings"):
        checked_metadata(Path("x.safetensors"), metadata)


def crafted_safetensors(path: Path, header: dict, data: bytes = b"", *, length: int | None = None) -> Path:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


@pytest.mark.parametrize(
    ("header", "length", "message"),
    [
        ({"w": {"dtype": "F32", "shape": [1000, 1000, 1000], "data_offsets": [0, 4_000_000_000]}}, None,
         "file not fully covered"),
        ({"w": {"dtype": "F32", "shape": [1000, 1000, 1000], "data_offsets": [0, 16]}}, None,
         "invalid shape, data type, or offset"),
        ({"__metadata__": {"params": {"num_features": 8}}, "w": {"dtype": "F32", "shape": [4],
                                                                  "data_offsets": [0, 16]}}, None,
         "invalid type: map, expected a string"),
        ({}, 2**60, "header too large"),
    ],
    ids=["more-bytes-than-the-file", "shape-beyond-offsets", "non-string-metadata", "huge-header"],
)
def test_a_lying_safetensors_header_is_refused_before_allocating(
    tmp_path: Path, header: dict, length: int | None, message: str
) -> None:
    path = crafted_safetensors(tmp_path / "lying.safetensors", header, b"\0" * 16, length=length)
    started = time.perf_counter()

    with pytest.raises(ModelError, match=f"cannot read .*lying.safetensors as safetensors .*{message}") as caught:
        load_state_dict(path)

    one_line(caught.value)
    assert time.perf_counter() - started < 1  # 4 GB were never read nor zeroed


# --------------------------------------------------------------------------------------------
# Pickles: zip bombs and code


def zip_bomb(path: Path, *, unpacked_mib: int) -> Path:
    """A zip in PyTorch's layout whose one data member inflates from a few KiB to ``unpacked_mib``."""
    zeros = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb/data.pkl", b"\x80\x02}q\x00.")  # an empty dict
        with archive.open("bomb/data/0", "w", force_zip64=True) as member:
            for _ in range(unpacked_mib):
                member.write(zeros)
    return path


def test_a_zip_bomb_is_refused_without_unpacking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "ZIP_SLACK_BYTES", 1 << 20)
    path = zip_bomb(tmp_path / "bomb.pth", unpacked_mib=24)

    def unpacks(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", unpacks)
    with pytest.raises(ModelError, match=r"bomb.pth is a zip archive whose members unpack to 25,16\d,\d{3} bytes"):
        load_state_dict(path)


def test_a_200_mb_zip_bomb_is_refused_with_the_default_limits(tmp_path: Path) -> None:
    path = zip_bomb(tmp_path / "bomb.pth", unpacked_mib=200)
    assert path.stat().st_size < 1 << 20

    with pytest.raises(ModelError, match="will not unpack it") as caught:
        load_state_dict(path)

    one_line(caught.value)


def test_real_torch_zips_are_within_the_zip_limits(tmp_path: Path) -> None:
    path = tmp_path / "zeros.pth"
    torch.save({"w": torch.zeros(1 << 20)}, path)  # 4 MiB of zeros: stored, not deflated
    with zipfile.ZipFile(path) as archive:
        declared = sum(member.file_size for member in archive.infolist())
    assert declared <= path.stat().st_size
    assert torch.equal(load_state_dict(path)[0]["w"], torch.zeros(1 << 20))


class Payload:
    """Stands in for any object a malicious pickle might smuggle in."""


def test_train_export_of_a_pickle_with_code_is_one_line(tmp_path: Path) -> None:
    from imgan.cli import app

    evil = tmp_path / "evil.pt"
    buffer = io.BytesIO()
    torch.save({"format": 1, "step": 1, "export": Payload()}, buffer)
    evil.write_bytes(buffer.getvalue())

    result = runner.invoke(app, ["train", "export", str(evil), "--out", str(tmp_path / "m.safetensors")])

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "\x1b" not in lines[0], result.stderr
    assert "evil.pt: cannot read the checkpoint (it contains code or unknown objects" in lines[0]
    assert "Payload), which imgan will not run" in lines[0]


def test_torch_load_problem_finds_the_reason_behind_torchs_advice() -> None:
    advice = ("Weights only load failed. This file can still be loaded, \x1b[1mdo those steps\x1b[0m. \n\t(1) ...\n"
              "\tWeightsUnpickler error: Unsupported operand 149\n\nCheck the documentation")
    assert hub.torch_load_problem(RuntimeError(advice)) == "Unsupported operand 149"
    assert hub.torch_load_problem(EOFError()) == "EOFError"

