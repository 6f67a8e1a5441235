"""Boxes, arrows and colours shared by the book's drawn diagrams (:mod:`.foundations`,
:mod:`.diagrams`)."""

from __future__ import annotations

from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

BLUE, LIGHT, ORANGE, GREY, GREEN = "#1f4e79", "#9dc3e6", "#f4b183", "#555555", "#a9d18e"


def box(ax, x: float, y: float, text: str, color: str, width: float = 3.2,
        height: float = 0.6, fontsize: int = 9) -> None:
    """A rounded box of ``width`` x ``height`` centred on ``(x, y)`` with ``text`` in it."""
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                boxstyle="round,pad=0.05", facecolor=color, edgecolor=GREY))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize,
            color="white" if color == BLUE else "black")


def arrow(ax, start, end, **style) -> None:
    """An arrow from ``start`` to ``end`` (``(x, y)`` pairs); ``style`` goes to matplotlib."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12,
                                 color=style.pop("color", GREY), lw=1.3, **style))
