"""The documents that show the committed results, rendered from ``data/results`` so they cannot
drift.

README.md and docs/results.md hold marked blocks::

    <!-- results:headline -->
    ...a table, rewritten from the records...
    <!-- /results -->

``python -m tmtlib.results_docs`` rewrites every block from the families' ``summary.json`` /
``summary.md`` files (which ``python -m tmtlib experiment ...`` writes from the run records);
``tests/test_results_docs.py`` fails when a committed document differs from its rendering, so a
number in a results table is always the number in the records.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from .evaluate import p_phrase
from .settings import REPO_ROOT

RESULTS = REPO_ROOT / "data" / "results"
DOCUMENTS = (REPO_ROOT / "README.md", REPO_ROOT / "docs" / "results.md")
BLOCK = re.compile(
    r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.DOTALL
)

# README's headline: (family, system, what it is, which system it is compared with)
HEADLINE = (
    ("budgets", "en-de_scratch_3000", "en→de, 3,000 pairs, 250 steps: from scratch"),
    ("budgets", "en-de_dae_3000", "… from the denoising autoencoder pretrained on captions"),
    ("budgets", "en-de_parent_dae_long_3000", "… from an en→fr parent, then denoising"),
    ("crosslingual", "en-fr_scratch_3000", "en→fr, 3,000 pairs, 250 steps: from scratch"),
    ("crosslingual", "en-fr_parent_long_3000", "… from the 60-minute en→de parent"),
    ("full", "en-de_scratch_long_all", "en→de, all 29,000 pairs, 60 CPU minutes: from scratch"),
    (
        "full",
        "en-de_dae_long_all",
        "… from the denoising autoencoder, its pretraining inside the hour",
    ),
)


def summary_rows(family: str, results: Path = RESULTS) -> dict[str, dict]:
    """The rows of a family's ``summary.json``, by system name."""
    saved = json.loads((results / family / "summary.json").read_text(encoding="utf-8"))
    return {row["system"]: row for row in saved["rows"]}


def _bleu(row: dict) -> str:
    spread = f" ± {row['bleu_std']:.1f}" if row.get("bleu_std") is not None else ""
    return f"{row['bleu_mean']:.1f}{spread}"


def _gain(row: dict) -> str:
    if "gain_over_scratch" not in row:
        return ""
    p_values = row.get("p_values", [])
    evidence = f" (p {p_phrase(max(p_values))})" if p_values else ""
    return f"{row['gain_over_scratch']:+.1f}{evidence}"


def headline_table(results: Path = RESULTS) -> str:
    """Test BLEU (test_2016_flickr, beam 5) of the course's key systems, mean ± sd over seeds."""
    lines = [
        "| system | seeds | test BLEU | gain over scratch (worst p of the seeds) |",
        "|---|---|---|---|",
    ]
    for family, system, label in HEADLINE:
        row = summary_rows(family, results)[system]
        lines.append(f"| {label} | {len(row['seeds'])} | {_bleu(row)} | {_gain(row)} |")
    return "\n".join(lines)


def family_table(family: str, results: Path = RESULTS) -> str:
    """A family's full summary table with its footnote, as ``experiment`` wrote it."""
    return (results / family / "summary.md").read_text(encoding="utf-8").strip()


def size_ablation_table(results: Path = RESULTS) -> str:
    """The size ablation: the ``sizes`` family beside the course model's ``budgets`` runs."""
    from . import experiments  # torch, only for this block

    return experiments.size_table(experiments.size_records(results))


VAE_NAMES = {  # the course's VAEs as README names them
    "vae_no_remedy": "notebook 2, no remedy",
    "vae_annealing": "notebook 2, KL annealing",
    "vae_all_remedies": "notebook 2, annealing + word dropout + free bits",
    "vae": "notebook 3, the course model's VAE",
}


def vae_table(results: Path = RESULTS) -> str:
    """README's VAE table, a row per VAE of the course (``pretraining/vae_diagnostics.json``):
    whether the decoder reads z, in numbers (docs/results.md has the whole table and its notes)."""
    runs = json.loads(
        (results / "pretraining" / "vae_diagnostics.json").read_text(encoding="utf-8")
    )
    first = next(iter(runs["runs"].values()))
    k = max(first["importance_weighted"]["nll_bound"], key=int)
    lines = [
        f"| VAE | held-out captions | -ELBO (z sampled) | IW bound on -log p(x), k = {k} "
        "| active units | I(x; z) | decoded from another caption's z |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in runs["runs"].items():
        bound, shuffled = r["importance_weighted"]["nll_bound"], r["shuffled_z"]
        lines.append(
            f"| {VAE_NAMES.get(name, name)} | {r['sentences']:,} | {r['neg_elbo']:.3f} "
            f"| {bound[k]:.3f} "
            f"| {r['active_units']} / {r['latent_dim']} | {r['mutual_information']:.2f} "
            f"| {shuffled['gap']:+.3f} ({100 * shuffled['relative_gap']:+.1f}%) |"
        )
    return "\n".join(lines) + (
        f"\n\nThe IW bound on the first {first['importance_weighted']['sentences']} captions; "
        "nats per token, I(x; z) in nats per caption. "
        "A decoder that ignores z loses nothing when given another caption's z."
    )


def renderer(name: str) -> Callable[[Path], str]:
    """The function that renders block ``name``: ``headline``, ``sizes``, ``vae`` or a family
    name."""
    if name == "headline":
        return headline_table
    if name == "sizes":
        return size_ablation_table
    if name == "vae":
        return vae_table
    return lambda results: family_table(name, results)


def render(text: str, results: Path = RESULTS) -> str:
    """``text`` with every marked block rewritten from the records."""
    return BLOCK.sub(
        lambda m: f"{m.group(1)}{renderer(m.group('name'))(results)}\n{m.group(4)}", text
    )


def main() -> None:
    """Rewrite the marked blocks of README.md and docs/results.md in place."""
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        fresh = render(text)
        if fresh != text:
            document.write_text(fresh, encoding="utf-8")
            print(f"updated {document.relative_to(REPO_ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
