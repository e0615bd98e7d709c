"""Figures the notebooks show: learning curves, VAE terms, length histograms, attention, BLEU curves.

Each function draws on a given matplotlib ``Axes`` (or makes one) and returns it, so a notebook can
compose several into one figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from .decode import Alignment
from .train import History


def _axes(ax: Axes | None, size: tuple[float, float] = (6, 3.5)) -> Axes:
    return ax if ax is not None else plt.subplots(figsize=size, constrained_layout=True)[1]


def learning_curves(histories: Mapping[str, History], key: str = "nll", evals: bool = False,
                    ax: Axes | None = None, title: str | None = None, log: bool = False,
                    colors: Mapping[str, str] | None = None) -> Axes:
    """One line per run: ``key`` of the training records (or of the evaluations) against step;
    ``colors`` keeps a run's colour the same across several panels."""
    ax = _axes(ax)
    for name, history in histories.items():
        steps, values = history.column(key, evals=evals)
        ax.plot(steps, values, marker="o" if evals else None, markersize=3, label=name,
                color=(colors or {}).get(name))
    ax.set(xlabel="optimiser step", ylabel=key.replace("_", " "), title=title or key)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def vae_terms(histories: Mapping[str, History], axes: Sequence[Axes] | None = None) -> Sequence[Axes]:
    """Reconstruction NLL and KL per token over training, one colour per run: the training values
    (noisy: one batch each, z sampled, words dropped) as thin lines, the validation values (the
    held-out captions, z = mu) as points; and the KL weight beta the loss put on the KL."""
    if axes is None:
        axes = plt.subplots(1, 3, figsize=(15, 3.8), constrained_layout=True)[1]
    titles = {"nll": "reconstruction: -log p(x|z) per token", "kl": "KL(q(z|x) || p(z)) per token"}
    for ax, (key, title) in zip(axes, titles.items()):
        for number, (name, history) in enumerate(histories.items()):
            color = plt.cm.tab10(number)
            ax.plot(*history.column(key), color=color, alpha=0.45, linewidth=1, label=f"{name}, training")
            ax.plot(*history.column(f"val_{key}", evals=True), "o", color=color, label=f"{name}, validation")
        ax.set(xlabel="optimiser step", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    learning_curves(histories, "kl_weight", ax=axes[2], title="β, the weight of the KL term")
    return axes


def length_histogram(lengths: Mapping[str, Sequence[int]], ax: Axes | None = None, unit: str = "words") -> Axes:
    """Overlaid histograms of sentence lengths, one per language or tokenisation."""
    ax = _axes(ax)
    top = max(max(values) for values in lengths.values())
    bins = np.arange(0, min(top, 80) + 2) - 0.5
    for name, values in lengths.items():
        ax.hist(values, bins=bins, alpha=0.45, label=f"{name} (mean {np.mean(values):.1f})")
    ax.set(xlabel=f"sentence length ({unit})", ylabel="sentences")
    ax.legend(fontsize=8)
    return ax


def attention_heatmap(alignment: Alignment, ax: Axes | None = None) -> Axes:
    """Cross-attention of one translation: output pieces (rows) against source pieces (columns)."""
    weights = alignment.attention.detach().cpu().numpy()
    ax = _axes(ax, (0.45 * len(alignment.source_pieces) + 2, 0.35 * len(alignment.output_pieces) + 1.5))
    ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0)
    ax.set_xticks(range(len(alignment.source_pieces)), alignment.source_pieces, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(alignment.output_pieces)), alignment.output_pieces, fontsize=8)
    ax.set(xlabel="source piece", ylabel="output piece", title="cross-attention (last layer, mean of heads)")
    return ax


def score_curves(results: Mapping[str, Mapping[int, Sequence[float]]], ax: Axes | None = None,
                 metric: str = "BLEU", xlabel: str = "parallel training pairs") -> Axes:
    """Mean ± sample standard deviation (over seeds; none for one seed) of a score against a
    budget, one line per initialisation."""
    ax = _axes(ax)
    for name, by_budget in results.items():
        budgets = sorted(by_budget)
        means = [np.mean(by_budget[b]) for b in budgets]
        stds = [np.std(by_budget[b], ddof=1) if len(by_budget[b]) > 1 else 0.0 for b in budgets]
        ax.errorbar(budgets, means, yerr=stds, marker="o", capsize=3, label=name)
    ax.set(xscale="log", xlabel=xlabel, ylabel=metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def bars(values: Mapping[str, float], ax: Axes | None = None, ylabel: str = "BLEU", fmt: str = "{:.1f}") -> Axes:
    """A labelled bar per system."""
    ax = _axes(ax)
    names = list(values)
    rects = ax.bar(names, [values[n] for n in names], color=plt.cm.tab10.colors[: len(names)])
    ax.bar_label(rects, labels=[fmt.format(values[n]) for n in names], fontsize=8)
    ax.set(ylabel=ylabel)
    ax.tick_params(axis="x", labelrotation=20)
    return ax
