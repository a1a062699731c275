"""Read a multipart form as it streams in: files go straight into a job's folder, limits are checked on the way.

A file is written under a generated name (``upload-<n>``), never under the name the client gave,
which is kept for display only; it is refused (413) as soon as it grows past the limit, before the
rest arrives. Text fields are held in memory up to a small limit. Any refusal is an ``ApiError``
with a one-line message; the caller removes the folder.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from imgan.errors import ImganError

MAX_FIELD_BYTES = 256 * 1024
MAX_NAME_CHARS = 120


class ApiError(ImganError):
    """A request the server refuses: an HTTP status and a one-line message for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Upload:
    """One uploaded file: the form field it came in, the client's name for it, and where it was saved."""

    field: str
    filename: str
    path: Path
    size: int = 0


@dataclass
class Form:
    """A parsed form: text fields by name (each given once) and the files in the order they came."""

    fields: dict[str, str] = field(default_factory=dict)
    files: list[Upload] = field(default_factory=list)


def display_name(filename: str, *, fallback: str) -> str:
    """The client's file name as something safe to show: its last path part, no control characters."""
    name = re.split(r"[/\\]", filename)[-1]
    name = "".join(char for char in name if unicodedata.category(char)[0] != "C").strip()
    if len(name) > MAX_NAME_CHARS:
        stem, dot, suffix = name.rpartition(".")
        keep = dot and len(suffix) <= 8
        name = f"{stem[:MAX_NAME_CHARS - len(suffix) - 1]}.{suffix}" if keep else name[:MAX_NAME_CHARS]
    return name or fallback


async def read_form(
    content_type: str | None,
    stream: AsyncIterator[bytes],
    folder: Path,
    *,
    file_fields: frozenset[str],
    text_fields: frozenset[str],
    max_file_bytes: int,
    max_files: int,
) -> Form:
    """Parse a multipart/form-data body from ``stream``, saving its files into ``folder``."""
    kind, params = parse_options_header(content_type or "")
    if kind == b"application/x-www-form-urlencoded":  # a form without files (text2img)
        return await _read_fields(stream, text_fields=text_fields | file_fields)
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise ApiError(415, "send the job as multipart/form-data (a form with files)")
    reader = _FormReader(folder, file_fields=file_fields, text_fields=text_fields, max_file_bytes=max_file_bytes,
                         max_files=max_files)
    parser = MultipartParser(params[b"boundary"], reader.callbacks())
    try:
        async for chunk in stream:
            parser.write(chunk)
        parser.finalize()
    except FormParserError:
        raise ApiError(400, "the form is not valid multipart data") from None
    finally:
        reader.close()
    if not reader.ended:
        raise ApiError(400, "the upload ended before the form did; send it again")
    return reader.form


async def _read_fields(stream: AsyncIterator[bytes], *, text_fields: frozenset[str]) -> Form:
    """A URL-encoded form: text fields only, the whole body at most ``MAX_FIELD_BYTES``."""
    body = bytearray()
    async for chunk in stream:
        body += chunk
        if len(body) > MAX_FIELD_BYTES:
            raise ApiError(413, f"the form is longer than {MAX_FIELD_BYTES // 1024} KB")
    form = Form()
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise ApiError(422, "the form is not UTF-8 text") from None
    for name, value in pairs:
        if name not in text_fields:
            raise ApiError(422, f"unknown form field {name[:40]!r}; the fields are {', '.join(sorted(text_fields))}")
        if name in form.fields:
            raise ApiError(422, f"the field {name!r} is given twice")
        form.fields[name] = value
    return form


class _FormReader:
    """The parser's callbacks: collect the headers of each part, then write its data where it belongs."""

    def __init__(self, folder: Path, *, file_fields: frozenset[str], text_fields: frozenset[str],
                 max_file_bytes: int, max_files: int) -> None:
        self.folder = folder
        self.file_fields = file_fields
        self.text_fields = text_fields
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.form = Form()
        self.ended = False
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._text: bytearray | None = None
        self._text_name = ""
        self._upload: Upload | None = None
        self._no_file = False
        self._file: IO[bytes] | None = None

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _part_begin(self) -> None:
        self._disposition = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            if name not in self.file_fields:
                raise ApiError(422, f"unexpected file field {name[:40]!r}; files go in "
                               f"{' or '.join(sorted(self.file_fields))}")
            if len(self.form.files) >= self.max_files:
                raise ApiError(413, f"too many files: at most {self.max_files} per job")
            number = len(self.form.files)
            given = options[b"filename"].decode("utf-8", "replace")
            self._no_file = not given  # a file input left empty: a part with no name and no bytes
            filename = display_name(given, fallback=f"image-{number + 1}")
            self._upload = Upload(name, filename, self.folder / f"upload-{number}")
            self._file = self._upload.path.open("xb")
            self.form.files.append(self._upload)
        elif name in self.file_fields:  # the field of a file without a file: fine if empty
            self._text, self._text_name = bytearray(), name
        else:
            if name not in self.text_fields:
                raise ApiError(422, f"unknown form field {name[:40]!r}; the fields are "
                               f"{', '.join(sorted(self.text_fields | self.file_fields))}")
            if name in self.form.fields:
                raise ApiError(422, f"the field {name!r} is given twice")
            self._text, self._text_name = bytearray(), name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._upload is not None and self._file is not None:
            self._upload.size += end - start
            if self._upload.size > self.max_file_bytes:
                raise ApiError(413, f"{self._upload.filename}: larger than the upload limit of "
                               f"{_megabytes(self.max_file_bytes)}")
            self._file.write(data[start:end])
        elif self._text is not None:
            self._text += data[start:end]
            if len(self._text) > MAX_FIELD_BYTES:
                raise ApiError(413, f"the field {self._text_name!r} is longer than {MAX_FIELD_BYTES // 1024} KB")

    def _part_end(self) -> None:
        if self._upload is not None:
            self.close()
            if self._no_file and self._upload.size == 0:
                self._upload.path.unlink()
                self.form.files.remove(self._upload)
            self._upload = None
        elif self._text is not None and self._text_name in self.file_fields:
            if self._text:
                raise ApiError(422, f"{self._text_name}: send files, not text")
            self._text = None
        elif self._text is not None:
            try:
                self.form.fields[self._text_name] = self._text.decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(422, f"the field {self._text_name!r} is not UTF-8 text") from None
            self._text = None

    def _end(self) -> None:
        self.ended = True


def _megabytes(size: int) -> str:
    """A byte count as people say it: 50 MB, 1.5 MB, 900 KB, 100 bytes."""
    if size >= 2**20:
        return f"{size / 2**20:.3g} MB"
    return f"{size / 2**10:.3g} KB" if size >= 2**10 else f"{size} bytes"
