"""Exceptions with messages a user can act on.

Every error raised to a user names what went wrong and how to fix it, in one line. The CLI prints
``str(error)`` and exits; tracebacks are shown only with ``--debug``.
"""

from __future__ import annotations


class TivaBenchError(Exception):
    """Base class: ``str(err)`` is a complete one-line message (problem, then fix)."""

    def __init__(self, message: str, fix: str | None = None):
        self.message = message
        self.fix = fix
        super().__init__(message if not fix else f"{message} -- fix: {fix}")


class InputError(TivaBenchError):
    """A media file cannot be scored (corrupt, empty, silent where sound is needed, NaN, ...).

    ``path`` is the offending file; ``reason`` is a short machine-friendly description.
    """

    def __init__(self, path: str, reason: str, fix: str | None = None):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}", fix)


class ConfigError(TivaBenchError):
    """A configuration value or command-line option is invalid."""


class UnknownNameError(TivaBenchError, KeyError):
    """A name looked up in a registry does not exist (the message suggests close matches)."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class NothingToScoreError(TivaBenchError):
    """No clip at all could be scored (all skipped, or no matching names)."""
