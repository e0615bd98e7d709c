"""Experiment families: cell names and the tables built from their summaries (no training here;
tests/test_cli.py runs the families end to end in quick mode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tmtlib import course, experiments
from tmtlib.experiments import Cell, budget_table


def test_cell_names_compose_variant_budget_and_seed():
    cell = Cell("budgets", "dae", 3000, 2)
    assert (cell.variant, cell.system, cell.name) == ("en-de_dae", "en-de_dae_3000", "en-de_dae_3000_seed2")
    full = Cell("full", None, None, 0, "en", "fr", recipe="long")
    assert full.name == "en-fr_scratch_long_all_seed0"


def test_budget_table_puts_each_initialisation_on_a_row_and_each_budget_in_a_column():
    cells = [Cell("budgets", init, pairs, seed) for pairs in (1000, None) for init in (None, "dae") for seed in (0, 1)]
    cells = [c for c in cells if not (c.init == "dae" and c.pairs is None)]  # a missing cell stays empty
    rows = [{"system": "en-de_scratch_1000", "seeds": [0, 1], "bleu_mean": 12.71, "bleu_std": 0.7},
            {"system": "en-de_dae_1000", "seeds": [0, 1], "bleu_mean": 18.4, "bleu_std": 0.42,
             "gain_over_scratch": 5.69},
            {"system": "en-de_scratch_all", "seeds": [0], "bleu_mean": 20.8, "bleu_std": None}]
    assert budget_table(cells, rows).splitlines() == [
        "| initialisation | 1,000 | all |", "|---|---|---|",
        "| en-de_scratch | 12.7 ± 0.7 (2) | 20.8 (1) |",
        "| en-de_dae | 18.4 ± 0.4 (2, +5.7) |  |"]


def test_an_hour_from_the_denoising_autoencoder_trains_for_the_hour_less_its_pretraining(monkeypatch):
    monkeypatch.setattr(course, "QUICK", False)  # the full-mode recipes, without training them
    asked = {}

    def translator(init, **options):
        asked[init] = options["train"]
        return None, None, Path(init or "scratch")

    monkeypatch.setattr(course, "translator", translator)
    monkeypatch.setattr(course, "test_result", lambda folder, src, tgt: {})
    cells = experiments.full(inits=["scratch", "dae"])
    assert [cell.name for cell in cells] == ["en-de_scratch_long_all_seed0", "en-de_dae_long_all_seed0"]
    for cell in cells:
        cell.run()
    assert (asked[None].max_minutes, asked[None].max_steps) == (60, 2200)
    assert course.PRETRAINING_MINUTES + asked["dae"].max_minutes == 60
    assert asked["dae"].max_steps == round(2200 * asked["dae"].max_minutes / 60)
    with pytest.raises(ValueError, match="starts from scratch or dae"):
        experiments.full(inits=["parent_long"])
