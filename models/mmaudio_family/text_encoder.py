"""MMAudio's text conditioning as one bundle component: open_clip's tokenizer and the CLIP text
tower of DFN5B ViT-H-14-384, giving the network's text stream.

    ids = ClipTokenizer(prompts)                       [N, 77]   (open_clip's SimpleTokenizer ids)
    h   = LN_final(blocks(token_embedding[ids] + positional_embedding), causal mask)
    text features  = h / ‖h‖  at ALL 77 positions      [N, 77, width]   (MMAudio's patched encode_text)
    pooled         = normalise(h[eot] @ text_projection) [N, embed_dim] (open_clip's embedding, comparable
                                                                        with the image tower's by cosine)

The tokenizer is fixed for the family (the BPE merge list is package data,
``models/mmaudio_family/data``), so it lives inside this component instead of as a separate
bundle folder; ``encode_prompts`` is what the pipeline calls. State-dict keys are open_clip's text
keys (``token_embedding.weight``, ``positional_embedding``, ``transformer.resblocks.*``,
``ln_final.*``, ``text_projection``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from models.mmaudio_family.clip import DFN5B_TEXT, OpenClip, Transformer
from models.mmaudio_family.tokenizer import default_tokenizer


class ClipTextEncoder(ModelMixin, ConfigMixin):
    """ClipTokenizer + CLIP text tower (module docstring)."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, embed_dim: int = 1024, text_cfg: Mapping[str, Any] | None = None,
                 quick_gelu: bool = True) -> None:
        super().__init__()
        t = {**DFN5B_TEXT, **dict(text_cfg or {})}
        self.token_embedding = nn.Embedding(t["vocab_size"], t["width"])
        self.positional_embedding = nn.Parameter(torch.zeros(t["context_length"], t["width"]))
        self.transformer = Transformer(t["width"], t["layers"], t["heads"], t.get("mlp_ratio", 4.0), quick_gelu)
        self.ln_final = nn.LayerNorm(t["width"])
        self.text_projection = nn.Parameter(torch.zeros(t["width"], embed_dim))
        self.context_length = int(t["context_length"])

    @classmethod
    def from_open_clip(cls, clip: OpenClip) -> "ClipTextEncoder":
        """The text half of a loaded ``OpenClip`` (tensors shared, not copied)."""
        c = clip.config
        with torch.device("meta"):
            model = cls(embed_dim=c.embed_dim, text_cfg=dict(c.text_cfg or {}), quick_gelu=c.quick_gelu)
        own = set(model.state_dict())
        model.load_state_dict({k: v for k, v in clip.state_dict().items() if k in own}, strict=True, assign=True)
        return model.eval()

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return default_tokenizer()(list(texts), context_length=self.context_length)

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        dev = self.token_embedding.weight.device
        x = self.token_embedding(tokens.to(dev)) + self.positional_embedding[:n]
        mask = torch.full((n, n), float("-inf"), device=dev, dtype=x.dtype).triu_(1)
        return self.ln_final(self.transformer(x, mask))

    @torch.no_grad()
    def encode_prompts(self, texts: Sequence[str]) -> torch.Tensor:
        """Prompts → the network's text features ``[N, 77, width]`` (every position, normalised)."""
        return F.normalize(self.hidden(self.tokenize(texts)), dim=-1)

    @torch.no_grad()
    def encode_pooled(self, texts: Sequence[str]) -> torch.Tensor:
        """Prompts → open_clip's text embedding ``[N, embed_dim]`` (L2-normalised)."""
        tokens = self.tokenize(texts)
        h = self.hidden(tokens)
        eot = tokens.to(h.device).argmax(dim=-1)
        return F.normalize(h[torch.arange(h.shape[0], device=h.device), eot] @ self.text_projection, dim=-1)
