"""Prefect flows (entry points) and the ``stepfoley`` CLI."""

from tasks.config import apply_offline_defaults as _offline

_offline()
