"""The course's standard runs, shared by the notebooks: one definition of each experiment.

A notebook asks for ``pretrained("dae")`` or ``translator("dae", pairs=2000)`` and gets the model
that every other notebook gets: runs are cached in ``data/cache/runs`` by their full settings
(``tmtlib.pipeline.cached_run``), so the second notebook to ask reuses the first one's training,
and a learner who opens notebook 5 first simply trains what it needs.

The recipes (model sizes, data, steps, in full and quick mode) are in ``tmtlib.recipes``, read
when a run is built. Quick mode (``TMT_QUICK=1``, see ``tmtlib.settings``) swaps in the tiny model,
small pools and a few dozen steps, so the whole course runs in CI in minutes; most numbers it
prints then only show that the code runs, not what transfer learning achieves. Some models a learner
plays with train longer so that they show their behaviour: the remedied VAE of notebook 2 (its
interpolation changes along the path) and the en->de translators the notebooks return to
(``SHOWCASE_RUNS``). Every budget keeps its own pairs, so distinct runs stay distinct (training cost
depends on the steps, not on the size of the pool).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

from . import checkpoint, pipeline, recipes
from .models import Seq2Seq
from .pipeline import FinetuneSpec, PretrainSpec, cached_run, course_tokenizer
from .train import History, TrainConfig
from .transfer import DEFAULT_PARTS

# notebook 9's en->de translators, (start, pairs), shared with notebooks 5, 7, 8 and 10 (scratch on
# all pairs is also quick mode's parent); in quick mode they are the showcase (``recipes.SHOWCASE``)
SHOWCASE_RUNS = ((None, 2000), ("dae", 2000), (None, None))
PRETRAIN_OBJECTIVES = ("lm", "dae", "vae")
# which parts of each pretrained model go into the translator: an LM trained only its decoder
INIT_PARTS = {
    "lm": ("embeddings", "decoder"),
    "dae": DEFAULT_PARTS,
    "vae": DEFAULT_PARTS,
    "ae": DEFAULT_PARTS,
    "parent": DEFAULT_PARTS,
    "parent_long": DEFAULT_PARTS,
    "parent_dae": DEFAULT_PARTS,
    "parent_dae_long": DEFAULT_PARTS,
}
# the long parent, then denoising for this many times the course's pretraining steps
DENOISED_PARENTS = {"parent_dae": 1, "parent_dae_long": 3}
PARENT = ("en", "de")  # the parent pair of cross-lingual transfer: trained on all its 29,000 pairs
# the parent of an en->de child, which must not learn from all en->de pairs
PARENT_OF_EN_DE = (
    "en",
    "fr",
)


def pretrain_spec(objective: str, **overrides) -> PretrainSpec:
    """Pretraining on English and German task-2 captions with one objective."""
    if objective not in PRETRAIN_OBJECTIVES + ("ae",):
        raise ValueError(
            f"the course pretrains with {', '.join(PRETRAIN_OBJECTIVES)} or ae, not {objective!r}"
        )
    recipe = recipes.PRETRAINING.current()
    train = recipe.train
    spec = PretrainSpec(
        objective=objective,
        preset=recipe.preset,
        sentences_per_lang=recipe.sentences_per_lang,
        infill_ratio=0.3,
        latent_dim=64,
        kl_schedule="linear",
        kl_warmup=int(0.6 * train.max_steps),
        free_bits=0.1,
        word_dropout=0.25,
        train=train,
        dropout=recipe.dropout,
    )
    return replace(spec, **overrides)


# notebook 1: a sentence autoencoder, the same with a one-vector bottleneck, and a denoising
# autoencoder, on English captions with one recipe (``autoencoder_specs``)
AUTOENCODERS = {
    "ae": dict(objective="ae"),
    "bottleneck": dict(
        objective="vae",
        latent_dim=64,
        kl_schedule="constant",
        max_beta=0.0,
        free_bits=0.0,
        word_dropout=0.0,
    ),
    "dae": dict(objective="dae", infill_ratio=0.3),
}


def autoencoder_specs() -> dict[str, PretrainSpec]:
    """Notebook 1's three runs, keyed as ``AUTOENCODERS``, on English captions with the recipe
    ``recipes.AUTOENCODERS``."""
    recipe = recipes.AUTOENCODERS.current()
    base = PretrainSpec(
        langs=("en",),
        preset=recipe.preset,
        sentences_per_lang=recipe.sentences_per_lang,
        train=recipe.train,
        dropout=recipe.dropout,
    )
    return {key: replace(base, **options) for key, options in AUTOENCODERS.items()}


# notebook 2: one VAE (the small model, 32 latent dimensions, English captions) trained three ways
VAE_VARIANTS = {
    "no_remedy": "no remedy (β=1 throughout)",
    "annealing": "KL annealing",
    "all_remedies": "annealing + word dropout + free bits",
}
# every VAE of the course by its name in the pretraining records: notebook 2's three, notebook 3's
# one
VAE_RUNS = (*(f"vae_{key}" for key in VAE_VARIANTS), "vae")


def vae_collapse_specs() -> dict[str, PretrainSpec]:
    """The VAE without remedies, with KL annealing, and with annealing, word dropout and free bits
    (Bowman et al. 2016; Kingma et al. 2016), keyed as ``VAE_VARIANTS``, with the recipe
    ``recipes.VAE_COLLAPSE``; the KL weight rises over the first half of the steps."""
    recipe = recipes.VAE_COLLAPSE.current()
    steps = recipe.train.max_steps
    base = PretrainSpec(
        objective="vae",
        langs=("en",),
        preset=recipe.preset,
        sentences_per_lang=recipe.sentences_per_lang,
        latent_dim=32,
        train=recipe.train,
        dropout=recipe.dropout,
    )
    options = {
        "no_remedy": dict(kl_schedule="constant", free_bits=0.0, word_dropout=0.0),
        "annealing": dict(
            kl_schedule="linear", kl_warmup=steps // 2, free_bits=0.0, word_dropout=0.0
        ),
        "all_remedies": dict(
            kl_schedule="linear", kl_warmup=steps // 2, free_bits=0.25, word_dropout=0.3
        ),
    }
    return {key: replace(base, **options[key]) for key in VAE_VARIANTS}


def long_train_config(seed: int = 0, precision: str = "fp32", minutes: int = 60) -> TrainConfig:
    """The course model's full-data CPU recipe: 2,200 steps of ~4,096 tokens (about 60 minutes on 2
    cores, and never more: training stops at 60 minutes), linear warm-up then cosine decay to zero
    over the 2,200 steps (Loshchilov & Hutter 2017), so that the learning rate has annealed by the
    end instead of flattening out as inverse-sqrt does. With ``precision="bf16"`` (mixed precision,
    ``tmtlib.models.autocast``) the same hour holds 3,000 steps, and the cosine spans them. With
    fewer ``minutes`` (what is left of the hour after pretraining) the steps shrink in
    proportion (``recipes.LONG_TRAINING``; quick mode: a fixed few steps)."""
    recipe = recipes.LONG_TRAINING.current()
    train = replace(recipe.train, seed=seed, precision=precision)
    if recipe.steps_per_hour is None:
        return train
    steps = round(recipe.steps_per_hour[precision] * minutes / 60)
    return replace(train, max_steps=steps, max_minutes=minutes)


def translation_recipe(
    init: str | None, pairs: int | None, child: tuple[str, str], overrides: dict
) -> recipes.Translation:
    """The recipe of a translator: ``recipes.FINETUNING``, or in quick mode ``recipes.SHOWCASE``
    for notebook 9's en->de translators (``SHOWCASE_RUNS``) unless ``overrides`` change their
    training, task or model."""
    showcase = recipes.SHOWCASE.current()
    is_showcase = (
        showcase is not None
        and (init, pairs) in SHOWCASE_RUNS
        and tuple(child) == PARENT
        and not {"train", "task", "preset"} & set(overrides)
    )
    return showcase if is_showcase else recipes.FINETUNING.current()


def translator_preset(
    init: str | None, pairs: int | None, child: tuple[str, str], overrides: dict
) -> str:
    """The model size of a translator: its recipe's; a child of a parent translator has its
    parent's size."""
    if init == "parent":
        return translator_preset(None, None, parent_pair(child), {})
    return translation_recipe(init, pairs, child, overrides).preset


def finetune_spec(
    init: str | None,
    pairs: int = 2000,
    seed: int = 0,
    src: str = "en",
    tgt: str = "de",
    **overrides,
) -> FinetuneSpec:
    """A translator on ``pairs`` parallel pairs, from scratch (``init=None``) or from one of
    ``INIT_PARTS`` (``init_checkpoint`` says which model each name stands for)."""
    preset = translator_preset(init, pairs, (src, tgt), overrides)
    init_path = None if init is None else init_checkpoint(init, (src, tgt), preset)
    parts = DEFAULT_PARTS if init is None else INIT_PARTS[init]
    recipe = translation_recipe(init, pairs, (src, tgt), overrides)
    settings = dict(
        src=src,
        tgt=tgt,
        pairs=pairs,
        subset_seed=seed,
        preset=preset,
        init=init_path,
        parts=parts,
        bleu_sentences=recipe.bleu_sentences,
        label_smoothing=recipe.label_smoothing,
        dropout=recipe.dropout,
        train=replace(recipe.train, seed=seed),
    )
    return FinetuneSpec(**{**settings, **overrides})


def init_checkpoint(init: str, child: tuple[str, str], preset: str | None = None) -> str:
    """The checkpoint a child translator of ``child`` starts from, trained first if missing:
    a pretrained model (``lm``, ``ae``, ``dae``, ``vae``); a parent translator of another pair
    (``parent``: 250 steps, ``parent_long``: ~60 minutes; the pair is ``parent_pair(child)``);
    or ``parent_dae``, the combination of both: the long parent, then the course's denoising
    pretraining on English and German captions from its weights, so that the parent's encoder
    and cross-attention meet a decoder that has practised the child's target language;
    ``parent_dae_long`` denoises three times as long (``DENOISED_PARENTS``). A pretrained model
    has the child's ``preset`` (default: the course model of ``recipes.COURSE_MODEL``)."""
    if init not in INIT_PARTS:
        raise ValueError(f"unknown initialisation {init!r}: choose from {', '.join(INIT_PARTS)}")
    if init == "parent":
        folder = parent(parent_pair(child))[2]
    elif init == "parent_long":
        folder = long_parent(parent_pair(child))[2]
    elif init in DENOISED_PARENTS:
        folder = cached_run(denoised_parent_spec(init, child), course_tokenizer())[2]
    else:
        folder = pretrained(init, preset=preset or recipes.COURSE_MODEL.current())[2]
    return str(checkpoint.RunFolder(folder).best)


def denoised_parent_spec(init: str, child: tuple[str, str]) -> PretrainSpec:
    """The denoising stage of ``init`` (one of ``DENOISED_PARENTS``) for a ``child`` pair: the
    course's denoising pretraining, for that many times its steps, from the long parent's weights
    (trained first if missing)."""
    train = recipes.PRETRAINING.current().train
    train = replace(train, max_steps=DENOISED_PARENTS[init] * train.max_steps)
    return pretrain_spec("dae", init=init_checkpoint("parent_long", child), train=train)


def pretrained(objective: str, **overrides) -> tuple[Seq2Seq, History, Path]:
    """(model, history, run folder) of the course's pretraining run with ``objective``."""
    return cached_run(pretrain_spec(objective, **overrides), course_tokenizer())


def translator(
    init: str | None, pairs: int = 2000, seed: int = 0, **overrides
) -> tuple[Seq2Seq, History, Path]:
    """(model, history, run folder) of a translator fine-tuned from ``init`` (or from scratch)."""
    return cached_run(finetune_spec(init, pairs, seed, **overrides), course_tokenizer())


def parent_pair(child: tuple[str, str]) -> tuple[str, str]:
    """The pair a child's parent translates: en->de for every child but en->de itself, whose parent
    is en->fr (a parent trained on all en->de pairs would already contain the child's data)."""
    return PARENT_OF_EN_DE if tuple(child) == PARENT else PARENT


def parent(pair: tuple[str, str] = PARENT) -> tuple[Seq2Seq, History, Path]:
    """The parent translator of cross-lingual transfer (Zoph et al. 2016): ``pair`` (en->de by
    default) on all its pairs, from scratch; en->de is the same run as notebook 6's 29k-pair
    scratch point."""
    return translator(None, pairs=None, src=pair[0], tgt=pair[1])


def long_parent(pair: tuple[str, str] = PARENT) -> tuple[Seq2Seq, History, Path]:
    """A stronger parent: ``pair`` on all its pairs with the ~60-minute recipe
    (``long_train_config``), the course's best full-data model on 2 CPU cores."""
    return translator(None, pairs=None, src=pair[0], tgt=pair[1], train=long_train_config())


def paraphraser(
    init: str | None, pairs: int = 10000, seed: int = 0, lang: str = "en", **overrides
) -> tuple[Seq2Seq, History, Path]:
    """(model, history, run folder) of a caption paraphraser (caption 1 -> caption 2 of task-2
    images), fine-tuned from ``init`` like a translator, with the recipe
    ``recipes.PARAPHRASING``."""
    train = replace(recipes.PARAPHRASING.current(), seed=seed)
    return translator(
        init, pairs, seed, src=lang, tgt=lang, task="paraphrase", **{"train": train, **overrides}
    )


def shared_runs() -> list[Callable[[], tuple[Seq2Seq, History, Path]]]:
    """The runs that most notebooks load, costliest first, each as a call that trains (or loads)
    it: notebook 9's translators (``SHOWCASE_RUNS``; scratch on all pairs is also the
    parent of notebooks 7, 8 and 10) and notebook 2's VAEs. ``prepare`` trains them ahead of time.
    Calls, not specs: a translator's spec names its pretrained start, which building it trains."""
    # its pretraining comes on top
    dae_first = sorted(SHOWCASE_RUNS, key=lambda run: run[0] is None)
    translators = [partial(translator, init, pairs) for init, pairs in dae_first]
    return [*translators, *(partial(cached_run, spec) for spec in vae_collapse_specs().values())]


def prepare(share: int = 0, of: int = 1) -> None:
    """Train (or load) every one of ``shared_runs`` ahead of time, e.g. before a class. ``of``
    processes can share the work: each goes through the whole list, even shares from the front and
    odd ones from the back (at staggered starts), waiting for a run another one is training and then
    loading it, so that two processes meet in the middle (the root conftest.py's test workers)."""
    if not 0 <= share < of:
        raise ValueError(f"share must be in 0..{of - 1}, not {share}")
    runs = shared_runs()
    start = (share // 2) * 2 * len(runs) // of
    runs = runs[start:] + runs[:start]
    for run in runs if share % 2 == 0 else reversed(runs):
        run()


def test_set_result(
    folder: Path, src: str, tgt: str, split: str = "test_2016_flickr", beam_size: int = 5
) -> dict:
    """Beam-search translations of a task-1 test split by the run in ``folder`` and their sacreBLEU
    scores, computed once and kept in ``folder`` (decoding 1,000 sentences takes a while); quick
    mode scores the first ``recipes.TEST_SENTENCES``."""
    limit = recipes.TEST_SENTENCES.current()
    cache = folder / f"{src}-{tgt}.{split}.beam{beam_size}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    model, tokenizer, _ = pipeline.load(checkpoint.RunFolder(folder).best)
    hyps, scores = pipeline.scores_on_test(
        model, tokenizer, src, tgt, split, beam_size=beam_size, limit=limit
    )
    result = {
        "src": src,
        "tgt": tgt,
        "split": split,
        "beam_size": beam_size,
        "sentences": len(hyps),
        "hypotheses": hyps,
        **{
            name: {"score": score.value, "signature": score.signature}
            for name, score in scores.items()
        },
    }
    checkpoint.write_json_atomic(result, cache)
    return result
