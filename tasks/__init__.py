"""Pipeline stages: plain typed functions, with thin Prefect task wrappers at the bottom."""

from tasks.config import apply_offline_defaults as _offline

_offline()
