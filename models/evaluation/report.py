"""Summary, gates and the written report (markdown, JSON, PNGs) of an evaluation run.

Aggregates of ``models.evaluation.evaluate`` records: every metric is a mean with a 95 % scene-bootstrap
interval; paired differences (NAG − baseline over the same scene, class and seed) get their
own interval. The gates are the issue's, checked on the bundle's evaluator (the judge the
gates name), and reported beside YAMNet's verdict for the same comparison:

* separability and leakage of NAG better than both baselines with disjoint 95 % intervals;
* NAG's fidelity not below independent CFG's interval (mean ≥ its lower bound);
* separability monotone (non-increasing) in β over the sweep.

Synchronisation (when the run has it): onset F1, median |offset| and DeSync per event-driven
class for the generated track, its ceiling and its shuffled-video floor
(``models.evaluation.sync.summarise_sync``), a table in report.md, the rows and the summary in
results.json, and the onset rasters of a few scenes (``sync_rasters.png``).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from models.evaluation.metrics import bootstrap_ci, bootstrap_statistic, frechet_distance, intervals_disjoint, is_monotone
from models.evaluation.plots import plot_beta_sweep, plot_confusion, plot_examples
from models.evaluation.sync import markdown_table as sync_markdown_table, summarise_sync
from models.evaluation.sync_plot import plot_onset_rasters

TRACK_METRICS = ("separability", "fidelity", "leakage")
LOWER_BETTER = {"separability": True, "fidelity": False, "leakage": True, "fd": True, "recall": False, "top1": False}


def _by_scene(rows: list[dict[str, Any]], value) -> list[list[float]]:
    groups: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        groups[r["scene"]].append(float(value(r)))
    return [groups[k] for k in sorted(groups)]


def summarise(res) -> dict[str, Any]:
    """Every number of the report, from an :class:`models.evaluation.evaluate.EvalResult`."""
    judges = [j for j in ("evaluator", "yamnet") if any(f"{j}_fidelity" in t for t in res.tracks[:1])]
    conds = res.config["conditions"]
    out: dict[str, Any] = {"config": res.config, "judges": judges, "conditions": {}, "paired": {},
                           "timings": res.timings}
    for c in conds:
        tr = [t for t in res.tracks if t["condition"] == c]
        mx = [m for m in res.mixes if m["condition"] == c]
        row: dict[str, Any] = {"method": tr[0]["method"] if tr else None, "beta": tr[0]["beta"] if tr else None,
                               "order": tr[0]["order"] if tr else None, "tracks": len(tr)}
        for j in judges:
            for m in TRACK_METRICS:
                row[f"{j}_{m}"] = bootstrap_ci(_by_scene(tr, lambda r: r[f"{j}_{m}"]))
            row[f"{j}_top1"] = bootstrap_ci(_by_scene(tr, lambda r: r[f"{j}_top1"] == r["class"]))
            row[f"{j}_recall"] = bootstrap_ci(_by_scene(mx, lambda r: r[f"{j}_recall"]))
            gen, real = res.embeddings.get(f"{c}/{j}"), res.embeddings.get(f"real/{j}")
            if gen is not None and real is not None and len(gen) >= 3:
                row[f"{j}_fd"] = bootstrap_statistic(len(gen), lambda idx: frechet_distance(gen[idx], real[idx]),
                                                     n=200)
        out["conditions"][c] = row
    main = _main_conditions(res.config)
    nag = main.get("nag")
    for base in ("independent", "negative_text"):
        if nag is None or base not in main:
            continue
        for j in judges:
            for m in TRACK_METRICS:
                out["paired"][f"{j}_{m}: nag − {base}"] = _paired(res.tracks, nag, main[base], f"{j}_{m}")
    out["judge_accuracy_on_real_sources"] = {
        j: {"top1": float(np.mean([a == b for a, b in pairs])), "n": len(pairs)} for j, pairs in res.judge_accuracy.items()}
    out["real_mix_recall"] = {j: float(np.mean([r[f"{j}_recall"] for r in res.real])) for j in judges}
    out["gates"] = _gates(out, main, res.config)
    out["disagreements"] = _disagreements(out, main, judges)
    if getattr(res, "sync", None):
        out["sync"] = summarise_sync(res.sync)
    return out


def _main_conditions(config: dict[str, Any]) -> dict[str, str]:
    order = config["orders"][0] if config["orders"] else "descending"
    keys = {}
    for k in config["conditions"]:
        if k == f"independent({order})":
            keys["independent"] = k
        elif k == f"negative_text({order})":
            keys["negative_text"] = k
        elif k == f"nag(β={config['beta']:g}, {order})":
            keys["nag"] = k
    return keys


def _paired(tracks: list[dict[str, Any]], a: str, b: str, metric: str) -> dict[str, float]:
    bmap = {(t["scene"], t["class"]): t[metric] for t in tracks if t["condition"] == b}
    rows = [{"scene": t["scene"], "d": t[metric] - bmap[(t["scene"], t["class"])]}
            for t in tracks if t["condition"] == a and (t["scene"], t["class"]) in bmap]
    return bootstrap_ci(_by_scene(rows, lambda r: r["d"]))


def _gates(s: dict[str, Any], main: dict[str, str], config: dict[str, Any]) -> list[dict[str, Any]]:
    gates: list[dict[str, Any]] = []
    if "evaluator" not in s["judges"] or "nag" not in main:
        return gates
    c = s["conditions"]
    nag = c[main["nag"]]
    for metric in ("separability", "leakage"):
        for base in ("independent", "negative_text"):
            if base not in main:
                continue
            other = c[main[base]][f"evaluator_{metric}"]
            ok = intervals_disjoint(nag[f"evaluator_{metric}"], other, lower_is_better=True)
            gates.append({"gate": f"{metric}: NAG better than {base} (disjoint 95 % CIs)", "passed": ok,
                          "nag": nag[f"evaluator_{metric}"], base: other})
    if "independent" in main:
        ind = c[main["independent"]]["evaluator_fidelity"]
        gates.append({"gate": "fidelity: NAG not below independent CFG's interval",
                      "passed": nag["evaluator_fidelity"]["mean"] >= ind["lo"],
                      "nag": nag["evaluator_fidelity"], "independent": ind})
    sweep = beta_sweep(s, config)
    if len(sweep) >= 3:
        seps = [r["evaluator_separability"]["mean"] for r in sweep]
        gates.append({"gate": "separability monotone (non-increasing) in β", "passed": is_monotone(seps),
                      "betas": [r["beta"] for r in sweep], "separability": seps})
    return gates


def beta_sweep(s: dict[str, Any], config: dict[str, Any]) -> list[dict[str, Any]]:
    order = config["orders"][0] if config["orders"] else "descending"
    rows = []
    for key, row in s["conditions"].items():
        if row["order"] != order or row["method"] not in ("nag", "independent"):
            continue
        if row["method"] == "independent" and 0.0 not in [float(b) for b in config["betas"]]:
            continue
        rows.append({**row, "beta": 0.0 if row["method"] == "independent" else row["beta"], "key": key})
    return sorted(rows, key=lambda r: r["beta"])


def _disagreements(s: dict[str, Any], main: dict[str, str], judges: list[str]) -> list[str]:
    if len(judges) < 2 or "nag" not in main:
        return []
    notes = []
    for base in ("independent", "negative_text"):
        for m in TRACK_METRICS:
            d = {j: s["paired"].get(f"{j}_{m}: nag − {base}") for j in judges}
            if any(v is None for v in d.values()):
                continue
            verdict = {j: _verdict(v, LOWER_BETTER[m]) for j, v in d.items()}
            if len(set(verdict.values())) > 1:
                notes.append(f"{m}, NAG vs {base}: " + "; ".join(
                    f"{j} says {verdict[j]} (Δ {d[j]['mean']:+.3g} [{d[j]['lo']:+.3g}, {d[j]['hi']:+.3g}])" for j in judges))
    return notes


def _verdict(ci: dict[str, float], lower_better: bool) -> str:
    if ci["hi"] < 0:
        return "NAG better" if lower_better else "NAG worse"
    if ci["lo"] > 0:
        return "NAG worse" if lower_better else "NAG better"
    return "no clear difference"


# ============================================================================ writing


def fmt(ci: dict[str, float] | None, scale: float = 1.0, digits: int = 2) -> str:
    if not ci or ci.get("n", 0) == 0 or not np.isfinite(ci["mean"]):
        return "–"
    return f"{ci['mean'] * scale:.{digits}f} [{ci['lo'] * scale:.{digits}f}, {ci['hi'] * scale:.{digits}f}]"


def markdown(s: dict[str, Any]) -> str:
    cfg = s["config"]
    judges = s["judges"]
    lines = [f"Bundle `{cfg['bundle']}` · held-out test seeds {cfg['seeds'][0]}:{cfg['seeds'][1]} · "
             f"{cfg['tracks'][0]}–{cfg['tracks'][1]} tracks per scene · {cfg['steps']} Euler steps · α {cfg['alpha']:g} · "
             f"NAG β {cfg['beta']:g}; 95 % scene-bootstrap intervals in brackets; tracks 2…K are scored "
             f"(track 1 is identical in every condition). Wall time {s['timings'].get('total_s', 0) / 60:.1f} min "
             f"({s['timings'].get('tracks_generated', 0)} tracks generated).", ""]
    main = _main_conditions(cfg)
    cols = ["separability ↓", "fidelity ↑", "leakage ↓", "FD ↓", "class-set recall ↑", "top-1 ↑"]
    for j in judges:
        lines += [f"### Methods — judged by {'the bundle evaluator' if j == 'evaluator' else 'YAMNet (independent)'}", "",
                  "| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for name in ("independent", "negative_text", "nag"):
            if name in main:
                lines.append(f"| {main[name]} | " + " | ".join(_cells(s["conditions"][main[name]], j)) + " |")
        lines.append("")
    lines += ["### Paired differences (NAG − baseline, same scene, class and seed)", "",
              "| comparison | mean [95 % CI] |", "|---|---|"]
    lines += [f"| {k} | {fmt(v, digits=3)} |" for k, v in s["paired"].items()]
    lines += ["", "### β sweep (NAG, main order)", "", "| β | " + " | ".join(
        f"{j} {m}" for j in judges for m in ("separability ↓", "fidelity ↑", "leakage ↓")) + " |",
        "|---" * (1 + 3 * len(judges)) + "|"]
    for r in beta_sweep(s, cfg):
        lines.append(f"| {r['beta']:g} | " + " | ".join(
            fmt(r[f"{j}_{m}"], 100 if m != "separability" else 1, 1) for j in judges
            for m in ("separability", "fidelity", "leakage")) + " |")
    orders = [(k, r) for k, r in s["conditions"].items() if r["method"] == "nag" and r["beta"] == cfg["beta"]]
    if len(orders) > 1:
        lines += ["", "### Generation order (NAG)", "", "| order | " + " | ".join(
            f"{j} {m}" for j in judges for m in ("separability ↓", "fidelity ↑", "leakage ↓")) + " |",
            "|---" * (1 + 3 * len(judges)) + "|"]
        for k, r in orders:
            lines.append(f"| {r['order']} | " + " | ".join(
                fmt(r[f"{j}_{m}"], 100 if m != "separability" else 1, 1) for j in judges
                for m in ("separability", "fidelity", "leakage")) + " |")
    lines += ["", "### Gates (bundle evaluator)", "", "| gate | result |", "|---|---|"]
    for g in s["gates"]:
        lines.append(f"| {g['gate']} | {'**passed**' if g['passed'] else '**FAILED**'} |")
    if not s["gates"]:
        lines.append("| (no NAG condition in this run) | – |")
    lines += ["", "### The judges", ""]
    for j, a in s["judge_accuracy_on_real_sources"].items():
        lines.append(f"- {j}: top-1 {100 * a['top1']:.0f} % on the real isolated sources of these scenes (n = {a['n']}); "
                     f"class-set recall on the real mixtures {100 * s['real_mix_recall'][j]:.0f} %.")
    if s["disagreements"]:
        lines += ["", "Where the judges disagree:", ""] + [f"- {d}" for d in s["disagreements"]]
    elif len(judges) > 1:
        lines += ["", "The two judges agree on the direction of every NAG-vs-baseline comparison above."]
    if s.get("sync"):
        lines += ["", "### Synchronisation (event-driven sources; onsets vs the visual event times)", "",
                  "Generated = independent CFG of the source's caption with the scene's video; ceiling = the real "
                  "isolated source audio; floor = the same prompt and seed with another scene's video. "
                  "F1 and DeSync: means with 95 % scene-bootstrap intervals; offset: median over matched onsets.", ""]
        lines += sync_markdown_table(s["sync"])
    return "\n".join(lines) + "\n"


def _cells(row: dict[str, Any], j: str) -> list[str]:
    return [fmt(row.get(f"{j}_separability"), 1, 1), fmt(row.get(f"{j}_fidelity"), 100, 1),
            fmt(row.get(f"{j}_leakage"), 100, 1), fmt(row.get(f"{j}_fd"), 1, 2),
            fmt(row.get(f"{j}_recall"), 100, 0), fmt(row.get(f"{j}_top1"), 100, 0)]


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_report(res, out_dir: str | Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """report.md, results.json (every raw number), embeddings.npz and the PNG plots; returns
    their paths and the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = summarise(res)
    raw = {"summary": s, "scenes": res.scenes, "tracks": res.tracks, "mixes": res.mixes, "real": res.real,
           "judge_accuracy": res.judge_accuracy}
    if getattr(res, "sync", None):
        raw["sync"] = res.sync
    _atomic_write(out / "results.json", json.dumps(raw, indent=1, default=float).encode())
    tmp = out / ".embeddings.tmp.npz"
    np.savez_compressed(tmp, **{k.replace("/", "__"): v for k, v in res.embeddings.items()})
    os.replace(tmp, out / "embeddings.npz")
    plots = {"beta_sweep": out / "beta_sweep.png", "confusion": out / "confusion.png",
             "examples": out / "example_spectrograms.png"}
    plot_beta_sweep(beta_sweep(s, res.config), s["judges"], plots["beta_sweep"])
    main = _main_conditions(res.config)
    plot_confusion(res.tracks, [main[m] for m in ("independent", "nag") if m in main], plots["confusion"])
    plot_examples(res.example, [main[m] for m in ("independent", "negative_text", "nag") if m in main],
                  plots["examples"])
    if getattr(res, "sync", None):
        plots["sync_rasters"] = plot_onset_rasters(res.sync, out / "sync_rasters.png")
    md = "# stepfoley evaluation\n\n" + markdown(s) + "\n" + "".join(
        f"![{k}]({p.name})\n\n" for k, p in plots.items())
    _atomic_write(out / "report.md", md.encode())
    return {"report": out / "report.md", "json": out / "results.json", **plots}, s
