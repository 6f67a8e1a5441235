"""Diagrams drawn at build time from the run's own values: masked-LM corruption of a real
text (chapter 4), the LoRA update and prompt/prefix tuning (chapter 10), distillation
(chapter 14) and the serving path (chapter 15).  Every function returns a matplotlib Figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import Patch, Rectangle

from llmbook.plots.shapes import BLUE, GREEN, GREY, LIGHT, ORANGE, arrow, box


def plot_masking(original: Sequence[str], corrupted: Sequence[str], selected: Sequence[bool],
                 mask_token: str = "[MASK]"):
    """One text as the masked-LM sees it (bottom row) and, at the selected positions, the
    token it must recover (top row): replaced by ``mask_token``, by a random token, or kept."""
    if not len(original) == len(corrupted) == len(selected):
        raise ValueError("original, corrupted and selected need one entry per token")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.95 * len(original)), 2.6))
    colours = {"masked": ORANGE, "random": GREEN, "kept": LIGHT}
    counts = dict.fromkeys(colours, 0)
    for i, (target, seen, chosen) in enumerate(zip(original, corrupted, selected, strict=True)):
        kind = "masked" if seen == mask_token else "kept" if seen == target else "random"
        counts[kind] += bool(chosen)
        box(ax, i, 0, seen, colours[kind] if chosen else "white", width=0.9, fontsize=8)
        if chosen:
            box(ax, i, 1.4, target, BLUE, width=0.9, fontsize=8)
            arrow(ax, (i, 0.35), (i, 1.05))
    ax.text(-0.6, 0, "input", ha="right", va="center", fontsize=9, color=GREY)
    ax.text(-0.6, 1.4, "predict", ha="right", va="center", fontsize=9, color=GREY)
    ax.legend(handles=[Patch(facecolor=colour, edgecolor=GREY, label=f"{kind}: {counts[kind]}")
                       for kind, colour in colours.items()],
              loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, fontsize=8, frameon=False)
    ax.set_xlim(-1.6, len(original) - 0.4)
    ax.set_ylim(-0.6, 1.9)
    ax.axis("off")
    return fig


def _matrix(ax, x: float, y: float, width: float, height: float, colour: str, label: str):
    ax.add_patch(Rectangle((x, y), width, height, facecolor=colour, edgecolor=GREY))
    ax.text(x + width / 2, y + height / 2, label, ha="center", va="center", fontsize=8,
            color="white" if colour == BLUE else "black")


def plot_lora_update(d_in: int, d_out: int, rank: int):
    """``W + B A``: the frozen ``d_out x d_in`` weight beside the two trainable factors of rank
    ``rank``, drawn to scale (a factor is at least a hairline wide), with the weight counts."""
    if min(d_in, d_out, rank) < 1:
        raise ValueError("sizes and rank must be >= 1")
    fig, ax = plt.subplots(figsize=(8, 3.6))
    unit = 2.4 / max(d_in, d_out)  # the larger side of W is 2.4 units long
    thin = max(rank * unit, 0.06)
    width, height = d_in * unit, d_out * unit
    _matrix(ax, 0, 0, width, height, BLUE, f"W (frozen)\n{d_out} x {d_in}")
    ax.text(width + 0.35, height / 2, "+", fontsize=16, ha="center", va="center")
    _matrix(ax, width + 0.7, 0, thin, height, GREEN, "")
    ax.text(width + 0.7 + thin / 2, -0.2, f"B: {d_out} x {rank}", ha="center", fontsize=8)
    _matrix(ax, width + 0.9 + thin, height - thin, width, thin, GREEN, "")
    ax.text(width + 0.9 + thin + width / 2, height + 0.12, f"A: {rank} x {d_in}",
            ha="center", fontsize=8)
    frozen, trainable = d_in * d_out, rank * (d_in + d_out)
    ax.text(0, -0.55, f"frozen: {frozen:,} weights    trainable (B, A): {trainable:,} "
            f"({100 * trainable / frozen:.1f}% of W); B starts at zero, so W + BA = W at first",
            fontsize=8, color=GREY)
    ax.set_xlim(-0.2, 2 * width + 1.2 + thin)
    ax.set_ylim(-0.8, height + 0.4)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


def plot_prompt_tuning(virtual_tokens: int, input_tokens: Sequence[str], layers: int):
    """Prompt tuning (left: trainable vectors prepended to the frozen input embeddings) and
    prefix tuning (right: trainable key/value prefixes in every one of ``layers`` layers)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    prompt = ([f"v{i + 1}" for i in range(virtual_tokens)] if virtual_tokens <= 4
              else ["v1", "v2", "...", f"v{virtual_tokens}"])
    shown = len(prompt)
    tokens = prompt + list(input_tokens)
    for i, token in enumerate(tokens):
        box(left, i, 0, token, GREEN if i < shown else LIGHT, width=0.85, fontsize=8)
        arrow(left, (i, 0.35), (i, 1.0))
    middle = (len(tokens) - 1) / 2
    box(left, middle, 1.4, f"frozen Transformer ({layers} layers)", BLUE, width=len(tokens))
    left.text(middle, -0.75, f"{virtual_tokens} trainable prompt vectors (green), "
              "frozen word embeddings (light blue)", ha="center", fontsize=8, color=GREY)
    left.set_title("prompt tuning: the input only", fontsize=10)
    drawn = min(layers, 3)
    for level in range(drawn):
        y = 1.1 * level
        box(right, 1.6, y, f"layer {level + 1}" if level < drawn - 1 or drawn == layers
            else f"... layer {layers}", BLUE, width=2.4)
        box(right, -0.4, y, "K, V prefix", GREEN, width=1.3, fontsize=8)
        arrow(right, (0.27, y), (0.38, y))
    right.text(0.6, -0.85, f"{virtual_tokens} trainable key/value vectors in each of {layers} "
               "layers", ha="center", fontsize=8, color=GREY)
    right.set_title("prefix tuning: every layer's attention", fontsize=10)
    for ax, (low, high) in ((left, (-0.8, len(tokens) - 0.2)), (right, (-1.3, 3.0))):
        ax.set_xlim(low, high)
        ax.set_ylim(-1.1, max(1.9, 1.1 * drawn))
        ax.axis("off")
    return fig


def plot_distillation(teacher_layers: int, student_layers: int, temperature: float,
                      alpha: float):
    """Knowledge distillation: the student matches the teacher's probabilities softened at
    ``temperature`` (KL, weight ``alpha``) and the gold labels where there are any (CE)."""
    fig, ax = plt.subplots(figsize=(8, 3.8))
    box(ax, 0, 1.2, "text", LIGHT, width=1.4)
    box(ax, 3, 2.2, f"teacher: {teacher_layers} layers (frozen)", BLUE)
    box(ax, 3, 0.2, f"student: {student_layers} layers", GREEN)
    box(ax, 6.6, 2.2, f"softmax(z / {temperature:g})", LIGHT, width=2.2)
    box(ax, 6.6, 0.2, f"softmax(z / {temperature:g})", LIGHT, width=2.2)
    box(ax, 9.2, 1.2, f"{alpha:g} x KL", ORANGE, width=1.6)
    box(ax, 9.2, -0.9, f"{1 - alpha:g} x CE(gold)", ORANGE, width=1.8)
    for start, end in (((0.7, 1.3), (1.4, 2.1)), ((0.7, 1.1), (1.4, 0.3)),
                       ((4.6, 2.2), (5.5, 2.2)), ((4.6, 0.2), (5.5, 0.2)),
                       ((7.7, 2.1), (8.5, 1.35)), ((7.7, 0.3), (8.5, 1.05)),
                       ((4.6, 0.0), (8.3, -0.85))):
        arrow(ax, start, end)
    ax.text(4.8, -1.45, "loss = the sum of the orange boxes; only the student's weights change",
            ha="center", fontsize=8, color=GREY)
    ax.set_xlim(-0.9, 10.3)
    ax.set_ylim(-1.7, 2.8)
    ax.axis("off")
    return fig


def plot_serving_path(max_batch: int, max_wait_ms: float, queue_texts: int):
    """A request's path through ``llmbook serve``: the connection guard, the key and rate
    checks, the bounded queue the micro-batcher drains, the model; probes on their own port."""
    fig, ax = plt.subplots(figsize=(11, 3.2))
    stages = [("client", LIGHT), ("connection guard:\ndeadlines, cap,\n431", ORANGE),
              ("API key,\nrate limit", ORANGE), (f"queue\n<= {queue_texts:,} texts", LIGHT),
              (f"micro-batch\n<= {max_batch} texts\nor {max_wait_ms:g} ms", BLUE),
              ("model\n(ONNX)", BLUE), ("JSON answer", LIGHT)]
    step = 2.1
    for i, (text, colour) in enumerate(stages):
        box(ax, step * i, 0, text, colour, width=1.7, height=1.0, fontsize=8)
        if i:
            arrow(ax, (step * i - step + 0.9, 0), (step * i - 0.9, 0))
    box(ax, step * 4, -1.5, "probe port: /healthz /readyz /metrics", GREEN, width=4.6,
        fontsize=8)
    ax.text(step * 4, -2.1, "its own thread and loop: it answers while the API port is full",
            ha="center", fontsize=8, color=GREY)
    ax.set_xlim(-1.0, step * (len(stages) - 1) + 1.0)
    ax.set_ylim(-2.4, 0.7)
    ax.axis("off")
    return fig
