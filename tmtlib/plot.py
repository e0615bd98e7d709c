"""Figures the notebooks show: learning curves, VAE terms, length histograms, attention, BLEU
curves.

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


# One colour per initialisation in every figure of the course and of data/results, so that "DAE"
# is the same green in notebook 5's bars, notebook 6's curves and the committed study's figures.
INIT_COLORS = {
    "scratch": "tab:gray",
    "lm": "tab:red",
    "ae": "tab:orange",
    "dae": "tab:green",
    "vae": "tab:purple",
    "parent": "tab:blue",
    "parent_long": "tab:cyan",
    "parent_dae": "tab:olive",
    "parent_dae_long": "tab:brown",
}

# What each initialisation is, in words, for legends and tick labels.
INIT_NAMES = {
    "scratch": "scratch",
    "lm": "LM",
    "ae": "AE",
    "dae": "DAE",
    "vae": "VAE",
    "parent": "250-step parent",
    "parent_long": "60-min parent",
    "parent_dae": "60-min parent + DAE 300",
    "parent_dae_long": "60-min parent + DAE 900",
}

# Axis labels, in words with units, for the keys of training and validation records.
KEY_LABELS = {
    "nll": "training NLL (nats per token)",
    "kl": "KL (nats per token)",
    "loss": "training loss (nats per token)",
    "val_nll": "validation NLL (nats per token)",
    "val_kl": "validation KL (nats per token)",
    "val_loss": "validation loss (nats per token)",
    "val_bleu": "validation BLEU (greedy)",
    "kl_weight": "β (weight of the KL term)",
}


# Models trained from scratch at other sizes than the course model's (the size ablation): shades
# of scratch's grey, lighter for smaller
SIZE_COLORS = {"tiny": "#d4d4d4", "mini": "#bcbcbc", "small": "#a4a4a4", "course": "tab:gray"}
# fine-tuning strategies of one parent, in the parent's blues: the more a strategy holds the
# parent's weights back, the lighter
STRATEGY_COLORS = {
    "full": "#08519c",
    "freeze_encoder": "#3182bd",
    "gradual": "#6baed6",
    "discriminative": "#9ecae1",
}


# the pretraining objectives in words (notebooks 1 to 3), for the same colours as their short names
INIT_WORDS = {
    "language model": "lm",
    "autoencoder": "ae",
    "denoising autoencoder": "dae",
    "variational autoencoder": "vae",
}


def init_color(name: str) -> str | None:
    """The colour of an initialisation (``"DAE"``, ``"dae"``, ``"denoising autoencoder"``,
    ``"scratch"``, ``"parent_long"`` ...); None for a name that is not one, which leaves
    matplotlib's colour cycle to choose."""
    key = name.lower()
    return INIT_COLORS.get(INIT_WORDS.get(key, key).replace(" ", "_"))


def learning_curves(
    histories: Mapping[str, History],
    key: str = "nll",
    evals: bool = False,
    ax: Axes | None = None,
    title: str | None = None,
    log: bool = False,
    colors: Mapping[str, str] | None = None,
) -> Axes:
    """One line per run: ``key`` of the training records (or of the evaluations) against step;
    ``colors`` keeps a run's colour the same across several panels (an initialisation's name, such
    as ``"DAE"``, gets its ``INIT_COLORS`` colour without it)."""
    ax = _axes(ax)
    for name, history in histories.items():
        steps, values = history.column(key, evals=evals)
        ax.plot(
            steps,
            values,
            marker="o" if evals else None,
            markersize=3,
            label=name,
            color=(colors or {}).get(name) or init_color(name),
        )
    label = KEY_LABELS.get(key, key.replace("_", " "))
    ax.set(xlabel="optimiser step", ylabel=label, title=title or label)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def vae_terms(
    histories: Mapping[str, History], axes: Sequence[Axes] | None = None
) -> Sequence[Axes]:
    """Reconstruction NLL and KL per token over training, one colour per run: the training values
    (noisy: one batch each, z sampled, words dropped) as thin lines, the validation values (the
    held-out captions, z = mu) as points; and the KL weight beta the loss put on the KL."""
    if axes is None:
        axes = plt.subplots(1, 3, figsize=(15, 3.8), constrained_layout=True)[1]
    titles = {"nll": "reconstruction: -log p(x|z) per token", "kl": "KL(q(z|x) || p(z)) per token"}
    for ax, (key, title) in zip(axes, titles.items()):
        for number, (name, history) in enumerate(histories.items()):
            color = plt.cm.tab10(number)
            ax.plot(
                *history.column(key),
                color=color,
                alpha=0.45,
                linewidth=1,
                label=f"{name}, training",
            )
            ax.plot(
                *history.column(f"val_{key}", evals=True),
                "o",
                color=color,
                label=f"{name}, validation",
            )
        ax.set(xlabel="optimiser step", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    learning_curves(histories, "kl_weight", ax=axes[2], title="β, the weight of the KL term")
    for line, style in zip(axes[2].get_lines(), ("-", "--", ":", "-.")):
        line.set_linestyle(style)  # runs with the same schedule stay visible over each other
    axes[2].legend(fontsize=8)
    return axes


def length_histogram(
    lengths: Mapping[str, Sequence[int]], ax: Axes | None = None, unit: str = "words"
) -> Axes:
    """Overlaid histograms of sentence lengths, one per language or tokenisation."""
    ax = _axes(ax)
    top = max(max(values) for values in lengths.values())
    bins = np.arange(0, min(top, 80) + 2) - 0.5
    for name, values in lengths.items():
        ax.hist(values, bins=bins, alpha=0.45, label=f"{name} (mean {np.mean(values):.1f})")
    ax.set(xlabel=f"sentence length ({unit})", ylabel="sentences")
    ax.legend(fontsize=8)
    return ax


def attention_figure_size(alignment: Alignment) -> tuple[float, float]:
    """Inches (width, height) that give each source and output piece of a heatmap room for its
    label."""
    return 0.45 * len(alignment.source_pieces) + 2.8, 0.35 * len(alignment.output_pieces) + 1.5


def attention_heatmap(alignment: Alignment, ax: Axes | None = None) -> Axes:
    """Cross-attention of one translation: output pieces (rows) against source pieces (columns), on
    the fixed scale 0 to 1 with a colour bar, so that two heatmaps can be compared by colour."""
    weights = alignment.attention.detach().cpu().numpy()
    ax = _axes(ax, attention_figure_size(alignment))
    image = ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    ax.figure.colorbar(image, ax=ax, label="attention weight")
    ax.set_xticks(
        range(len(alignment.source_pieces)),
        alignment.source_pieces,
        rotation=60,
        ha="right",
        fontsize=8,
    )
    ax.set_yticks(range(len(alignment.output_pieces)), alignment.output_pieces, fontsize=8)
    ax.set(
        xlabel="source piece",
        ylabel="output piece",
        title="cross-attention (last layer, mean of heads)",
    )
    return ax


def seed_count(counts: Sequence[int]) -> str:
    """How many seeds stand behind a line's points, for its legend: "3 seeds", or "3, 3, 1
    seeds"."""
    return (
        f"{counts[0]} seed{'s' if counts[0] > 1 else ''}"
        if len(set(counts)) == 1
        else f"{', '.join(map(str, counts))} seeds"
    )


def score_curves(
    results: Mapping[str, Mapping[int, Sequence[float]]],
    ax: Axes | None = None,
    metric: str = "BLEU",
    xlabel: str = "parallel training pairs",
    names: Mapping[str, str] | None = None,
) -> Axes:
    """Mean ± sample standard deviation (over seeds; none for one seed) of a score against a budget,
    one line per initialisation in its ``INIT_COLORS`` colour, the seed count of each point in the
    legend (``names`` renames lines there), the legend beside the axes so it covers no point."""
    ax = _axes(ax)
    for name, by_budget in results.items():
        budgets = sorted(by_budget)
        means = [np.mean(by_budget[b]) for b in budgets]
        stds = [np.std(by_budget[b], ddof=1) if len(by_budget[b]) > 1 else 0.0 for b in budgets]
        label = (
            f"{(names or {}).get(name, name)} ({seed_count([len(by_budget[b]) for b in budgets])})"
        )
        ax.errorbar(
            budgets, means, yerr=stds, marker="o", capsize=3, label=label, color=init_color(name)
        )
    ax.set(xscale="log", xlabel=xlabel, ylabel=metric)
    budgets = sorted({b for by_budget in results.values() for b in by_budget})
    ax.set_xticks(budgets, [f"{b:,}" for b in budgets])
    ax.minorticks_off()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return ax


def bars(
    values: Mapping[str, float | Sequence[float]],
    ax: Axes | None = None,
    ylabel: str = "BLEU",
    fmt: str = "{:.1f}",
    colors: Mapping[str, str] | None = None,
) -> Axes:
    """A labelled bar per system, in its initialisation's colour (``colors``, else ``init_color``
    of its name, else the colour cycle). A value may be the scores of several seeds: the bar is
    their mean with a sample-standard-deviation error bar, labelled "mean ± sd (n seeds)" (a list
    of one score: "score (1 seed)"). Every
    bar is labelled, so a bar of height zero is still seen."""
    ax = _axes(ax)
    names = list(values)
    scores = [np.atleast_1d(np.asarray(values[n], dtype=float)) for n in names]
    means = [float(s.mean()) for s in scores]
    stds = [float(s.std(ddof=1)) if len(s) > 1 else 0.0 for s in scores]
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    palette = [
        (colors or {}).get(n) or init_color(n) or cycle[i % len(cycle)] for i, n in enumerate(names)
    ]
    seeded = [not np.isscalar(values[n]) for n in names]
    rects = ax.bar(names, means, color=palette, yerr=stds if any(seeded) else None, capsize=4)
    labels = [
        fmt.format(m)
        + (f" ± {fmt.format(sd)}" if len(s) > 1 else "")
        + (f"\n({seed_count([len(s)])})" if seq else "")
        for m, sd, s, seq in zip(means, stds, scores, seeded)
    ]
    ax.bar_label(rects, labels=labels, fontsize=8, padding=2)
    ax.margins(y=0.15)
    ax.set(ylabel=ylabel)
    ax.tick_params(axis="x", labelrotation=20)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    return ax


def beam_tree(nodes: Sequence[Mapping], ax: Axes | None = None) -> Axes:
    """A beam search drawn as a tree: one column per step, one box per hypothesis kept at that step.

    Each node is a mapping with ``id``, ``parent`` (an id, or None for the start), ``step``,
    ``label`` (the piece it adds), ``score`` (its summed log-probability), ``finished`` (it ended
    with EOS or at the length limit) and ``best`` (on the path of the returned translation). Edges
    join a hypothesis to the one it extends; the returned translation's path is drawn in red.
    """
    steps = max(node["step"] for node in nodes) + 1
    rows: dict[int, int] = {}
    for node in nodes:
        rows[node["id"]] = sum(
            1 for other in nodes if other["step"] == node["step"] and other["id"] < node["id"]
        )
    height = max(rows.values()) + 1
    ax = _axes(ax, (1.45 * steps + 1, 0.55 * height + 1.2))
    place = {node["id"]: (node["step"], -rows[node["id"]]) for node in nodes}
    for node in nodes:
        if node["parent"] is not None:
            (x0, y0), (x1, y1) = place[node["parent"]], place[node["id"]]
            ax.plot(
                [x0, x1],
                [y0, y1],
                color="tab:red" if node["best"] else "0.75",
                linewidth=2.0 if node["best"] else 0.8,
                zorder=1,
            )
    for node in nodes:
        x, y = place[node["id"]]
        style = dict(
            boxstyle="round,pad=0.25",
            facecolor="mistyrose" if node["best"] else "white",
            edgecolor="tab:red" if node["best"] else ("tab:green" if node["finished"] else "0.5"),
            linestyle="--" if node["finished"] and not node["best"] else "-",
        )
        text = node["label"] if node["parent"] is None else f"{node['label']}\n{node['score']:.2f}"
        ax.text(x, y, text, ha="center", va="center", fontsize=7, bbox=style, zorder=2)
    ax.set(
        xlim=(-0.6, steps - 0.4),
        ylim=(-height + 0.4, 0.6),
        xlabel="step (pieces generated)",
        title="beam search: kept hypotheses with their log-probability (red: the result; green: "
        "finished)",
    )
    ax.set_xticks(range(steps))
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    return ax
