"""MMAudio's mel VAE: log-mel ``[B, C, T]`` ↔ latent ``[B, E, T / 2]``, built from EDM2's
magnitude-preserving layers (Karras et al., "Analyzing and Improving the Training Dynamics of
Diffusion Models", 2024), 1-D.

Layers (D = hidden_dim, channel widths D · (1, 2, 4)):

    pixel norm      n(x)          = x / (1e-4 + ‖x‖_c / √C)      (norm over channels, per frame)
    MP-SiLU         σ(x)          = silu(x) / 0.596
    MP-sum          s(a, b)       = ((1 − t) a + t b) / √((1 − t)² + t²),  t = 0.3
    MP-conv         y             = conv1d(x, W · g, pad k // 2)          (no bias; g = 1 except below)
    res block       x ← n(x);  h = W₂ ∗ σ(W₁ ∗ σ(x));  out = s(shortcut(x), h)   (1×1 shortcut if C changes)
    attention       [q|k|v] = W_qkv x with channels interleaved as (c, 3); q, k, v pixel-normed
                    over c; out = s(x, W_o · softmax(qᵀk / √C) v)   (one head)
    down            W₂ ∗ avgpool₂(W₁ ∗ x)   (1×1 convs)       up: W ∗ nearest₂(x)   (3-tap)

Encoder: the mel standardised per band, (x − data_mean) / data_std → conv_in → per level i: two res blocks
(D·m_{i−1} → D·m_i), a ×2 down-sampling after level 0 → mid (res, attention, res) →
σ → conv_out with gain g = 1 + encoder.learnable_gain → moments [B, 2E, T/2]. Activations are
clamped to ±256 after every block (not after the resampling). Decoder mirrors it: conv_in → mid
→ levels 2, 1, 0 with three res blocks each and the ×2 up-sampling after level 1 → σ → conv_out
with g = 1 + decoder.learnable_gain, then un-normalised (x · data_std + data_mean).

Posterior: mean = moments[:, :E], log σ² = clamp(moments[:, E:], −30, 20), std = exp(log σ² / 2).

Weights. EDM2 trains with *forced weight normalisation*: the stored weight of every MP-conv is raw,
and the effective weight is, per output channel o with fan_in = C_in · k,

    W_o = w_o / ((1e-4 + ‖w_o‖ / √fan_in) · √fan_in)

The official code folds that once after loading (``remove_weight_norm``); ``MelVAE.from_official``
does the same, so THIS module's parameters (and what ``save_pretrained`` writes) are the effective
weights under the official key names, and an official checkpoint must go through
``from_official`` (loading it with ``load_state_dict`` would skip the fold). The learnable gains
stay separate parameters applied at run time, as in the official code. ``data_mean`` /
``data_std`` ([1, C, 1]) are state-dict buffers filled from the checkpoint (identity until then).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from models.mmaudio_family.state_dict import check_state_dict, read_state_dict

# Official sizes (get_my_vae('16k') / get_my_vae('44k')).
PRESETS: dict[str, dict[str, Any]] = {
    "16k": dict(data_dim=80, embed_dim=20, hidden_dim=384),
    "44k": dict(data_dim=128, embed_dim=40, hidden_dim=512),
}

_MP_SILU_GAIN = 0.596  # E[silu(x)²]^½ for x ~ N(0, 1): keeps unit magnitude
_RES_T = 0.3
_LOGVAR_RANGE = (-30.0, 20.0)


def pixel_norm(x: torch.Tensor, dim: int | Sequence[int] = 1, eps: float = 1e-4) -> torch.Tensor:
    """x / (eps + RMS over ``dim``): unit magnitude per element, norm taken in float32."""
    dims = [dim] if isinstance(dim, int) else list(dim)
    norm = torch.linalg.vector_norm(x, dim=dims, keepdim=True, dtype=torch.float32)
    count = math.prod(x.shape[d] for d in dims)
    return x / (eps + norm / math.sqrt(count)).to(x.dtype)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x) / _MP_SILU_GAIN


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float = _RES_T) -> torch.Tensor:
    return torch.lerp(a, b, t) / math.sqrt((1 - t) ** 2 + t ** 2)


def fold_forced_weight_norm(w: torch.Tensor) -> torch.Tensor:
    """Raw EDM2 weight → effective weight (module doc); computed in float32, returned in w's dtype."""
    w32 = w.to(torch.float32)
    fan_in = w32[0].numel()
    return (pixel_norm(w32, dim=list(range(1, w32.dim()))) / math.sqrt(fan_in)).to(w.dtype)


class MPConv1d(nn.Module):
    """Bias-free 1-D convolution with 'same' padding; ``weight`` is the effective (folded) weight."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size))
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(in_channels * kernel_size))

    def forward(self, x: torch.Tensor, gain: torch.Tensor | None = None) -> torch.Tensor:
        w = self.weight if gain is None else self.weight * gain
        return F.conv1d(x, w, padding=w.shape[-1] // 2)


class ResBlock(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv1 = MPConv1d(in_dim, out_dim, kernel_size)
        self.conv2 = MPConv1d(out_dim, out_dim, kernel_size)
        if in_dim != out_dim:
            self.nin_shortcut = MPConv1d(in_dim, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(x, 1)
        h = self.conv2(mp_silu(self.conv1(mp_silu(x))))
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)
        return mp_sum(x, h)


class Attention(nn.Module):
    """Single-head self-attention over time with cosine-normalised q, k, v (module doc)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.qkv = MPConv1d(channels, 3 * channels, 1)
        self.proj_out = MPConv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        # The fused projection's output channels are ordered (channel, q/k/v), not q-block first.
        qkv = pixel_norm(self.qkv(x).reshape(b, c, 3, t), 1)
        q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))  # [B, T, C]
        h = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return mp_sum(x, self.proj_out(h.transpose(1, 2)))


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = MPConv1d(channels, channels, 1)
        self.conv2 = MPConv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.avg_pool1d(self.conv1(x), kernel_size=2, stride=2))


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = MPConv1d(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest-exact"))


class _Mid(nn.Module):
    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.block_1 = ResBlock(channels, channels, kernel_size)
        self.attn_1 = Attention(channels)
        self.block_2 = ResBlock(channels, channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class _Level(nn.Module):
    def __init__(self, blocks: list[ResBlock], resample: nn.Module | None, resample_name: str) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        if resample is not None:
            setattr(self, resample_name, resample)


class Encoder(nn.Module):
    def __init__(self, in_dim: int, embed_dim: int, dim: int, ch_mult: Sequence[int], num_res_blocks: int,
                 down_layers: Sequence[int], kernel_size: int, clip_act: float) -> None:
        super().__init__()
        self.clip_act = clip_act
        self.conv_in = MPConv1d(in_dim, dim, kernel_size)
        self.down = nn.ModuleList()
        ch = dim
        for i, m in enumerate(ch_mult):
            blocks = []
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(ch, dim * m, kernel_size))
                ch = dim * m
            self.down.append(_Level(blocks, Downsample(ch) if i in down_layers else None, "downsample"))
        self.mid = _Mid(ch, kernel_size)
        self.conv_out = MPConv1d(ch, 2 * embed_dim, kernel_size)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for block in level.block:
                h = block(h).clamp(-self.clip_act, self.clip_act)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid(h).clamp(-self.clip_act, self.clip_act)
        return self.conv_out(mp_silu(h), gain=self.learnable_gain + 1)


class Decoder(nn.Module):
    def __init__(self, out_dim: int, embed_dim: int, dim: int, ch_mult: Sequence[int], num_res_blocks: int,
                 down_layers: Sequence[int], kernel_size: int, clip_act: float) -> None:
        super().__init__()
        self.clip_act = clip_act
        ch = dim * ch_mult[-1]
        self.conv_in = MPConv1d(embed_dim, ch, kernel_size)
        # The middle blocks use 3-tap convolutions whatever kernel_size says (as the official code).
        self.mid = _Mid(ch, 3)
        # The encoder down-samples after level i; the decoder up-samples after level i + 1 so the
        # time axis is restored before the same channel widths are reached.
        up_after = {i + 1 for i in down_layers}
        levels: list[_Level] = []
        for i in reversed(range(len(ch_mult))):
            blocks = []
            for _ in range(num_res_blocks + 1):
                blocks.append(ResBlock(ch, dim * ch_mult[i], 3))
                ch = dim * ch_mult[i]
            levels.insert(0, _Level(blocks, Upsample(ch) if i in up_after else None, "upsample"))
        self.up = nn.ModuleList(levels)
        self.conv_out = MPConv1d(ch, out_dim, kernel_size)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z)).clamp(-self.clip_act, self.clip_act)
        for level in reversed(self.up):
            for block in level.block:
                h = block(h).clamp(-self.clip_act, self.clip_act)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(mp_silu(h), gain=self.learnable_gain + 1)


class MelVAE(ModelMixin, ConfigMixin):
    """MMAudio's mel VAE (module doc). ``encode``: mel [B, C, T] → (mean, std) [B, E, T/2];
    ``decode``: z [B, E, T'] → mel [B, C, 2T']."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, data_dim: int = 80, embed_dim: int = 20, hidden_dim: int = 384,
                 ch_mult: Sequence[int] = (1, 2, 4), num_res_blocks: int = 2, down_layers: Sequence[int] = (0,),
                 kernel_size: int = 3, clip_act: float = 256.0) -> None:
        super().__init__()
        self.register_buffer("data_mean", torch.zeros(1, data_dim, 1))
        self.register_buffer("data_std", torch.ones(1, data_dim, 1))
        args = (embed_dim, hidden_dim, tuple(ch_mult), num_res_blocks, tuple(down_layers), kernel_size, clip_act)
        self.encoder = Encoder(data_dim, *args)
        self.decoder = Decoder(data_dim, *args)

    @property
    def downsampling(self) -> int:
        """Mel frames per latent frame."""
        return 2 ** len(self.config.down_layers)

    @property
    def embed_dim(self) -> int:
        return int(self.config.embed_dim)

    def encode_moments(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel [B, C, T] → moments [B, 2E, T/2] (mean channels first, then log-variance)."""
        return self.encoder((mel - self.data_mean) / self.data_std)

    def encode(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel [B, C, T] → posterior (mean, std), each [B, E, T/2]."""
        mean, logvar = self.encode_moments(mel).chunk(2, dim=1)
        return mean, torch.exp(0.5 * logvar.clamp(*_LOGVAR_RANGE))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent [B, E, T'] → log-mel [B, C, 2T'] (un-normalised)."""
        return self.decoder(z) * self.data_std + self.data_mean

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Deterministic round trip through the posterior mean."""
        return self.decode(self.encode(mel)[0])

    @classmethod
    def from_official(cls, state_dict: str | Path | Mapping[str, torch.Tensor],
                      config: str | Mapping[str, Any] = "16k") -> "MelVAE":
        """Build ``config`` (``'16k'``, ``'44k'`` or constructor arguments) and load an official
        raw checkpoint (``v1-16.pth`` / ``v1-44.pth`` layout) strictly, folding the forced weight
        normalisation into the convolution weights."""
        cfg = dict(PRESETS[config]) if isinstance(config, str) else dict(config)
        sd = read_state_dict(state_dict)
        with torch.device("meta"):
            module = cls(**cfg)
        expected = {k: v.shape for k, v in module.state_dict().items()}
        check_state_dict(f"MelVAE({', '.join(f'{k}={v}' for k, v in cfg.items())})", expected, sd)
        conv_keys = {name + ".weight" for name, m in module.named_modules() if isinstance(m, MPConv1d)}
        sd = {k: (fold_forced_weight_norm(v) if k in conv_keys else v).to(torch.float32).contiguous()
              for k, v in sd.items()}
        module.load_state_dict(sd, strict=True, assign=True)
        return module.eval()
