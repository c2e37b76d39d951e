"""Configuration: CLI flags > environment (``STEPFOLEY_*``) > defaults.

Imports nothing heavy (no Prefect, no torch) so the CLI can resolve settings, export the
environment Prefect must see, and only then import the flows.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = PACKAGE_ROOT / "models" / "weights" / "foleyworld-tiny"


class ConfigError(ValueError):
    """A configuration problem the user must fix; the CLI prints it as one line, exit 2."""


@dataclass(frozen=True)
class Settings:
    """Everything a run depends on. ``generation_hash`` covers what changes audio output."""

    data_dir: Path = Path("stepfoley-data")
    database_url: str | None = None
    bundle: Path = DEFAULT_BUNDLE
    alpha: float = 4.5
    beta: float = 1.5
    steps: int = 25
    tracks: int = 5
    seed: int = 0
    mode: str = "nag"
    container: str = "mkv"
    target_lufs: float = -20.0
    window_s: float = 8.0
    overlap_s: float = 1.0
    min_shot_s: float = 1.0
    device: str = "cpu"
    # torch intra-op threads for CPU inference; 1 is fastest on small shared machines (two
    # threads on a busy 2-core box measured ~30× slower on the tiny network).
    threads: int = 1
    concurrency: int = 1
    claim_ttl_s: float = 300.0
    # How long a new database connection waits for a server that was reachable and went away
    # (a restart, a failover) before the error reaches the task retry policy.
    db_reconnect_s: float = 120.0
    prompts_csv: Path | None = None
    prompts_mode: str = "extend"
    gpu_deployment: str | None = None
    out_dir: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'stepfoley.db').resolve()}"

    @property
    def output_dir(self) -> Path:
        return self.out_dir if self.out_dir is not None else self.data_dir / "outputs"

    @property
    def stems_dir(self) -> Path:
        return self.data_dir / "stems"

    @property
    def work_dir(self) -> Path:
        return self.data_dir / "work"

    @property
    def prefect_home(self) -> Path:
        return self.data_dir / "prefect"

    def generation_config(self) -> dict[str, Any]:
        """The settings that determine generated audio (part of every track's natural key)."""
        return {"alpha": self.alpha, "beta": self.beta, "steps": self.steps,
                "tracks": self.tracks, "seed": self.seed, "mode": self.mode,
                "window_s": self.window_s, "overlap_s": self.overlap_s,
                "min_shot_s": self.min_shot_s, "target_lufs": self.target_lufs}

    def generation_hash(self) -> str:
        blob = json.dumps(self.generation_config(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
        out["extra"] = dict(self.extra)
        return out


_ENV_PREFIX = "STEPFOLEY_"
_PATHS = {"data_dir", "bundle", "prompts_csv", "out_dir"}
# Where a worker runs decides these, not the caller that started the run.
WORKER_LOCAL = ("device", "gpu_deployment", "threads")


def _coerce(name: str, raw: str, default: Any) -> Any:
    kind = type(default) if default is not None else str
    try:
        if name in _PATHS:
            return Path(raw)
        if kind is bool:
            return raw.lower() in {"1", "true", "yes", "on"}
        if kind in (int, float):
            return kind(raw)
    except ValueError as exc:
        raise ConfigError(f"{_ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind.__name__}") from exc
    return raw


def load_settings(overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from defaults, then the environment, then explicit overrides."""
    env = os.environ if environ is None else environ
    base = Settings()
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name == "extra":
            continue
        raw = env.get(_ENV_PREFIX + f.name.upper())
        if raw not in (None, ""):
            values[f.name] = _coerce(f.name, raw, getattr(base, f.name))
    for key, val in (overrides or {}).items():
        if val is not None:
            values[key] = Path(val) if key in _PATHS else val
    settings = replace(base, **values)
    validate(settings)
    return settings


def settings_from_json(data: Mapping[str, Any] | None) -> Settings:
    """Settings a flow received as a parameter, with this worker's own local keys on top."""
    data = dict(data or {})
    data.pop("extra", None)
    for key in WORKER_LOCAL:
        if os.environ.get(_ENV_PREFIX + key.upper()):
            data.pop(key, None)
    return load_settings(data)


def validate(s: Settings) -> None:
    if s.mode not in {"nag", "independent", "negative_text"}:
        raise ConfigError(f"mode must be nag, independent or negative_text, not {s.mode!r}")
    if s.container not in {"mkv", "mp4", "mov"}:
        raise ConfigError(f"container must be mkv, mp4 or mov, not {s.container!r}")
    if s.steps < 1 or s.tracks < 1:
        raise ConfigError("steps and tracks must be at least 1")
    if s.prompts_mode not in {"replace", "extend"}:
        raise ConfigError(f"prompts mode must be replace or extend, not {s.prompts_mode!r}")


def ensure_data_dir(s: Settings) -> None:
    """Create the data dir tree; an unwritable location is a configuration error."""
    try:
        for d in (s.data_dir, s.output_dir, s.stems_dir, s.work_dir, s.prefect_home):
            d.mkdir(parents=True, exist_ok=True)
        # Per process: two runs starting at once on one data dir must not unlink each other's.
        probe = s.data_dir / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"data dir {s.data_dir} is not writable: {exc.strerror or exc}") from exc


def export_environment(s: Settings) -> None:
    """Environment Prefect and Hugging Face read at import: local home, no telemetry, offline."""
    os.environ["STEPFOLEY_DATA_DIR"] = str(s.data_dir.resolve())
    os.environ.setdefault("PREFECT_HOME", str(s.prefect_home.resolve()))
    apply_offline_defaults()


def apply_offline_defaults() -> None:
    for key, val in {
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }.items():
        os.environ.setdefault(key, val)
