"""Error classes that carry the operational policy: which failures are bad input (record
and move on, never retry) and which are transient (retry with backoff)."""

from __future__ import annotations


class StepfoleyError(Exception):
    """Base class; ``str(err)`` is a one-line, human-readable message."""


class MediaError(StepfoleyError):
    """Bad input: the file cannot be used. Recorded against the asset; never retried."""

    def __init__(self, message: str, *, path: str | None = None, stage: str = "ingest") -> None:
        super().__init__(" ".join(message.split()))
        self.path = path
        self.stage = stage


class TransientError(StepfoleyError):
    """Worth retrying: I/O hiccups, database connection loss, accelerator OOM."""
