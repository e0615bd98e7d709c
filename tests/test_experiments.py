"""Experiment families: cell names and the tables built from their summaries (no training here;
tests/test_cli.py runs the families end to end in quick mode)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from tmtlib import course, experiments, recipes
from tmtlib.experiments import Cell, budget_table

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_cell_names_compose_variant_budget_and_seed():
    cell = Cell("budgets", "dae", 3000, 2)
    assert (cell.variant, cell.system, cell.name) == (
        "en-de_dae",
        "en-de_dae_3000",
        "en-de_dae_3000_seed2",
    )
    full = Cell("full", None, None, 0, "en", "fr", recipe="long")
    assert full.name == "en-fr_scratch_long_all_seed0"


def test_budget_table_puts_each_initialisation_on_a_row_and_each_budget_in_a_column():
    cells = [
        Cell("budgets", init, pairs, seed)
        for pairs in (1000, None)
        for init in (None, "dae")
        for seed in (0, 1)
    ]
    # a missing cell stays empty
    cells = [c for c in cells if not (c.init == "dae" and c.pairs is None)]
    rows = [
        {"system": "en-de_scratch_1000", "seeds": [0, 1], "bleu_mean": 12.71, "bleu_std": 0.7},
        {
            "system": "en-de_dae_1000",
            "seeds": [0, 1],
            "bleu_mean": 18.4,
            "bleu_std": 0.42,
            "gain_over_scratch": 5.69,
        },
        {"system": "en-de_scratch_all", "seeds": [0], "bleu_mean": 20.8, "bleu_std": None},
    ]
    assert budget_table(cells, rows).splitlines() == [
        "| initialisation | 1,000 | all |",
        "|---|---|---|",
        "| en-de_scratch | 12.7 ± 0.7 (2) | 20.8 (1) |",
        "| en-de_dae | 18.4 ± 0.4 (2, +5.7) |  |",
    ]


def test_an_hour_from_the_denoising_autoencoder_trains_for_the_hour_less_its_pretraining(
    monkeypatch,
):
    monkeypatch.delenv("TMT_QUICK")  # the full-mode recipes, without training them
    asked = {}

    def translator(init, **options):
        asked[init] = options["train"]
        return None, None, Path(init or "scratch")

    monkeypatch.setattr(course, "translator", translator)
    monkeypatch.setattr(course, "test_set_result", lambda folder, src, tgt: {})
    cells = experiments.full(inits=["scratch", "dae"])
    assert [cell.name for cell in cells] == [
        "en-de_scratch_long_all_seed0",
        "en-de_dae_long_all_seed0",
    ]
    for cell in cells:
        cell.run()
    assert (asked[None].max_minutes, asked[None].max_steps) == (60, 2200)
    assert recipes.PRETRAINING_MINUTES + asked["dae"].max_minutes == 60
    assert asked["dae"].max_steps == round(2200 * asked["dae"].max_minutes / 60)
    with pytest.raises(ValueError, match="starts from scratch or dae"):
        experiments.full(inits=["parent_long"])


def test_the_rank_test_over_seeds_is_exact_and_cannot_go_below_its_floor():
    assert experiments.seed_rank_p([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(1 / 20)
    assert experiments.seed_rank_p([4.0, 5.0, 6.0], [1.0, 2.0, 3.0]) == 1.0
    assert experiments.seed_rank_p([1.0], [2.0, 3.0, 4.0]) == pytest.approx(1 / 4)
    # interleaved
    assert experiments.seed_rank_p([1.0, 3.0, 5.0], [2.0, 4.0, 6.0]) == pytest.approx(0.35)


def _record(
    cell: Cell, bleu: float, hypotheses: list[str] | None = None, comparison: dict | None = None
) -> dict:
    test = {"bleu": {"score": bleu}} | ({"hypotheses": hypotheses} if hypotheses else {})
    return {"test": test, "data": {"test_split": "test_2016_flickr"}} | (
        {"comparison": comparison} if comparison else {}
    )


def test_versus_uses_a_paired_bootstrap_where_both_runs_kept_translations(monkeypatch):
    refs = [f"ein hund läuft über die wiese nummer {i} ." for i in range(40)]
    monkeypatch.setattr(
        experiments.data, "load_parallel", lambda src, tgt, split: [("", r) for r in refs]
    )
    good, bad = Cell("x", "dae", 1000, 0), Cell("x", "lm", 1000, 0)
    records = {good: _record(good, 30.0, refs), bad: _record(bad, 2.0, ["eine katze ."] * 40)}
    result = experiments.versus(records, "en-de_lm_1000", "en-de_dae_1000")
    assert result.delta == 28.0 and result.bootstrap_p[0] < 0.01 and result.established
    assert result.evidence() == "paired bootstrap p ≤ 0.001 (seed 0)"


def test_versus_without_translations_falls_back_on_seeds_and_says_when_there_is_no_test():
    cells = {init: [Cell("x", init, 1000, seed) for seed in range(3)] for init in ("dae", "ae")}
    records = {
        cell: _record(cell, score)
        for init, scores in (("dae", [18, 19, 20]), ("ae", [17, 16, 15]))
        for cell, score in zip(cells[init], scores)
    }
    three = experiments.versus(records, "en-de_ae_1000", "en-de_dae_1000")
    assert (
        three.established
        and three.evidence() == "3 seeds against 3, rank test over seeds p = 0.050"
    )
    one = experiments.versus(
        {c: records[c] for c in (cells["dae"][0], cells["ae"][0])},
        "en-de_ae_1000",
        "en-de_dae_1000",
    )
    assert (
        not one.established
        and one.evidence() == "1 seed against 1, no translations recorded: no test"
    )
    with pytest.raises(ValueError, match="no recorded run"):
        experiments.versus(records, "en-de_vae_1000", "en-de_dae_1000")


def test_versus_with_translations_for_some_seeds_also_weighs_the_seeds_without(monkeypatch):
    refs = [f"ein hund läuft über die wiese nummer {i} ." for i in range(40)]
    monkeypatch.setattr(
        experiments.data, "load_parallel", lambda src, tgt, split: [("", r) for r in refs]
    )

    def records(seed0_dae: float) -> dict:
        runs = {}
        for seed in range(3):
            good, bad = Cell("x", "dae", 1000, seed), Cell("x", "lm", 1000, seed)
            kept = seed > 0  # seed 0 predates kept translations
            runs[good] = _record(good, 30.0 if kept else seed0_dae, refs if kept else None)
            runs[bad] = _record(bad, 2.0 if kept else 20.0, ["eine katze ."] * 40 if kept else None)
        return runs

    ahead = experiments.versus(records(25.0), "en-de_lm_1000", "en-de_dae_1000")
    assert set(ahead.bootstrap_p) == {1, 2} and ahead.untested_seeds == [0] and ahead.established
    assert ahead.evidence() == (
        "paired bootstrap p ≤ 0.001 on each of the 2 seeds; seed 0, without translations: +5.0"
    )
    behind = experiments.versus(records(15.0), "en-de_lm_1000", "en-de_dae_1000")
    assert not behind.established and behind.evidence().endswith(
        "seed 0, without translations: -5.0"
    )


def test_versus_reuses_the_comparison_a_record_keeps_with_its_scratch_run():
    scratch, dae = Cell("x", None, None, 0, recipe="long"), Cell("x", "dae", None, 0, recipe="long")
    records = {
        scratch: _record(scratch, 36.9),
        dae: _record(
            dae,
            37.7,
            comparison={"baseline": scratch.name, "baseline_bleu": 36.9, "p_value": 0.051},
        ),
    }
    result = experiments.versus(records, scratch.system, dae.system)
    assert result.bootstrap_p == {0: 0.051} and not result.established


def test_figures_draw_each_language_pair_in_its_own_panel_with_words_for_labels(tmp_path):
    cells = [
        Cell("crosslingual", init, 3000, seed, "en", tgt)
        for tgt in ("fr", "cs")
        for init in (None, "parent_long")
        for seed in (0, 1)
    ]
    curve = [{"step": 50, "val_bleu": 5.0}, {"step": 100, "val_bleu": 9.0}]
    records = {cell: _record(cell, 20.0 + cell.seed + (5 if cell.init else 0)) for cell in cells}
    for saved in records.values():
        saved["validation"] = {"curve": curve}
    written = experiments.figures("crosslingual", records, tmp_path)
    assert [path.name for path in written] == ["bleu.png", "learning_curves.png"]
    assert [experiments.label(c) for c in cells[:4:2]] == ["scratch", "60-min parent"]
    assert (
        experiments.label(Cell("strategies", "parent", 3000, 0, "en", "fr", "freeze_encoder"))
        == "frozen encoder"
    )
    assert (
        experiments.label(Cell("full", "dae", None, 0, recipe="long_bf16")) == "DAE, 60 min, bf16"
    )


def test_learning_curves_show_each_systems_first_seed_that_kept_its_curve(tmp_path, monkeypatch):
    cells = [
        Cell("strategies", "parent", 3000, seed, "en", "fr", strategy)
        for strategy in ("full", "gradual")
        for seed in (0, 1)
    ]
    records = {cell: _record(cell, 20.0 + cell.seed) for cell in cells}
    for cell, saved in records.items():  # seed 0 predates kept curves; gradual kept none at all
        kept = cell.seed == 1 and cell.strategy == "full"
        saved["validation"] = {"curve": [{"step": 50, "val_bleu": 5.0}]} if kept else {}
    drawn = []
    monkeypatch.setattr(
        experiments.plot, "learning_curves", lambda curves, **kwargs: drawn.extend(curves)
    )
    written = experiments.figures("strategies", records, tmp_path)
    assert [path.name for path in written] == ["bleu.png", "learning_curves.png"]
    assert drawn == ["en→fr full fine-tuning (seed 1)"]
    for saved in records.values():
        saved["validation"] = {}
    drawn.clear()
    assert [p.name for p in experiments.figures("strategies", records, tmp_path)] == ["bleu.png"]
    assert drawn == []


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


@pytest.mark.parametrize(("folder", "at_least"), [("data/results", 50), ("bench/results", 5)])
def test_committed_records_hold_no_absolute_path(folder, at_least):
    records = sorted((REPO_ROOT / folder).rglob("*.json"))
    assert len(records) >= at_least
    found = [
        (path.relative_to(REPO_ROOT), s)
        for path in records
        for s in _strings(json.loads(path.read_text()))
        if s.startswith("/") or s[1:3] == ":\\"
    ]
    assert not found, found[:3]


def test_a_record_names_its_starting_checkpoint_relative_to_the_run_cache(tmp_path):
    from tmtlib import pipeline

    folder = tmp_path / "run"
    folder.mkdir()
    inside = pipeline.runs_dir() / "pretrain-0123456789ab" / "best.pt"
    (folder / "config.json").write_text(json.dumps({"init": str(inside), "pairs": 200}))
    assert experiments.recorded_config(folder) == {
        "init": "runs/pretrain-0123456789ab/best.pt",
        "pairs": 200,
    }
    (folder / "config.json").write_text(json.dumps({"init": "my/best.pt"}))
    # a path the user gave stays as given
    assert experiments.recorded_config(folder)["init"] == "my/best.pt"
    outside = tmp_path / "mine.pt"  # an absolute path elsewhere: named by its content
    outside.write_bytes(b"weights")
    (folder / "config.json").write_text(json.dumps({"init": str(outside)}))
    assert experiments.recorded_config(folder)["init"] == pipeline.checkpoint_reference(outside)
    assert experiments.recorded_config(folder)["init"].startswith("sha256:")


def test_the_size_ablation_joins_its_smaller_models_to_the_course_models_budget_runs(tmp_path):
    sizes = experiments.sizes(seeds=(0, 1), presets=("tiny",))
    assert [c.name for c in sizes] == [
        "en-de_scratch_tiny_3000_seed0",
        "en-de_scratch_tiny_3000_seed1",
    ]
    assert experiments.label(sizes[0]) == "scratch, tiny model"
    course_runs = [Cell("budgets", None, 3000, seed) for seed in (0, 1)]
    others = [Cell("budgets", "dae", 3000, 0), Cell("budgets", None, 1000, 0)]
    for family, cells in (("sizes", sizes), ("budgets", course_runs + others)):
        (tmp_path / family).mkdir()
        for cell in cells:
            saved = _record(cell, 10.0 + cell.seed) | {"cell": asdict(cell) | {"name": cell.name}}
            saved["training"] = {"seconds": 60.0 * (1 + cell.seed)}
            saved["validation"] = {"curve": [{"step": 50, "val_bleu": 5.0}]}
            (tmp_path / family / f"{cell.name}.json").write_text(json.dumps(saved))
    joined = experiments.size_records(tmp_path)
    assert set(joined) == set(sizes + course_runs)  # not another start or budget
    written = experiments.figures("sizes", joined, tmp_path / "sizes")
    assert [path.name for path in written] == ["bleu_by_size.png", "learning_curves.png"]
    assert written[0].read_bytes()[:4] == b"\x89PNG"


def test_model_sizes_are_counted_with_the_course_vocabulary():
    tiny, small, course_model = (
        experiments.preset_parameters(p) for p in ("tiny", "small", "course")
    )
    assert tiny < small < course_model
    # the tied 8,000 x 256 embedding is a quarter of the course model
    assert course_model > 4 * 8000 * 256 * 0.9


def test_every_text_of_a_family_figure_fits_inside_it(tmp_path, monkeypatch):
    """No title or label runs off the edge: the longest title is the one that says how many
    systems a learning-curve figure leaves out, on a single panel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    cells = [
        Cell("crosslingual", init, 3000, seed, "en", "fr")
        for init in (None, "dae", "parent", "parent_long")
        for seed in (0, 1)
    ]
    records = {cell: _record(cell, 20.0 + cell.seed) for cell in cells}
    for cell, saved in records.items():
        kept = cell.init == "parent" and cell.seed == 1
        saved["validation"] = {"curve": [{"step": 50, "val_bleu": 5.0}]} if kept else {}
    drawn, save = [], experiments._save
    monkeypatch.setattr(
        experiments, "_save", lambda fig, path: drawn.append(fig) or save(fig, path)
    )
    experiments.figures("crosslingual", records, tmp_path)
    assert len(drawn) == 2
    for fig in drawn:
        drawn_box = fig.get_tightbbox(FigureCanvasAgg(fig).get_renderer())  # inches
        assert drawn_box.x0 >= -0.01 and drawn_box.x1 <= fig.bbox_inches.x1 + 0.01, (
            f"something drawn reaches from {drawn_box.x0:.2f} to {drawn_box.x1:.2f} inches on a "
            f"figure {fig.bbox_inches.x1:.2f} wide"
        )
