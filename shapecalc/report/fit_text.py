"""``shapecalc fit``'s table: the account of one GPU with each line's rule under it, the
answers (largest context, most sequences, fewest GPUs, the formats that fit) and the
bounds on speed. Rich is imported here only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, RenderableType
from rich.table import Table
from rich.text import Text

from shapecalc.core.units import human_bytes

if TYPE_CHECKING:
    from shapecalc.analysis.fit import Answer

__all__ = ["fit_table"]


def fit_table(answer: Answer) -> RenderableType:
    return _FitTable(answer)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} tokens/s"


class _FitTable:
    def __init__(self, answer: Answer) -> None:
        self.answer = answer

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> Iterator[RenderableType]:
        a = self.answer
        fit = a.fit
        hw = fit.hardware
        account = a.account
        on = f"{fit.gpus} × {hw.title}" if fit.gpus > 1 else hw.title
        engine = f", {fit.engine.name}" if fit.engine is not None else ""
        verdict = "fits" if a.fits else "does not fit"
        yield Text(
            f"{fit.model.name} on {on} ({human_bytes(hw.memory)} each{engine}): {verdict} at "
            f"B={fit.batch}, T={fit.seq_len:,}, {fit.dtype}",
            style="table.title",
        )
        table = Table(show_edge=True)
        table.add_column("per GPU", ratio=1, overflow="fold")
        table.add_column("bytes", justify="right", no_wrap=True)
        table.add_column("", justify="right", no_wrap=True)
        for line in account.lines:
            label = Text(line.label + ("" if line.counted else " (not held at once)"))
            label.append("\n" + line.rule, style="dim")
            table.add_row(label, f"{line.bytes:,}", human_bytes(line.bytes))
        table.add_row(Text("total", style="bold"), f"{account.total:,}", human_bytes(account.total))
        table.add_row("memory", f"{account.memory:,}", human_bytes(account.memory))
        table.add_row(
            "free" if account.free >= 0 else "short by",
            f"{abs(account.free):,}",
            human_bytes(abs(account.free)),
        )
        yield table
        answers = Table(show_header=False, show_edge=True)
        answers.add_column("", no_wrap=True)
        answers.add_column("", ratio=1, overflow="fold")
        limit = fit.context
        largest = a.largest_context
        context = (
            "not one position"
            if largest is None
            else f"{largest:,}"
            + (" (the model's whole context)" if limit is not None and largest == limit else "")
        )
        answers.add_row(f"largest context at B={fit.batch}", context)
        answers.add_row(
            f"most sequences at T={fit.seq_len:,}",
            "not one" if a.most_sequences is None else f"{a.most_sequences:,}",
        )
        gpus = (
            f"none up to 64 at B={fit.batch}, T={fit.seq_len:,}"
            if a.fewest_gpus is None
            else f"{a.fewest_gpus}" + (" (tensor parallel)" if a.fewest_gpus > 1 else "")
        )
        answers.add_row("fewest GPUs", gpus)
        if a.quantizations:
            fitting = [q for q in a.quantizations if q.fits]
            text = ", ".join(
                f"{q.name} {human_bytes(q.bytes)}" + ("" if q.fits else " (no)")
                for q in a.quantizations
                if q.bytes is not None
            )
            best = (
                f"; the least quantized that fits: {fitting[-1].name}" if fitting else "; none fits"
            )
            answers.add_row("weights formats", text + best)
        if a.engine_log:
            log = a.engine_log
            answers.add_row(
                "vLLM would log",
                f"GPU KV cache size: {int(log['kv_cache_tokens']):,} tokens; Maximum "
                f"concurrency for {fit.seq_len:,} tokens per request: "
                f"{log['max_concurrency']:.2f}x ({int(log['num_blocks']):,} blocks)",
            )
        speed = a.speed
        if speed is not None:
            answers.add_row(
                "decode, at most",
                f"{_rate(speed.decode_tokens_per_s)}: {speed.rule_decode}, "
                f"{human_bytes(speed.decode_bytes)} a step",
            )
            answers.add_row(
                "prefill, at most",
                f"{_rate(speed.prefill_tokens_per_s)}: {speed.rule_prefill}"
                + ("" if speed.peak else f" (no {speed.compute_dtype} peak for this part)"),
            )
        yield answers
        if a.frontier:
            frontier = Table(title="The fit frontier")
            frontier.add_column("batch", justify="right")
            frontier.add_column("largest context", justify="right")
            for b, t in a.frontier:
                frontier.add_row(f"{b:,}", "-" if t is None else f"{t:,}")
            yield frontier
