"""What ``imgan serve`` was asked for, checked once: where it listens, on what device, with which limits.

Nothing here imports FastAPI or torch, so the command line can check its options before either loads.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
from dataclasses import dataclass

from imgan.errors import UsageError
from imgan.io import DEFAULT_MAX_PIXELS

DEFAULT_PORT = 7860
DEFAULT_MAX_UPLOAD_MB = 50
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class ServeSettings:
    """The options of ``imgan serve``; ``token`` None means requests need none (loopback only)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    device: str = "auto"
    precision: str = "auto"
    token: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    """Largest width * height an upload may have, checked before its pixels are decoded (0: no limit)."""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20
    """Largest uploaded file, counted while it streams in."""
    max_files: int = 64
    """Most files one job may upload (images and mask together)."""
    cached_engines: int = 3
    """Loaded models kept per device between jobs (least recently used dropped first)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def checked(settings: ServeSettings) -> ServeSettings:
    """The settings with a fresh token where the host is not loopback and none was given; UsageError if unusable."""
    if not 0 <= settings.port <= 65535:
        raise UsageError(f"--port {settings.port}: use 1 to 65535 (0: any free port)")
    if settings.max_upload_bytes <= 0:
        raise UsageError("--max-upload-mb: use a positive size")
    if settings.max_pixels < 0:
        raise UsageError(f"--max-pixels {settings.max_pixels}: use 0 (no limit) or a positive count")
    if settings.token is not None and len(settings.token) < 8:
        raise UsageError("--token: use at least 8 characters")
    if settings.token is None and not is_loopback(settings.host):
        return dataclasses.replace(settings, token=secrets.token_urlsafe(24))
    return settings


def page_url(settings: ServeSettings, port: int) -> str:
    """The address to open, with the token when one is needed."""
    host = settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    url = f"http://{host}:{port}/"
    return url if settings.token is None else f"{url}?token={settings.token}"
