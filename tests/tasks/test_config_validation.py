"""Every entry point of the guidance settings checks the same ranges up front (issue #23):
the typed home, settings from flags / environment / flow parameters, a regenerate take,
prompt CSVs and the CLI (one line, exit 2, nothing started)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.generation.bundle_beta import declared_beta
from models.generation.guidance_settings import DEFAULT, GuidanceError, GuidanceSettings, \
    check_seed, effective_beta
from tasks import runs
from tasks.config import ConfigError, Settings, load_settings
from tasks.database import engine_for_url, open_database
from tasks.shot_prompts import PromptsFileError, read_prompts_csv
from tasks.regenerate_track import check_take

BAD = [("beta", float("nan")), ("beta", "NaN"), ("beta", 1e308), ("beta", -5), ("beta", True),
       ("alpha", float("inf")), ("alpha", -0.1), ("alpha", "x"), ("steps", 0), ("steps", 10**9),
       ("steps", 2.5), ("seed", 2**70), ("seed", -1), ("seed", "2**70"), ("mode", "cfg"),
       ("beta", [1.5])]


@pytest.mark.parametrize("field, value", BAD)
def test_the_home_refuses_out_of_range_values(field: str, value: object) -> None:
    with pytest.raises(GuidanceError) as err:
        if field == "seed":  # the seed is not a guidance setting, but its range lives there too
            check_seed(value)
        else:
            GuidanceSettings(**{field: value})
    assert err.value.field == field and str(err.value).startswith(field)
    assert "\n" not in str(err.value)


def test_the_home_normalises_and_states_the_rule() -> None:
    g = GuidanceSettings(alpha="5", beta=2, steps=10.0, order="random")
    assert (g.alpha, g.beta, g.steps) == (5.0, 2.0, 10) and type(g.steps) is int
    assert (DEFAULT.alpha, DEFAULT.beta, DEFAULT.steps, DEFAULT.mode) == (4.5, 1.5, 25, "nag")
    assert g.effective_beta(has_negatives=True) == 2.0
    assert g.effective_beta(has_negatives=False) == 0.0  # track 1: plain CFG
    assert effective_beta("independent", 1.5, True) == 0.0 == effective_beta("negative_text", 1.5, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.beta = 3.0  # type: ignore[misc]


@pytest.mark.parametrize("field, value", BAD)
def test_settings_from_overrides_and_flow_parameters_refuse(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        load_settings({field: value})
    with pytest.raises(ConfigError, match=field):  # a deployment's `settings` parameter
        runs.resolve_settings({field: value})


def test_settings_defaults_come_from_the_home_and_replace_validates() -> None:
    s = Settings()
    # β: the shipped bundle's declared one (guidance.json), the rest the guidance home's defaults
    assert s.beta is None and s.guidance == dataclasses.replace(GuidanceSettings(), beta=declared_beta(s.bundle))
    assert dataclasses.replace(s, beta="2").beta == 2.0
    with pytest.raises(ConfigError, match="beta"):
        dataclasses.replace(s, beta=float("nan"))
    with pytest.raises(ConfigError, match="overlap_s"):
        dataclasses.replace(s, window_s=1.0, overlap_s=1.0)
    with pytest.raises(ConfigError, match="unknown setting betta"):
        runs.resolve_settings({"betta": 1.0})
    # Valid JSON settings round-trip unchanged: the generation hash (and every derived seed) stays.
    assert runs.as_settings(s.to_json()).generation_hash() == s.generation_hash() == "dfb7c4aca7aedfbe"
    # the declared β 1.0 is the only change from the paper's defaults (their hash before it)
    assert dataclasses.replace(s, beta=1.5).generation_hash() == "fa81c8bc8c08317a"


@pytest.mark.parametrize("var, raw", [("STEPFOLEY_BETA", "nan"), ("STEPFOLEY_ALPHA", "inf"),
                                      ("STEPFOLEY_SEED", str(2**70)), ("STEPFOLEY_STEPS", "0"),
                                      ("STEPFOLEY_BETA", "-5")])
def test_environment_refused_naming_the_variable(var: str, raw: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(environ={var: raw})
    assert str(err.value).startswith(f"{var}={raw!r}: ")


def test_regenerate_take_is_checked_before_anything_runs() -> None:
    s = Settings()
    take = check_take(s, prompt="", seed="42", beta="0.5")
    assert (take.prompt, take.seed, take.beta, take.settings.beta) == (None, 42, 0.5, 0.5)
    assert check_take(s).settings is s
    for kw, field in [({"seed": 2**70}, "seed"), ({"beta": "NaN"}, "beta"), ({"beta": 1e308}, "beta"),
                      ({"beta": -5}, "beta"), ({"prompt": ["x"]}, "prompt"), ({"seed": 1.5}, "seed")]:
        with pytest.raises(ConfigError) as err:
            check_take(s, **kw)
        assert getattr(err.value, "field") == field


def test_one_engine_per_url(tmp_path: Path) -> None:
    s = load_settings({"data_dir": tmp_path, "db_reconnect_s": 5})
    engine = runs.engine_for(s)
    assert engine is open_database(s) is engine_for_url(s.db_url) is runs.engine_for(s.to_json())


@pytest.mark.parametrize("order", ["0", "-1", "1001", str(2**70)])
def test_prompt_csv_order_in_range(tmp_path: Path, order: str) -> None:
    p = tmp_path / "prompts.csv"
    p.write_text(f"asset,prompt,order\na.mp4,Bell rings,{order}\n")
    with pytest.raises(PromptsFileError, match=f"{p}:2: order"):
        read_prompts_csv(p)
    p.write_text("asset,prompt,order\na.mp4,Bell rings,3\n")
    assert read_prompts_csv(p)[0].order == 3


def _cli(args: list[str], tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flows", "--data-dir", str(tmp_path / "data"), *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, env, field", [
    (["--beta", "nan"], {}, "beta"),
    (["--alpha", "inf"], {}, "alpha"),
    (["--seed", str(2**70)], {}, "seed"),
    (["--beta", "-5"], {}, "beta"),
    ([], {"STEPFOLEY_BETA": "nan"}, "STEPFOLEY_BETA"),
])
def test_cli_run_refuses_up_front(tmp_path: Path, args: list[str], env: dict[str, str], field: str) -> None:
    library = tmp_path / "empty-library"
    library.mkdir()
    proc = _cli(["run", str(library), *args], tmp_path, env)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "data" / "stepfoley.db").exists()  # nothing started


@pytest.mark.parametrize("args", [["regenerate", "abc", "0", "1", "--beta", "nan"],
                                  ["regenerate", "abc", "0", "1", "--seed", str(2**70)],
                                  ["eval", "--alpha", "inf", "--out", "x"]])
def test_other_commands_refuse_the_same_ranges(tmp_path: Path, args: list[str]) -> None:
    proc = _cli(args, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len([ln for ln in proc.stderr.splitlines() if ln.strip()]) == 1


def test_settings_round_trip_through_json_with_extra() -> None:
    """A flow's settings dict (Settings.to_json, ``extra`` included) loads back unchanged."""
    from tasks.config import Settings, load_settings

    s = load_settings({"beta": 2.0, "extra": {"note": "x"}})
    again = load_settings(s.to_json())
    assert again == s and again.extra == {"note": "x"} and isinstance(again, Settings)
