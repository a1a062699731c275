"""Domain errors: each carries a one-line message that says what went wrong and what to do."""

from __future__ import annotations


class ImganError(Exception):
    """Base class for every error imgan reports to a user without a traceback."""


class InputError(ImganError):
    """An input image cannot be read, or an option does not fit it."""


class PixelLimitError(InputError):
    """An image has more pixels than the limit allows (--max-pixels); found from its header, before decoding."""


class OutputError(ImganError):
    """An output cannot be written (exists, would overwrite an input, disk problem)."""


class ModelError(ImganError):
    """A model name is unknown, or a checkpoint cannot be recognised or loaded."""


class DownloadError(ImganError):
    """A weight file could not be downloaded or failed its digest check."""


class OfflineError(DownloadError):
    """A weight file is needed but IMGAN_OFFLINE forbids the network."""


class UsageError(ImganError):
    """Options that do not fit together; reported with exit code 2."""


class ModelChoiceError(ModelError, UsageError):
    """The model named on the command line is unknown, for another task, or lacks what an option needs (exit 2)."""
