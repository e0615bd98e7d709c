"""The course's shared runs (quick mode in tests): specs, parent transfer, cached test results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tmtlib import course, pipeline, recipes, settings

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "value, quick",
    [("1", True), ("true", True), (" Yes ", True), ("on", True), ("0", False), ("", False)],
)
def test_tmt_quick_turns_quick_mode_on(value, quick, monkeypatch):
    monkeypatch.setenv("TMT_QUICK", value)
    assert settings.quick_mode() is quick


def test_quick_mode_shrinks_the_course_runs_when_they_are_built(monkeypatch):
    monkeypatch.setenv("TMT_QUICK", "0")
    full = recipes.PRETRAINING.current(), course.finetune_spec(None, 200)
    monkeypatch.setenv("TMT_QUICK", "1")
    quick = recipes.PRETRAINING.current(), course.finetune_spec(None, 200)
    assert (quick[0].train.max_steps, full[0].train.max_steps) == (30, 300)
    assert quick[1].train.max_steps < full[1].train.max_steps
    assert quick[1].bleu_sentences < full[1].bleu_sentences


def test_quick_mode_keeps_distinct_budgets_distinct_runs():
    specs = {pairs: course.finetune_spec(None, pairs) for pairs in (200, 500, 2000, None)}
    assert [spec.pairs for spec in specs.values()] == [200, 500, 2000, None]
    assert len({pipeline.spec_hash(spec) for spec in specs.values()}) == len(specs)


def test_quick_mode_showcases_only_notebook_9s_en_de_translators():
    showcase, quick = recipes.SHOWCASE.quick.preset, recipes.COURSE_MODEL.quick
    assert (
        course.finetune_spec(None, 2000).preset
        == course.finetune_spec(None, None).preset
        == showcase
    )
    assert (
        course.finetune_spec(None, 2000).train.max_steps == recipes.SHOWCASE.quick.train.max_steps
    )
    assert (
        course.finetune_spec(None, 500).preset
        == course.finetune_spec(None, 2000, tgt="fr").preset
        == quick
    )
    # three showcases, not every combination
    assert course.finetune_spec(None, 2000, train=course.long_train_config()).preset == quick


def test_quick_mode_showcases_no_pretrained_start(corpus):
    # the spec names the DAE's checkpoint: the DAE is trained (or loaded) on the real corpus
    assert course.finetune_spec("dae", None).preset == recipes.COURSE_MODEL.quick


def test_child_of_the_parent_starts_from_the_parent_translator(tokenizer):
    # the shared run cache: the quick parent is notebook 9's "scratch · 29k", reused by notebooks 7
    # to 10
    spec = course.finetune_spec("parent", pairs=200, src="en", tgt="fr")
    _, _, parent_folder = course.parent()
    assert spec.init == str(parent_folder / "best.pt") and spec.parts == course.INIT_PARTS["parent"]
    assert spec.preset == json.loads((parent_folder / "config.json").read_text())["preset"]
    assert pipeline.spec_from_dict(pipeline.FinetuneSpec, pipeline.spec_dict(spec)) == spec


def test_test_results_are_cached_per_language_pair(tokenizer):
    _, _, folder = course.translator(None, pairs=200, src="en", tgt="fr")
    french = course.test_set_result(folder, "en", "fr")
    german = course.test_set_result(folder, "en", "de")  # what a French child still does in German
    assert (french["tgt"], german["tgt"]) == ("fr", "de")
    assert (folder / "en-fr.test_2016_flickr.beam5.json").exists()
    assert (folder / "en-de.test_2016_flickr.beam5.json").exists()
    assert course.test_set_result(folder, "en", "fr") == french  # read back, not recomputed


def test_the_en_de_child_gets_an_en_fr_parent_never_one_trained_on_its_own_pairs(tokenizer):
    assert course.parent_pair(("en", "fr")) == course.parent_pair(("en", "cs")) == course.PARENT
    assert course.parent_pair(course.PARENT) == ("en", "fr")
    spec = course.finetune_spec("parent_long", pairs=200, src="en", tgt="de")
    _, _, parent_folder = course.long_parent(("en", "fr"))
    assert spec.init == str(parent_folder / "best.pt")
    assert json.loads((parent_folder / "config.json").read_text())["tgt"] == "fr"


def test_parent_dae_is_the_long_parent_taught_the_target_language_by_denoising(tokenizer):
    spec = course.finetune_spec("parent_dae", pairs=200, src="en", tgt="de")
    dae_config = json.loads((Path(spec.init).parent / "config.json").read_text())
    _, _, parent_folder = course.long_parent(("en", "fr"))
    assert dae_config["objective"] == "dae" and dae_config["langs"] == ["en", "de"]
    assert dae_config["init"] == str(parent_folder / "best.pt")
    longer = course.finetune_spec("parent_dae_long", pairs=200, src="en", tgt="de")
    longer_config = json.loads((Path(longer.init).parent / "config.json").read_text())
    assert longer_config["init"] == dae_config["init"] and longer_config["objective"] == "dae"
    assert longer_config["train"]["max_steps"] == 3 * dae_config["train"]["max_steps"]
    with pytest.raises(ValueError, match="unknown initialisation 'bart'"):
        course.finetune_spec("bart", pairs=200)
