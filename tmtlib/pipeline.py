"""The course's pipeline in a few calls: pretrain, fine-tune, load, translate a test set.

The command line, the notebooks and the experiments all run through these functions, so a
result in a notebook and the same run from ``python -m tmtlib`` are the same computation. Each run
lives in one folder: ``last.pt`` (resumable), ``best.pt`` (selected on validation data),
``history.json``, ``progress.json`` (where ``last.pt`` stands: finished or not, steps, time),
``config.json`` (the spec that produced it) and ``tokenizer.model`` (the vocabulary, so a
checkpoint can always be decoded). ``cached_run`` names that folder by a hash of everything that
makes the run (``spec_hash``: the spec, its starting checkpoint, the vocabulary), so a notebook
reuses what an earlier one trained, on this machine or from a copied cache, and trains it if it is
missing.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from . import checkpoint, data, settings
from .decode import translate
from .evaluate import Score, bleu, evaluate
from .models import PRESETS, ModelConfig, Seq2Seq, model_config
from .noise import NoiseConfig
from .objectives import (
    KL_SCHEDULES,
    OBJECTIVES,
    KLSchedule,
    make_objective,
    monolingual_examples,
    translation_examples,
)
from .subwords import LANGUAGES, Tokenizer, TokenizerSettings, train_tokenizer
from .train import LOSS_METRICS, History, TrainConfig, check_run, train
from .transfer import (
    DEFAULT_PARTS,
    PARTS,
    GradualUnfreezing,
    TransferReport,
    freeze,
    parameter_groups,
    transfer,
)
from .validation import SettingError, check_fields, from_plain, setting

TASKS = ("translate", "paraphrase")
STRATEGIES = ("full", "freeze_encoder", "gradual", "discriminative")
PARAPHRASE_VALID_IMAGES = (
    500  # task-2 val images 0..499 select models; the rest are the paraphrase test set
)


PRETRAINING_OBJECTIVES = tuple(name for name in OBJECTIVES if name != "translation")
PRESET_NAMES = tuple(PRESETS)


def course_tokenizer(
    langs: Sequence[str] = LANGUAGES, options: TokenizerSettings | None = None
) -> Tokenizer:
    """The course's joint vocabulary: trained on the task-1 training sentences of ``langs``.

    Only training text is used (never validation or test sentences); ``options`` default to
    ``TokenizerSettings()``. Trained once (``data/cache/spm``), then loaded; a process asks the disk
    once per vocabulary, since reading and normalising its training text takes seconds. It lives
    here, not in ``subwords``, because ``data`` needs ``subwords.normalize``: the tokenizer module
    stays below ``data`` and this function, which needs both, sits above them.
    """
    unknown = set(langs) - set(LANGUAGES)
    if unknown:
        raise ValueError(
            f"unknown language(s) {sorted(unknown)}: the course has {', '.join(LANGUAGES)}"
        )
    return _trained_course_tokenizer(tuple(langs), options or TokenizerSettings())


@functools.cache
def _trained_course_tokenizer(langs: tuple[str, ...], options: TokenizerSettings) -> Tokenizer:
    """``course_tokenizer``'s vocabulary, kept for the process (Multi30k is verified by checksums,
    so its training text, and with it the vocabulary, is the same wherever the data lives)."""
    return train_tokenizer(
        [line for lang in langs for line in data.read_lines(1, "train", lang)], options
    )


def own_dropout():
    """A run's own dropout probability (Srivastava et al. 2014), a setting of both kinds of run;
    None: its preset's (``spec_model_config``)."""
    return setting(None, at_least=0, below=1, help="dropout probability; none: the preset's")


@dataclass(frozen=True)
class PretrainSpec:
    """A pretraining run on monolingual text (task-2 captions, disjoint from evaluation sets)."""

    objective: str = setting(
        "dae",
        choices=PRETRAINING_OBJECTIVES,
        help="ae: autoencoder; dae: denoising autoencoder (BART, Lewis et al. 2020); vae: "
        "variational autoencoder (Bowman et al. 2016); lm: language model",
    )
    langs: tuple[str, ...] = setting(
        ("en", "de"),
        choices=LANGUAGES,
        nonempty=True,
        help="languages of the monolingual text (task-2 captions)",
    )
    preset: str = setting(
        "course", choices=PRESET_NAMES, help="model size, as in tmtlib.models.PRESETS"
    )
    sentences_per_lang: int | None = setting(
        None, at_least=1, help="sentences per language; none: the whole pool"
    )
    include_task1_train: bool = setting(
        False, help="add the task-1 training sentences of each language"
    )
    mask_p: float = setting(
        0.0,
        at_least=0,
        at_most=1,
        help="dae: share of tokens replaced by <mask> (BERT-style masking)",
    )
    infill_ratio: float = setting(
        0.3,
        at_least=0,
        at_most=1,
        help="dae: share of tokens in spans replaced by one <mask> each (BART text infilling)",
    )
    shuffle_k: int = setting(
        0,
        at_least=0,
        help="dae: words move at most k places (local shuffle, Lample et al. 2018); 0: off",
    )
    delete_p: float = setting(
        0.0,
        at_least=0,
        at_most=1,
        help="dae: probability of deleting each word (Lample et al. 2018)",
    )
    latent_dim: int = setting(64, at_least=1, help="vae: size of the latent code z")
    kl_schedule: str = setting(
        "linear",
        choices=KL_SCHEDULES,
        help="vae: how the KL weight beta rises (KL annealing, Bowman et al. 2016)",
    )
    kl_warmup: int = setting(2000, at_least=0, help="vae: steps over which beta rises to max_beta")
    max_beta: float = setting(
        1.0, at_least=0, help="vae: the KL weight beta after the warm-up (beta-VAE)"
    )
    free_bits: float = setting(
        0.0,
        at_least=0,
        help="vae: nats of KL per latent dimension left unpenalised (free "
        "bits, Kingma et al. 2016)",
    )
    word_dropout: float = setting(
        0.0,
        at_least=0,
        at_most=1,
        help="vae: probability of replacing each decoder input by <unk> (Bowman et al. 2016)",
    )
    train: TrainConfig = setting(default_factory=TrainConfig, help="how to train")
    dropout: float | None = own_dropout()
    init: str | None = setting(
        None,
        help="checkpoint to continue from (all of it but a VAE's latent heads); "
        "none: random initialisation",
    )

    def __post_init__(self):
        check_fields(self)
        _check_select(self.train, LOSS_METRICS)


@dataclass(frozen=True)
class FinetuneSpec:
    """Translation run: ``src`` -> ``tgt`` on ``pairs`` training pairs, from scratch or ``init``."""

    src: str = setting("en", choices=LANGUAGES, help="source language")
    tgt: str = setting("de", choices=LANGUAGES, help="target language")
    pairs: int | None = setting(
        None, at_least=1, help="training pairs, a fixed seeded subset of the 29,000; none: all"
    )
    subset_seed: int = setting(0, at_least=0, help="seed that draws the subset of --pairs")
    preset: str = setting(
        "course", choices=PRESET_NAMES, help="model size, as in tmtlib.models.PRESETS"
    )
    init: str | None = setting(
        None, help="checkpoint to initialise from (any objective, any pair); none: from scratch"
    )
    parts: tuple[str, ...] = setting(
        DEFAULT_PARTS,
        choices=PARTS,
        nonempty=True,
        help="parts of the --init checkpoint transferred",
    )
    label_smoothing: float = setting(
        0.1,
        at_least=0,
        below=1,
        help="label smoothing epsilon (Szegedy et al. 2016; 0.1 in Vaswani et al. 2017)",
    )
    bleu_sentences: int = setting(
        400, at_least=1, help="validation sentences scored with BLEU (greedy) per evaluation"
    )
    train: TrainConfig = setting(
        default_factory=lambda: TrainConfig(select="val_bleu"), help="how to train"
    )
    task: str = setting(
        "translate",
        choices=TASKS,
        help="translate, or paraphrase: caption 1 -> caption 2 of a task-2 image (src == tgt)",
    )
    strategy: str = setting(
        "full",
        choices=STRATEGIES,
        help="how the initialised weights are fine-tuned: all at once, encoder frozen, gradual "
        "unfreezing (ULMFiT, Howard & Ruder 2018) or discriminative learning rates",
    )
    dropout: float | None = own_dropout()

    def __post_init__(self):
        check_fields(self)
        _check_select(self.train, (*LOSS_METRICS, "val_bleu"))
        if (self.task == "paraphrase") != (self.src == self.tgt):
            raise SettingError(
                "paraphrasing keeps the language (src == tgt); translation changes it"
            )


def _check_select(config: TrainConfig, metrics: tuple[str, ...]) -> None:
    """Refuse a ``select`` metric that the run's evaluations never report."""
    if config.select not in metrics:
        raise SettingError(
            f"unknown select {config.select!r}: this run reports {', '.join(metrics)}"
        )


# Settings added after the first runs: left out of a spec's hash while at these defaults, so the
# runs cached before them keep their folders.
_LATER_DEFAULTS = {
    FinetuneSpec: {"task": "translate", "strategy": "full", "dropout": None},
    PretrainSpec: {"init": None, "dropout": None},
}


def spec_dict(spec) -> dict[str, Any]:
    """The spec as plain data (what ``config.json`` holds and the run folder's name hashes)."""
    later = _LATER_DEFAULTS[type(spec)]
    return {k: v for k, v in asdict(spec).items() if later.get(k, object()) != v}


def spec_from_dict(cls, raw: dict[str, Any]):
    """Rebuild a spec (and its TrainConfig) from ``config.json`` or a config file; unknown keys,
    and values of the wrong type or range, are a ``SettingError``."""
    return from_plain(cls, raw)


def spec_hash(spec, tokenizer: Tokenizer | None = None) -> str:
    """The name of a run's folder (``runs/<kind>-<hash>``): a hash of ``hashed_settings``, the same
    on every machine and checkout for the same run, different for runs that differ in anything
    that changes them."""
    hashed = json.dumps(hashed_settings(spec, tokenizer), sort_keys=True)
    return hashlib.sha256(hashed.encode()).hexdigest()[:12]


def hashed_settings(spec, tokenizer: Tokenizer | None = None) -> dict[str, Any]:
    """Everything that makes a run, as ``spec_hash`` hashes it: the spec (``spec_dict``), its
    starting checkpoint as ``checkpoint_reference`` (never a path of this machine), and the
    vocabulary's fingerprint when it is not the course's (``None``: the course's, as
    ``cached_run`` uses). The course's vocabulary and a spec without ``init`` add nothing, so
    those runs keep the names they were cached under."""
    hashed = spec_dict(spec)
    if spec.init:
        hashed["init"] = checkpoint_reference(spec.init)
    if tokenizer is not None and tokenizer.fingerprint() != course_tokenizer().fingerprint():
        hashed["tokenizer"] = tokenizer.fingerprint()
    return hashed


def checkpoint_reference(path: str | Path) -> str:
    """A checkpoint named the same on every machine: ``runs/<run folder>/<file>`` for one in the
    run cache, else ``sha256:<digest>`` of its bytes.

    A run folder's name is the hash of its own run's settings, so within the cache the name is the
    checkpoint's identity, cheap to compute and known before its training finishes; hashing the
    file instead would give a run trained on another machine (other floating-point rounding)
    another name and split the cache. A file elsewhere has no such name, and its path says
    nothing about what it holds, so its content names it."""
    file = Path(path).expanduser().resolve()
    if file.parent.parent == runs_dir().resolve():
        return f"runs/{file.parent.name}/{file.name}"
    try:
        return "sha256:" + hashlib.sha256(file.read_bytes()).hexdigest()[:16]
    except OSError as error:
        raise checkpoint.CheckpointError(
            f"cannot read the starting checkpoint {path}: {error.strerror or error}"
        ) from None


def _prepare_folder(out_dir: Path, spec, tokenizer: Tokenizer) -> None:
    """Write config.json and tokenizer.model; refuse a folder that holds a different run.

    Under torchrun only rank 0 writes (every rank reads the same files afterwards).
    """
    if settings.rank() != 0:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    files = checkpoint.RunFolder(out_dir)
    # tuples as lists
    wanted = json.loads(json.dumps({"kind": type(spec).__name__, **spec_dict(spec)}))
    if files.config.exists() and files.last.exists():
        existing = files.read_config()
        changed = sorted(
            k
            for k in set(existing) | set(wanted)
            if existing.get(k) != wanted.get(k) and k != "train"
        )
        if changed:
            raise ValueError(
                f"{out_dir} holds a different run (settings differ: {', '.join(changed)}); "
                f"choose another output folder"
            )
    checkpoint.write_json_atomic(wanted, files.config, indent=2)
    if not files.tokenizer.exists():
        checkpoint.write_bytes_atomic(Path(tokenizer.model_file).read_bytes(), files.tokenizer)


def _metadata(config: ModelConfig, tokenizer: Tokenizer, spec) -> dict[str, Any]:
    return {
        "model_config": asdict(config),
        "tokenizer": tokenizer.fingerprint(),
        "spec": {"kind": type(spec).__name__, **spec_dict(spec)},
    }


def pretraining_examples(spec: PretrainSpec, tokenizer: Tokenizer):
    """(train, valid) examples: each language's pool, and its validation captions."""
    train_examples = []
    for lang in spec.langs:
        pool = data.pretraining_corpus(lang, include_task1_train=spec.include_task1_train)
        pool = pool[: spec.sentences_per_lang] if spec.sentences_per_lang else pool
        train_examples += monolingual_examples(
            tokenizer, pool, lang, with_source=spec.objective != "lm"
        )
    return train_examples, pretraining_validation(spec, tokenizer)


def pretraining_validation(spec: PretrainSpec, tokenizer: Tokenizer):
    """The validation examples of a pretraining run: each language's first 500 task-2 validation
    captions (task-1 validation sentences for a language without task 2)."""
    valid_examples = []
    for lang in spec.langs:
        in_task2 = lang in data.TASK2_LANGS
        valid_text = (
            data.load_monolingual(lang, "val") if in_task2 else data.read_lines(1, "val", lang)
        )[:500]
        valid_examples += monolingual_examples(
            tokenizer, valid_text, lang, with_source=spec.objective != "lm"
        )
    return valid_examples


def build_objective(spec: PretrainSpec, tokenizer: Tokenizer):
    if spec.objective == "dae":
        noise = NoiseConfig(
            mask_p=spec.mask_p,
            delete_p=spec.delete_p,
            infill_ratio=spec.infill_ratio,
            shuffle_k=spec.shuffle_k,
        )
        return make_objective("dae", tokenizer, noise=noise)
    if spec.objective == "vae":
        schedule = KLSchedule(spec.kl_schedule, max_beta=spec.max_beta, warmup_steps=spec.kl_warmup)
        return make_objective(
            "vae", schedule=schedule, free_bits=spec.free_bits, word_dropout=spec.word_dropout
        )
    return make_objective(spec.objective)


def spec_model_config(
    spec: PretrainSpec | FinetuneSpec, tokenizer: Tokenizer, **overrides
) -> ModelConfig:
    """The model a run trains: its preset with the tokenizer's vocabulary, and its own dropout
    where it sets one."""
    if spec.dropout is not None:
        overrides["dropout"] = spec.dropout
    return model_config(spec.preset, tokenizer.vocab_size, **overrides)


def pretrain(
    spec: PretrainSpec, out_dir: str | Path, tokenizer: Tokenizer | None = None
) -> tuple[Seq2Seq, History]:
    """Pretrain a Seq2Seq on monolingual text with ``spec.objective``, from scratch or, with
    ``spec.init``, continuing from another model (say, a translator of another pair taught the
    child's target language by denoising); resumes if interrupted."""
    out_dir = Path(out_dir)
    tokenizer = tokenizer or course_tokenizer()
    objective = build_objective(spec, tokenizer)
    latent = spec.latent_dim if spec.objective == "vae" else 0
    config = spec_model_config(spec, tokenizer, latent_dim=latent)
    train_examples, valid_examples = pretraining_examples(spec, tokenizer)
    check_run(spec.train, train_examples, valid_examples)
    torch.manual_seed(spec.train.seed)
    model = Seq2Seq(config)
    if spec.init:
        transfer(model, spec.init, DEFAULT_PARTS, tokenizer_fingerprint=tokenizer.fingerprint())
    with checkpoint.run_folder_lock(out_dir):
        _prepare_folder(out_dir, spec, tokenizer)
        history = train(
            model,
            objective,
            train_examples,
            spec.train,
            valid=valid_examples,
            out_dir=out_dir,
            metadata=_metadata(config, tokenizer, spec),
        )
    return model, history


def task_pairs(spec: FinetuneSpec, split: str) -> list[tuple[str, str]]:
    """(source, target) pairs of a split: task-1 translation pairs, or for paraphrasing, caption 1
    and caption 2 of each task-2 image (``val``: the first ``PARAPHRASE_VALID_IMAGES`` images)."""
    if spec.task == "translate":
        return data.load_parallel(spec.src, spec.tgt, split)
    captions = data.caption_sets(spec.src, split)
    captions = captions[:PARAPHRASE_VALID_IMAGES] if split == "val" else captions
    return [(c[0], c[1]) for c in captions]


def paraphrase_test_set(lang: str) -> tuple[list[str], list[list[str]]]:
    """The paraphrase test set: caption 1 of each held-out task-2 val image, and its other four
    captions as references (images the model selection never saw)."""
    captions = data.caption_sets(lang, "val")[PARAPHRASE_VALID_IMAGES:]
    return [c[0] for c in captions], [list(c[1:]) for c in captions]


def fine_tuning_strategy(
    strategy: str, model: Seq2Seq, config: TrainConfig
) -> tuple[list, list[dict] | None]:
    """(callbacks, parameter groups) that fine-tune an initialised model with ``strategy``.

    ``full`` trains everything at one learning rate; ``freeze_encoder`` keeps the encoder fixed;
    ``gradual`` (ULMFiT, Howard & Ruder 2018) starts with encoder and embeddings frozen and
    unfreezes the encoder after a fifth of the steps and the embeddings after two fifths;
    ``discriminative`` trains embeddings at lr/10 and the encoder at lr/3 throughout.
    """
    if strategy == "freeze_encoder":
        freeze(model, ["encoder"])
        return [], parameter_groups(model, config.lr, weight_decay=config.weight_decay)
    if strategy == "gradual":
        fifth = config.max_steps // 5
        schedule = GradualUnfreezing([(fifth, ["encoder"]), (2 * fifth, ["embeddings"])])
        schedule.initial(model)
        return [schedule.on_step], parameter_groups(
            model, config.lr, weight_decay=config.weight_decay, include_frozen=True
        )
    if strategy == "discriminative":
        part_lrs = {"embeddings": config.lr / 10, "encoder": config.lr / 3}
        return [], parameter_groups(model, config.lr, part_lrs, weight_decay=config.weight_decay)
    return [], None


def _validation_bleu(
    spec: FinetuneSpec, tokenizer: Tokenizer, bleu_pairs: list[tuple[str, str]]
) -> Callable[[Seq2Seq], dict[str, float]]:
    """``finetune``'s model-selection metric: greedy BLEU of a model on ``bleu_pairs``."""

    def validation_bleu(net: Seq2Seq) -> dict[str, float]:
        hyps = translate(
            net,
            tokenizer,
            [s for s, _ in bleu_pairs],
            spec.tgt,
            beam_size=1,
            precision=spec.train.precision,
        )
        return {"val_bleu": bleu(hyps, [t for _, t in bleu_pairs]).value}

    return validation_bleu


def finetune(
    spec: FinetuneSpec,
    out_dir: str | Path,
    tokenizer: Tokenizer | None = None,
    callbacks=(),
    param_groups=None,
) -> tuple[Seq2Seq, History, TransferReport | None]:
    """Train a translator (or paraphraser) on a (sub)set of pairs, from scratch or ``spec.init``.

    Model selection uses the validation set only: validation loss and BLEU (greedy, on the first
    ``bleu_sentences`` validation pairs). ``spec.strategy`` sets up freezing or per-part learning
    rates (``fine_tuning_strategy``); explicit ``callbacks`` and ``param_groups`` are added to /
    replace what it gives, and pass through to ``tmtlib.train.train``.
    """
    out_dir = Path(out_dir)
    tokenizer = tokenizer or course_tokenizer()
    pairs = task_pairs(spec, "train")
    if spec.pairs is not None:
        pairs = data.low_resource_subset(pairs, spec.pairs, seed=spec.subset_seed)
    valid_pairs = task_pairs(spec, "val")
    config = spec_model_config(spec, tokenizer)
    torch.manual_seed(spec.train.seed)
    model = Seq2Seq(config)
    report = None
    if spec.init:
        report = transfer(
            model, spec.init, spec.parts, tokenizer_fingerprint=tokenizer.fingerprint()
        )
    strategy_callbacks, strategy_groups = fine_tuning_strategy(spec.strategy, model, spec.train)
    callbacks = [*strategy_callbacks, *callbacks]
    param_groups = param_groups if param_groups is not None else strategy_groups
    validation_bleu = _validation_bleu(spec, tokenizer, valid_pairs[: spec.bleu_sentences])
    examples = translation_examples(tokenizer, pairs, spec.tgt)
    valid = translation_examples(tokenizer, valid_pairs, spec.tgt)
    check_run(spec.train, examples, valid, validation_bleu)
    with checkpoint.run_folder_lock(out_dir):
        _prepare_folder(out_dir, spec, tokenizer)
        history = train(
            model,
            make_objective("translation", label_smoothing=spec.label_smoothing),
            examples,
            spec.train,
            valid=valid,
            evaluate=validation_bleu,
            out_dir=out_dir,
            callbacks=callbacks,
            param_groups=param_groups,
            metadata=_metadata(config, tokenizer, spec),
        )
    return model, history, report


def load(path: str | Path, map_location: str = "cpu") -> tuple[Seq2Seq, Tokenizer, dict[str, Any]]:
    """A checkpoint's model (eval mode), its tokenizer (``tokenizer.model`` beside it) and
    metadata."""
    path = Path(path)
    saved = checkpoint.load(path, map_location)
    if "model_config" not in saved:
        raise checkpoint.CheckpointError(
            f"{path} has no model configuration: not written by tmtlib"
        )
    tokenizer_file = checkpoint.RunFolder(path.parent).tokenizer
    if not tokenizer_file.exists():
        raise checkpoint.CheckpointError(f"{path} has no tokenizer.model beside it")
    tokenizer = Tokenizer(tokenizer_file)
    if saved.get("tokenizer") not in (None, tokenizer.fingerprint()):
        raise checkpoint.CheckpointError(
            f"{tokenizer_file} is not the vocabulary {path} was trained with"
        )
    model = Seq2Seq(ModelConfig(**saved["model_config"]))
    model.load_state_dict(saved["model"])
    model.eval()
    return (
        model,
        tokenizer,
        {k: v for k, v in saved.items() if k not in ("model", "optimizer", "scheduler", "rng")},
    )


def output_languages(metadata: dict[str, Any]) -> tuple[str, ...] | None:
    """The languages a checkpoint was trained to produce, from its metadata (None: not recorded)."""
    spec = metadata.get("spec") or {}
    if spec.get("kind") == "FinetuneSpec":
        return (spec["tgt"],)
    if spec.get("kind") == "PretrainSpec":
        return tuple(spec["langs"])
    return None


def scores_on_test(
    model: Seq2Seq,
    tokenizer: Tokenizer,
    src: str,
    tgt: str,
    split: str = "test_2016_flickr",
    beam_size: int = 5,
    limit: int | None = None,
    precision: str = "fp32",
) -> tuple[list[str], dict[str, Score]]:
    """Translate a task-1 split and score it with sacreBLEU: (hypotheses, {bleu, chrf, chrf++})."""
    pairs = data.load_parallel(src, tgt, split)[:limit]
    hyps = translate(
        model, tokenizer, [s for s, _ in pairs], tgt, beam_size=beam_size, precision=precision
    )
    return hyps, evaluate(hyps, [t for _, t in pairs])


def runs_dir() -> Path:
    return settings.cache_dir("runs")


def cached_run(spec, tokenizer: Tokenizer | None = None):
    """Run ``spec`` with ``tokenizer`` (default: the course's) in ``data/cache/runs/<kind>-<hash>``
    (``spec_hash``) unless it already finished there.

    A finished run is loaded from ``best.pt`` (or ``last.pt``) without training; an unfinished one
    resumes (after waiting for another process that is training it). Returns (model, history,
    folder).
    """
    kind = "pretrain" if isinstance(spec, PretrainSpec) else "finetune"
    folder = runs_dir() / f"{kind}-{spec_hash(spec, tokenizer)}"
    files = checkpoint.RunFolder(folder)
    if not files.is_finished():
        # another notebook training it: wait, then reuse
        with checkpoint.run_folder_lock(folder, wait=True):
            if kind == "pretrain" and not files.is_finished():
                pretrain(spec, folder, tokenizer)
            elif kind == "finetune" and not files.is_finished():
                finetune(spec, folder, tokenizer)
    model, _, _ = load(files.weights())
    return model, History.from_dict(files.read_history()), folder
