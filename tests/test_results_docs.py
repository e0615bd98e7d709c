"""The results shown in README.md and docs/results.md are the numbers in data/results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tmtlib import experiments, results_docs

FAMILIES = ("budgets", "crosslingual", "full", "strategies")


@pytest.mark.parametrize("document", results_docs.DOCUMENTS, ids=lambda path: path.name)
def test_results_blocks_are_rendered_from_the_records(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    assert "<!-- results:" in text, f"{document.name} shows no results block"
    assert results_docs.render(text) == text, (
        f"run `python -m tmtlib.results_docs`: {document.name} has drifted"
    )


def test_a_changed_record_changes_the_rendered_headline(tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(results_docs.RESULTS, results)
    summary = results / "budgets" / "summary.json"
    saved = json.loads(summary.read_text())
    row = next(r for r in saved["rows"] if r["system"] == "en-de_dae_3000")
    row["bleu_mean"] += 1.0
    summary.write_text(json.dumps(saved))
    before, after = results_docs.headline_table(), results_docs.headline_table(results)
    assert before != after
    assert f"{row['bleu_mean']:.1f}" in after


@pytest.mark.parametrize("family", FAMILIES)
def test_each_summary_table_is_the_summary_json(family: str) -> None:
    folder = results_docs.RESULTS / family
    rows = json.loads((folder / "summary.json").read_text())["rows"]
    assert experiments.markdown_table(rows) in (folder / "summary.md").read_text(encoding="utf-8")


def test_the_best_steps_docs_results_counts_are_the_records() -> None:
    """docs/results.md counts the budgets runs whose best validation BLEU came at the last step."""
    at_step: dict[int | None, list[int]] = {}
    for cell, saved in experiments.recorded(results_docs.RESULTS / "budgets").items():
        at_step.setdefault(cell.pairs, []).append(saved["validation"]["at_step"])
    text = " ".join((results_docs.REPO_ROOT / "docs" / "results.md").read_text().split())
    assert set(at_step[10000]) == set(at_step[None]) == {250}
    words = {3: "three", 11: "eleven"}
    for pairs in (3000, 1000):
        last, runs = at_step[pairs].count(250), len(at_step[pairs])
        others = sorted(set(at_step[pairs]) - {250})
        steps = f"step {others[0]}" if len(others) == 1 else f"steps {others[0]} to {others[-1]}"
        other = words[runs - last]
        assert f"in {last} of {runs} at {pairs:,} (the other {other} at {steps}" in text


def test_readme_shows_every_measured_vae() -> None:
    """README's VAE table has a row per VAE in ``vae_diagnostics.json``, with its numbers."""
    runs = json.loads((results_docs.RESULTS / "pretraining" / "vae_diagnostics.json").read_text())
    readme = (results_docs.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert set(runs["runs"]) <= set(results_docs.VAE_NAMES)
    for name, measured in runs["runs"].items():
        row = next(
            line
            for line in readme.splitlines()
            if line.startswith(f"| {results_docs.VAE_NAMES[name]} |")
        )
        assert f"| {measured['neg_elbo']:.3f} |" in row
        assert f"| {measured['active_units']} / {measured['latent_dim']} |" in row
