"""Errors that newsrec raises on purpose.

The CLI prints them as one clean line and the app shows them as `gr.Error`; anything else is a bug.
"""

from __future__ import annotations


class NewsrecError(Exception):
    """Base class: a problem the user can fix, described in words they can act on."""


class InputError(NewsrecError, ValueError):
    """Bad input: a malformed file, an unknown user or corpus, an empty or oversized query."""


class ModelUnavailableError(NewsrecError, RuntimeError):
    """A configured model cannot run here (no GPU, no checkpoint, a missing package)."""


class ServiceUnavailableError(NewsrecError, RuntimeError):
    """A server newsrec talks to (Chroma, a reranker server) is down, refuses us, or lost our data."""


class EncodingError(NewsrecError, RuntimeError):
    """An encoding worker (a process or a Ray actor) died or could not load its model; what was stored stays."""
