"""How much each condition is worth to a bundle's networks, on held-out FoleyWorld scenes.

    .venv/bin/python benchmarks/bundle_conditioning.py [BUNDLE] [--scenes 40]

The flow-matching loss ‖u(x_t, t, ·) − (x₁ − x₀)‖² on fixed examples, noise and t ∈ {0.2, 0.5,
0.8}, with one condition replaced at a time. A condition the network uses raises the loss when
it is removed or swapped; one it ignores leaves the loss where it was.

Base network (example = one source of a test scene, 8 s, as in training): correct caption +
video; a wrong-class caption; null text; null video; both null.

Guidance branch u_ψ (the paper's recipe: target = the first 4 s of the mixture, text null,
video of the target): the base without the branch; the branch given the same scene's other
4 s (x̃, what it is trained on); the branch given another scene's audio. If x̃ is used, the
same-scene loss is clearly below both others: that is what NAG's negative velocity is made of.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.training import foleyworld as fw  # noqa: E402
from models.generation.bundle import load_bundle  # noqa: E402
from models.training.bundle_recipes import text_features  # noqa: E402
from models.training.scene_bank import build_bank, crop_window  # noqa: E402

T_VALUES = (0.2, 0.5, 0.8)


def _loss(velocity, x1: torch.Tensor, t_value: float) -> float:
    x0 = torch.randn(x1.shape, generator=torch.Generator().manual_seed(1))
    xt = (1 - t_value) * x0 + t_value * x1
    v = velocity(xt, torch.full((x1.shape[0],), t_value))
    return float(((v - (x1 - x0)) ** 2).mean())


def base_table(pipe, bank) -> dict[str, list[float]]:
    net, vf = pipe.transformer, pipe.video_features
    gen = torch.Generator().manual_seed(0)
    rows = []
    for s in range(len(bank)):
        for k, cls in enumerate(bank.classes[s]):
            other = [c for c in fw.CLASSES if c not in bank.classes[s]]
            wrong = other[int(torch.randint(len(other), (1,), generator=gen))]
            rows.append((s, k, fw.CAPTIONS[cls][0], fw.CAPTIONS[wrong][0]))
    x1 = torch.stack([bank.src_lat[s][k].float() for s, k, _, _ in rows])
    clip = vf.clip_proj(torch.stack([bank.clip[s].float() for s, _, _, _ in rows]))
    sync = torch.stack([bank.sync[s].float() for s, _, _, _ in rows])
    right = text_features(pipe.text_encoder, pipe.tokenizer, [r[2] for r in rows])
    wrong = text_features(pipe.text_encoder, pipe.tokenizer, [r[3] for r in rows])
    b = len(rows)
    null_t = net.empty_string_feat[None].expand(b, -1, -1)
    null_c, null_s = net.empty_clip_feat[None].expand_as(clip), net.empty_sync_feat[None].expand_as(sync)
    variants = {"caption + video": (clip, sync, right), "wrong caption + video": (clip, sync, wrong),
                "null text + video": (clip, sync, null_t), "caption, null video": (null_c, null_s, right),
                "both null": (null_c, null_s, null_t)}
    out = {}
    for name, (c, sy, tx) in variants.items():
        def velocity(xt, t, c=c, sy=sy, tx=tx):
            return torch.cat([net(xt[i:i + 16], c[i:i + 16], sy[i:i + 16], tx[i:i + 16], t[i:i + 16])
                              for i in range(0, xt.shape[0], 16)])
        out[name] = [_loss(velocity, x1, tv) for tv in T_VALUES]
    return out


def guidance_table(pipe, bank) -> dict[str, list[float]]:
    net, cn, codec = pipe.transformer, pipe.controlnet, pipe.codec
    half = int(math.ceil(4.0 * codec.latent_rate - 1e-6))
    n = len(bank)
    x1, same, other, clip, sync = [], [], [], [], []
    for s in range(n):
        tgt = crop_window(bank, s, 0, 4.0, codec.latent_rate)
        rest = crop_window(bank, s, 32, 4.0, codec.latent_rate)
        x1.append(bank.mix_lat[s][tgt["lat"]].float())
        same.append(bank.mix_lat[s][rest["lat"]].float()[:half])
        o = (s + 7) % n
        other.append(bank.mix_lat[o][crop_window(bank, o, 32, 4.0, codec.latent_rate)["lat"]].float()[:half])
        clip.append(tgt["clip"].float())
        sync.append(tgt["sync"].float())
    x1_t = torch.stack(x1)
    clip_f = pipe.video_features.clip_proj(torch.stack(clip))
    conds = net.preprocess_conditions(clip_f, torch.stack(sync), net.empty_string_feat[None].expand(n, -1, -1))
    variants = {"base, no branch": lambda xt, t: net.predict_flow(xt, t, conds),
                "branch, same scene's x̃": lambda xt, t: cn.predict_flow(net, xt, t, conds, torch.stack(same)),
                "branch, another scene's x̃": lambda xt, t: cn.predict_flow(net, xt, t, conds, torch.stack(other))}
    return {name: [_loss(v, x1_t, tv) for tv in T_VALUES] for name, v in variants.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("bundle", nargs="?", default=str(ROOT / "models" / "weights" / "foleyworld-tiny"))
    ap.add_argument("--scenes", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(1)
    pipe = load_bundle(args.bundle)
    bank = build_bank(list(fw.SPLITS["test"])[: args.scenes], 8.0, pipe.codec, pipe.video_features)
    with torch.no_grad():
        tables = {"base network (one source, 8 s)": base_table(pipe, bank)}
        if pipe.controlnet is not None:
            tables["guidance branch (mixture, 4 s, text null)"] = guidance_table(pipe, bank)
    for title, table in tables.items():
        print(f"\n{title}: loss at t = " + " / ".join(map(str, T_VALUES)))
        for name, losses in table.items():
            print(f"  {name:28s} " + "  ".join(f"{x:.4f}" for x in losses))


if __name__ == "__main__":
    main()
