"""User-facing errors.

Every error a user can cause (a missing file, a bad checkpoint, an unwritable output) is raised as an
:class:`EnlivenError` whose message is one sentence saying what was wrong and what to do. The CLI prints
that sentence and exits with a non-zero code; library users can catch the specific subclass.
"""

from __future__ import annotations


class EnlivenError(Exception):
    """Base class of every error caused by the user's input; ``str(err)`` is the message to show."""

    exit_code: int = 2


class InputError(EnlivenError):
    """An input file or folder is missing, unreadable, empty or of an unsupported kind."""


class NoFaceError(InputError):
    """Face cropping was asked for, but no face was found."""


class FaceTooSmallError(NoFaceError):
    """A face model was given a body or a scene: its face is too small a part of the image (or too few pixels) to
    animate; ``--force`` animates it anyway."""


class CheckpointError(EnlivenError):
    """A checkpoint cannot be read, is truncated, or does not match its configuration."""


class ConfigError(EnlivenError):
    """A configuration file or value is invalid."""


class OutputError(EnlivenError):
    """The output path cannot be written."""
