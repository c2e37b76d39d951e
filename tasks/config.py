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
from typing import Any, Callable, Mapping

from models.generation.bundle_beta import resolve_beta
from models.generation.guidance_settings import DEFAULT as GUIDANCE_DEFAULT, GuidanceError, \
    GuidanceSettings, check_alpha, check_beta, check_choice, check_float, check_int, check_mode, \
    check_seed, check_steps

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
    alpha: float = GUIDANCE_DEFAULT.alpha
    # None: the β the bundle declares for its branch, else the paper's 1.5 (``nag_beta``,
    # models/generation/bundle_beta.py); a number given anywhere wins.
    beta: float | None = None
    steps: int = GUIDANCE_DEFAULT.steps
    tracks: int = 5
    seed: int = 0
    mode: str = GUIDANCE_DEFAULT.mode
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
    # A captioner directory (a bundle with captioner/, or a transformers VLM) instead of the bundle's.
    captioner: Path | None = None
    gpu_deployment: str | None = None
    # Windows whose track k is integrated as one batched ODE (models/generation/batched.py);
    # 0 = by device: 1 on the CPU (batching measured no faster there), 4 on CUDA
    # (docs/performance.md, "Batching windows on the device"). Not in generation_hash: a
    # batched track equals the unbatched one within float tolerance, seeds unchanged.
    gpu_batch: int = 0
    out_dir: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every way of building settings (load_settings, a flow's JSON, dataclasses.replace)
        # passes here, so no out-of-range value reaches a run.
        for name, value in _checked(self).items():
            object.__setattr__(self, name, value)
        try:
            nag_beta = resolve_beta(self.beta, self.bundle)
        except GuidanceError as exc:
            raise SettingError("beta", str(exc)) from None
        object.__setattr__(self, "_nag_beta", nag_beta)

    @property
    def nag_beta(self) -> float:
        """The β in effect: ``beta`` if set, else the bundle's declared one, else 1.5."""
        return self._nag_beta  # type: ignore[attr-defined, no-any-return]

    @property
    def guidance(self) -> GuidanceSettings:
        return GuidanceSettings(alpha=self.alpha, beta=self.nag_beta, steps=self.steps, mode=self.mode)

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

    @property
    def batch_size(self) -> int:
        """Windows per GPU batch: ``gpu_batch``, or the device's default when it is 0."""
        if self.gpu_batch:
            return self.gpu_batch
        return 4 if self.device.startswith("cuda") else 1

    def generation_config(self) -> dict[str, Any]:
        """The settings that determine generated audio (part of every track's natural key)."""
        return {"alpha": self.alpha, "beta": self.nag_beta, "steps": self.steps,
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
_PATHS = {"data_dir", "bundle", "prompts_csv", "out_dir", "captioner"}
# Where a worker runs decides these, not the caller that started the run.
# (``gpu_batch``: the process that forms the batches, the asset's, reads its own environment.)
WORKER_LOCAL = ("device", "gpu_deployment", "threads", "gpu_batch")


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
    names = [f.name for f in fields(Settings) if f.name != "extra"]
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}  # where a value came from, for the error message
    for name in names:
        raw = env.get(_ENV_PREFIX + name.upper())
        if raw not in (None, ""):
            values[name] = _coerce(name, raw, getattr(base, name))
            origin[name] = f"{_ENV_PREFIX}{name.upper()}={raw!r}: "
    # ``extra`` is free-form (not checked) and round-trips through ``to_json``.
    unknown = sorted(str(k) for k in (overrides or {}) if k not in names and k != "extra")
    if unknown:
        raise ConfigError(f"unknown setting {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    for key, val in (overrides or {}).items():
        if key == "extra":
            values["extra"] = dict(val or {})
        elif val is not None:
            values[key] = Path(val) if key in _PATHS and isinstance(val, (str, os.PathLike)) else val
            origin.pop(key, None)
    try:
        return replace(base, **values)
    except SettingError as exc:
        raise ConfigError(origin.get(exc.field, "") + str(exc)) from None


def settings_from_json(data: Mapping[str, Any] | None) -> Settings:
    """Settings a flow received as a parameter, with this worker's own local keys on top."""
    data = dict(data or {})
    data.pop("extra", None)
    for key in WORKER_LOCAL:
        if os.environ.get(_ENV_PREFIX + key.upper()):
            data.pop(key, None)
    return load_settings(data)


class SettingError(ConfigError):
    """One setting out of its range; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# The guidance ranges live in models.generation.guidance_settings; the others here.
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "alpha": check_alpha, "beta": lambda v: None if v is None else check_beta(v), "steps": check_steps, "seed": check_seed,
    "mode": check_mode,
    "tracks": lambda v: check_int(v, "tracks", 1, 16),
    "container": lambda v: check_choice(v, "container", ("mkv", "mp4", "mov")),
    "prompts_mode": lambda v: check_choice(v, "prompts_mode", ("replace", "extend")),
    "target_lufs": lambda v: check_float(v, "target_lufs", -70.0, 0.0),
    "window_s": lambda v: check_float(v, "window_s", 0.5, 600.0),
    "overlap_s": lambda v: check_float(v, "overlap_s", 0.0, 60.0),
    "min_shot_s": lambda v: check_float(v, "min_shot_s", 0.0, 3600.0),
    "threads": lambda v: check_int(v, "threads", 1, 1024),
    "concurrency": lambda v: check_int(v, "concurrency", 1, 64),
    "gpu_batch": lambda v: check_int(v, "gpu_batch", 0, 64),
    "claim_ttl_s": lambda v: check_float(v, "claim_ttl_s", 0.1, 7 * 86400.0),
    "db_reconnect_s": lambda v: check_float(v, "db_reconnect_s", 0.0, 86400.0),
}


def _checked(s: Settings) -> dict[str, Any]:
    """The settings' checked values, normalised to their declared types ("1.5" → 1.5)."""
    out: dict[str, Any] = {}
    for name, check in _CHECKS.items():
        try:
            out[name] = check(getattr(s, name))
        except GuidanceError as exc:
            raise SettingError(name, str(exc)) from None
    if out["overlap_s"] >= out["window_s"]:
        raise SettingError("overlap_s", f"overlap_s ({out['overlap_s']:g} s) must be shorter than "
                                        f"window_s ({out['window_s']:g} s)")
    return out


def validate(s: Settings) -> None:
    """Raise ConfigError (one line, naming the setting) unless every value is in range."""
    _checked(s)


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
