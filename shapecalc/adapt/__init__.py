"""Adapters trained on a frozen model: LoRA and DoRA as ``peft`` builds them
(:mod:`shapecalc.adapt.lora`)."""

from __future__ import annotations

from shapecalc.adapt.lora import Lora, LoraConfig, lora

__all__ = ["Lora", "LoraConfig", "lora"]
