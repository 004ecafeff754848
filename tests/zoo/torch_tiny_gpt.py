"""The small GPT of tiny_gpt.py written by hand in PyTorch: the same names, the same
forward (positions 0..T-1, pre-norm residual blocks, a head tied to the token embedding)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Block(nn.Module):  # type: ignore[misc]
    def __init__(self, width: int, heads: int, device: Any) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, device=device)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True, device=device)
        self.ln_2 = nn.LayerNorm(width, device=device)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width, device=device),
            nn.GELU(),
            nn.Linear(4 * width, width, device=device),
        )

    def forward(self, x: Any) -> Any:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h)[0]
        return x + self.mlp(self.ln_2(x))


class TinyGPT(nn.Module):  # type: ignore[misc]
    def __init__(
        self, vocab: int, width: int, heads: int, layers: int, context: int, device: Any = "meta"
    ) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, width, device=device)
        self.wpe = nn.Embedding(context, width, device=device)
        self.h = nn.ModuleList(Block(width, heads, device) for _ in range(layers))
        self.ln_f = nn.LayerNorm(width, device=device)
        self.head = nn.Linear(width, vocab, bias=False, device=device)
        self.head.weight = self.wte.weight

    def forward(self, idx: Any) -> Any:
        positions = torch.arange(idx.shape[1], device=idx.device).unsqueeze(0)
        x = self.wte(idx) + self.wpe(positions)
        for block in self.h:
            x = block(x)
        return self.head(self.ln_f(x))
