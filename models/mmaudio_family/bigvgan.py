"""BigVGAN (Lee et al., ICLR 2023) and BigVGAN-v2 as one configurable vocoder: mel [B, C, T] →
wave [B, 1, T · hop], hop = Π upsample_rates.

    x = conv_pre(mel)                                        (7-tap, C → U channels)
    for stage i (rate r_i, kernel k_i):
        x = ConvTranspose1d(x; stride r_i, kernel k_i, padding (k_i − r_i) / 2)   (channels halve)
        x = mean_j AMP_{i·K + j}(x)                          (K resblocks, kernel sizes k'_j)
    y = conv_post(Act(x))                                    (7-tap → 1 channel)
    wave = tanh(y)          (BigVGAN 16 kHz, conv_post with bias)
         = clamp(y, −1, 1)  (BigVGAN-v2 44 kHz 512x: use_tanh_at_final = use_bias_at_final = false)

AMP block (type "1"), for each dilation d of (1, 3, 5):  x ← x + c2(Act(c1_d(Act(x)))), where c1_d is
a k'-tap convolution with dilation d and c2 one with dilation 1 (both 'same' padded); type "2"
drops c2. Every activation is its own anti-aliased SnakeBeta:

    Act(x) = D(φ(U(x)))
    φ(x)   = x + sin²(α x) / (β + 1e-9),   α = e^{a}, β = e^{b}    (per channel; log-scale a, b)
    U      = ×2 up-sampling: replicate-pad 5, zero-stuff, low-pass h (×2 gain), crop to 2T
    D      = ×2 down-sampling: replicate-pad (5, 6), low-pass h, keep every second sample

h is a 12-tap Kaiser-windowed sinc: cutoff f_c = 0.25 and transition half-width 0.3 (in cycles per
sample of the ×2 rate), taps at t = −5.5 … 5.5,

    h[t] ∝ 2 f_c · sinc(2 f_c t) · kaiser_β(t),   Σ h = 1,
    β from Kaiser's rule for the attenuation A = 2.285 · (6 − 1) · π · 4 · 0.3 + 7.95 dB.

("Snake" activations, φ(x) = x + sin²(α x) / α, are supported too; the released vocoders use
SnakeBeta.) The filters are persistent buffers (``…upsample.filter``, ``…downsample.lowpass.filter``)
because the official state dicts carry them; they are recomputed identically at construction.

Weight norm: every convolution of the released checkpoints is weight-normalised, W = g · v / ‖v‖
(norm over all dims but 0, per output channel — per input channel for the transposed
convolutions, whose dim 0 is the input). Checkpoints name the pair ``weight_g`` / ``weight_v``
(``torch.nn.utils.weight_norm``, NVIDIA's files) or ``parametrizations.weight.original0`` /
``original1`` (torch's parametrisation, MMAudio's vendored modules). ``BigVGAN.from_official``
accepts either (or already-folded ``weight``) and folds the pair into a plain ``weight`` — what
the official code does with ``remove_weight_norm()`` before inference — so this module holds plain
convolutions and ``save_pretrained`` writes folded weights.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from models.mmaudio_family.state_dict import check_state_dict, read_state_dict

_DIL = [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
# The released vocoders (architecture fields of bigvgan_vocoder.yml and of
# nvidia/bigvgan_v2_44khz_128band_512x config.json).
PRESETS: dict[str, dict[str, Any]] = {
    "16k": dict(num_mels=80, upsample_rates=[4, 4, 2, 2, 2, 2], upsample_kernel_sizes=[8, 8, 4, 4, 4, 4],
                upsample_initial_channel=1536, resblock="1", resblock_kernel_sizes=[3, 7, 11],
                resblock_dilation_sizes=_DIL, activation="snakebeta", snake_logscale=True,
                use_tanh_at_final=True, use_bias_at_final=True, sampling_rate=16000),
    "44k": dict(num_mels=128, upsample_rates=[8, 4, 2, 2, 2, 2], upsample_kernel_sizes=[16, 8, 4, 4, 4, 4],
                upsample_initial_channel=1536, resblock="1", resblock_kernel_sizes=[3, 7, 11],
                resblock_dilation_sizes=_DIL, activation="snakebeta", snake_logscale=True,
                use_tanh_at_final=False, use_bias_at_final=False, sampling_rate=44100),
}

_CONFIG_FIELDS = ("num_mels", "upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel", "resblock",
                  "resblock_kernel_sizes", "resblock_dilation_sizes", "activation", "snake_logscale",
                  "use_tanh_at_final", "use_bias_at_final", "sampling_rate")


def config_from_official(h: Mapping[str, Any], v2: bool) -> dict[str, Any]:
    """Our constructor arguments from an official hyper-parameter dict (``bigvgan_vocoder.yml``
    for v1, ``config.json`` for v2); training-only fields are dropped. BigVGAN v1 always ends in
    tanh with a biased conv_post; v2 reads both flags, defaulting to the same."""
    cfg = {k: h[k] for k in _CONFIG_FIELDS if k in h}
    if not v2:
        cfg["use_tanh_at_final"] = cfg["use_bias_at_final"] = True
    cfg.setdefault("use_tanh_at_final", True)
    cfg.setdefault("use_bias_at_final", True)
    cfg["resblock"] = str(cfg.get("resblock", "1"))
    return cfg


def kaiser_sinc_lowpass(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass ``[1, 1, kernel_size]`` with unit DC gain (module doc), on the
    current default device (a fresh copy: each activation owns its buffer)."""
    return _kaiser_sinc_cpu(float(cutoff), float(half_width), int(kernel_size)).to(torch.get_default_device(), copy=True)


@functools.lru_cache(maxsize=None)
def _kaiser_sinc_cpu(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    # Computed once on the CPU: a real-size vocoder has ~220 identical filters, and building the
    # window on the meta device (shape-only construction) goes through slow decompositions.
    with torch.device("cpu"):
        return _kaiser_sinc(cutoff, half_width, kernel_size)


def _kaiser_sinc(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    half = kernel_size // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, periodic=False, beta=beta)
    if kernel_size % 2 == 0:
        t = torch.arange(-half, half) + 0.5
    else:
        t = torch.arange(kernel_size) - half
    h = 2 * cutoff * window * torch.sinc(2 * cutoff * t)
    return (h / h.sum()).view(1, 1, kernel_size)


class UpSample(nn.Module):
    def __init__(self, ratio: int = 2, kernel_size: int = 12) -> None:
        super().__init__()
        self.ratio = ratio
        self.pad = kernel_size // ratio - 1
        self.crop_left = self.pad * ratio + (kernel_size - ratio) // 2
        self.crop_right = self.pad * ratio + (kernel_size - ratio + 1) // 2
        self.register_buffer("filter", kaiser_sinc_lowpass(0.5 / ratio, 0.6 / ratio, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        # Zero-stuffing loses a factor `ratio` of energy; the low-pass restores it.
        x = self.ratio * F.conv_transpose1d(x, self.filter.expand(c, -1, -1), stride=self.ratio, groups=c)
        return x[..., self.crop_left: x.shape[-1] - self.crop_right]


class LowPass(nn.Module):
    def __init__(self, ratio: int = 2, kernel_size: int = 12) -> None:
        super().__init__()
        self.stride = ratio
        self.pad_left = kernel_size // 2 - int(kernel_size % 2 == 0)
        self.pad_right = kernel_size // 2
        self.register_buffer("filter", kaiser_sinc_lowpass(0.5 / ratio, 0.6 / ratio, kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.expand(c, -1, -1), stride=self.stride, groups=c)


class DownSample(nn.Module):
    def __init__(self, ratio: int = 2, kernel_size: int = 12) -> None:
        super().__init__()
        self.lowpass = LowPass(ratio, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class Snake(nn.Module):
    """φ(x) = x + sin²(αx) / β with β = α (Snake) or a separate β (SnakeBeta), optionally log-scale."""

    def __init__(self, channels: int, beta: bool, logscale: bool) -> None:
        super().__init__()
        self.logscale = logscale
        init = torch.zeros if logscale else torch.ones
        self.alpha = nn.Parameter(init(channels))
        self.has_beta = beta
        if beta:
            self.beta = nn.Parameter(init(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha[None, :, None]
        beta = self.beta[None, :, None] if self.has_beta else alpha
        if self.logscale:
            alpha, beta = torch.exp(alpha), torch.exp(beta)
        return x + (1.0 / (beta + 1e-9)) * torch.sin(x * alpha).pow(2)


class AntiAliasedActivation(nn.Module):
    def __init__(self, channels: int, activation: str, logscale: bool) -> None:
        super().__init__()
        if activation not in ("snake", "snakebeta"):
            raise ValueError(f"activation must be 'snake' or 'snakebeta', got {activation!r}")
        self.act = Snake(channels, beta=activation == "snakebeta", logscale=logscale)
        self.upsample = UpSample()
        self.downsample = DownSample()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


def _same_conv(channels: int, kernel_size: int, dilation: int) -> nn.Conv1d:
    return nn.Conv1d(channels, channels, kernel_size, dilation=dilation, padding=dilation * (kernel_size - 1) // 2)


class AMPBlock(nn.Module):
    """Type "1": pairs (dilated conv, plain conv) per dilation; type "2": dilated convs only."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int], kind: str, activation: str,
                 logscale: bool) -> None:
        super().__init__()
        self.kind = kind
        if kind == "1":
            self.convs1 = nn.ModuleList([_same_conv(channels, kernel_size, d) for d in dilations])
            self.convs2 = nn.ModuleList([_same_conv(channels, kernel_size, 1) for _ in dilations])
            n_act = 2 * len(dilations)
        elif kind == "2":
            self.convs = nn.ModuleList([_same_conv(channels, kernel_size, d) for d in dilations])
            n_act = len(dilations)
        else:
            raise ValueError(f"resblock must be '1' or '2', got {kind!r}")
        self.activations = nn.ModuleList([AntiAliasedActivation(channels, activation, logscale) for _ in range(n_act)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "1":
            for j, (c1, c2) in enumerate(zip(self.convs1, self.convs2)):
                x = x + c2(self.activations[2 * j + 1](c1(self.activations[2 * j](x))))
        else:
            for c, a in zip(self.convs, self.activations):
                x = x + c(a(x))
        return x


class BigVGAN(ModelMixin, ConfigMixin):
    """BigVGAN / BigVGAN-v2 generator with folded weight norm (module doc). mel [B, C, T] → [B, 1, T·hop]."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, num_mels: int = 80, upsample_rates: Sequence[int] = (4, 4, 2, 2, 2, 2),
                 upsample_kernel_sizes: Sequence[int] = (8, 8, 4, 4, 4, 4), upsample_initial_channel: int = 1536,
                 resblock: str = "1", resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
                 resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
                 activation: str = "snakebeta", snake_logscale: bool = True, use_tanh_at_final: bool = True,
                 use_bias_at_final: bool = True, sampling_rate: int | None = None) -> None:
        super().__init__()
        if len(upsample_rates) != len(upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes must have the same length")
        if len(resblock_kernel_sizes) != len(resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes must have the same length")
        ch = upsample_initial_channel
        self.num_kernels = len(resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(num_mels, ch, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for r, k in zip(upsample_rates, upsample_kernel_sizes):
            # The official layout wraps each up-sampler in a one-element list (keys `ups.i.0.*`).
            self.ups.append(nn.ModuleList([nn.ConvTranspose1d(ch, ch // 2, k, r, padding=(k - r) // 2)]))
            ch //= 2
            for rk, rd in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(AMPBlock(ch, rk, rd, str(resblock), activation, snake_logscale))
        self.activation_post = AntiAliasedActivation(ch, activation, snake_logscale)
        self.conv_post = nn.Conv1d(ch, 1, 7, padding=3, bias=use_bias_at_final)

    @property
    def hop_length(self) -> int:
        return math.prod(int(r) for r in self.config.upsample_rates)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up[0](x)
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            acc = blocks[0](x)
            for block in blocks[1:]:
                acc = acc + block(x)
            x = acc / self.num_kernels
        x = self.conv_post(self.activation_post(x))
        return torch.tanh(x) if self.config.use_tanh_at_final else x.clamp(-1.0, 1.0)

    @classmethod
    def from_official(cls, state_dict: str | Path | Mapping[str, torch.Tensor],
                      config: str | Mapping[str, Any] = "16k") -> "BigVGAN":
        """Build ``config`` (``'16k'``, ``'44k'`` or our constructor arguments; see
        ``config_from_official`` for official hyper-parameter dicts) and load an official
        generator state dict strictly (``{'generator': sd}`` files too), in either weight-norm
        naming, folding the weight norm."""
        cfg = dict(PRESETS[config]) if isinstance(config, str) else dict(config)
        sd = fold_weight_norm(read_state_dict(state_dict))
        with torch.device("meta"):
            module = cls(**cfg)
        expected = {k: v.shape for k, v in module.state_dict().items()}
        check_state_dict(f"BigVGAN(mels={cfg.get('num_mels')}, rates={list(cfg.get('upsample_rates', []))}, "
                         f"channels={cfg.get('upsample_initial_channel')})", expected, sd)
        module.load_state_dict({k: v.to(torch.float32).contiguous() for k, v in sd.items()}, strict=True, assign=True)
        return module.eval()


_WN_NAMES = ((".weight_g", ".weight_v"), (".parametrizations.weight.original0", ".parametrizations.weight.original1"))


def fold_weight_norm(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace each (g, v) weight-norm pair, under either naming, by ``weight = g · v / ‖v‖``."""
    pairs: dict[str, dict[str, str]] = {}
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        for g_suffix, v_suffix in _WN_NAMES:
            if key.endswith(g_suffix):
                pairs.setdefault(key[: -len(g_suffix)], {})["g"] = key
                break
            if key.endswith(v_suffix):
                pairs.setdefault(key[: -len(v_suffix)], {})["v"] = key
                break
        else:
            out[key] = value
    for prefix, pair in pairs.items():
        if set(pair) != {"g", "v"}:
            missing = "v (direction)" if "g" in pair else "g (magnitude)"
            raise ValueError(f"weight norm: {next(iter(pair.values()))} has no matching {missing} tensor")
        if prefix + ".weight" in out:
            raise ValueError(f"weight norm: {prefix} has both a plain weight and a (g, v) pair")
        g, v = sd[pair["g"]].to(torch.float32), sd[pair["v"]]
        v32 = v.to(torch.float32)
        norm = torch.linalg.vector_norm(v32, dim=list(range(1, v32.dim())), keepdim=True)
        out[prefix + ".weight"] = (v32 * (g / norm)).to(v.dtype)
    return out
