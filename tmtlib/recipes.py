"""The course's recipes, each in its two sizes side by side: ``full`` and ``quick``.

Full mode is what the notebooks' committed outputs and ``data/results`` report: the course model
(``tmtlib.models.PRESETS``) trained for minutes on 2 CPU cores. Quick mode (``TMT_QUICK=1``, set
by the test command) shrinks every run so that the whole course runs in CI in minutes; its numbers
show that the code runs, not what transfer learning achieves. A recipe is read with ``current()``
at the moment a run is built, never at import, so a notebook or test that switches the mode is
obeyed.

Every number here enters the settings of a run (``tmtlib.pipeline.spec_hash``), so changing one
trains a new run rather than reusing a cached one. ``tmtlib.course`` builds its runs from these;
the notebooks read the few that are theirs alone (vocabulary sizes, the copy task, notebook 4's
translator, notebook 6's budgets).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from . import settings
from .train import TrainConfig

T = TypeVar("T")


@dataclass(frozen=True)
class Sized(Generic[T]):
    """One recipe in the course's two sizes."""

    full: T
    quick: T

    def current(self) -> T:
        """The size this process runs: ``quick`` when ``TMT_QUICK`` is set (read now)."""
        return self.quick if settings.quick_mode() else self.full


@dataclass(frozen=True)
class Pretraining:
    """A pretraining run on monolingual captions: model size, captions per language (None: the
    whole pool), how to train, and the dropout (None: the preset's)."""

    preset: str
    sentences_per_lang: int | None
    train: TrainConfig
    dropout: float | None = None


@dataclass(frozen=True)
class Translation:
    """A translator's run: model size, validation sentences scored with BLEU at each evaluation
    (model selection), how to train, the label smoothing and the dropout (None: the preset's)."""

    preset: str
    bleu_sentences: int
    train: TrainConfig
    label_smoothing: float = 0.1
    dropout: float | None = None


@dataclass(frozen=True)
class LongTraining:
    """The ~60-minute full-data recipe: ``train``, whose steps follow the minutes it is given at
    ``steps_per_hour[precision]`` (None: ``train.max_steps`` whatever the minutes)."""

    train: TrainConfig
    steps_per_hour: dict[str, int] | None


# --- the course model: pretraining (notebook 3) and translators (notebooks 5 to 10) -------------

# the Transformer every pretraining run and translator uses: the course model (d_model 256,
# 3 + 3 layers) in full mode, the tiny one in quick mode
COURSE_MODEL: Sized[str] = Sized(full="course", quick="tiny")

# LM, denoising AE and VAE pretraining on English and German task-2 captions. Full: the whole
# caption pool for 300 steps of 4,096 tokens (8.7 minutes on 2 cores for the denoising AE), a
# quarter of them warm-up, evaluated four times; quick: 30 steps on 1,500 captions per language,
# at twice the learning rate because the tiny model gets so few steps
PRETRAINING: Sized[Pretraining] = Sized(
    full=Pretraining(
        preset=COURSE_MODEL.full,
        sentences_per_lang=None,
        train=TrainConfig(
            max_steps=300,
            warmup_steps=75,
            max_tokens=4096,
            lr=1e-3,
            eval_every=75,
            checkpoint_every=75,
            log_every=10,
        ),
    ),
    quick=Pretraining(
        preset=COURSE_MODEL.quick,
        sentences_per_lang=1500,
        train=TrainConfig(
            max_steps=30,
            warmup_steps=10,
            max_tokens=2048,
            lr=2e-3,
            eval_every=15,
            checkpoint_every=15,
            log_every=5,
        ),
    ),
)

# a translator fine-tuned on a parallel budget (notebooks 5 to 10): 250 steps of 4,096 tokens, a
# fifth of them warm-up, the best of five evaluations kept by greedy BLEU on 400 validation
# sentences; quick: 20 steps, BLEU on 50 sentences
FINETUNING: Sized[Translation] = Sized(
    full=Translation(
        preset=COURSE_MODEL.full,
        bleu_sentences=400,
        train=TrainConfig(
            max_steps=250,
            warmup_steps=50,
            max_tokens=4096,
            lr=1e-3,
            eval_every=50,
            checkpoint_every=50,
            log_every=10,
            select="val_bleu",
        ),
    ),
    quick=Translation(
        preset=COURSE_MODEL.quick,
        bleu_sentences=50,
        train=TrainConfig(
            max_steps=20,
            warmup_steps=5,
            max_tokens=2048,
            lr=2e-3,
            eval_every=10,
            checkpoint_every=10,
            log_every=5,
            select="val_bleu",
        ),
    ),
)

# quick mode's showcase: notebook 9's en->de translators (``tmtlib.course.SHOWCASE_RUNS``, shared
# with notebooks 5, 7, 8 and 10) use the small model for about 3.5 minutes of one core each, a
# high learning rate annealed to zero (cosine), no dropout and no label smoothing: so few steps
# underfit, and regularising them only slows learning. Test BLEU (beam 5, first 100 sentences) of
# scratch on 2,000 pairs: 7.1 after 150 steps with the preset's dropout and smoothing of 0.1, 8.4
# without dropout, 9.0 without either, 9.4 after 200 steps and 11.6 after 250 (scratch on all
# pairs: 14.5), so that every translator a learner meets in quick mode writes German worth
# reading. Full mode trains them as ``FINETUNING``.
SHOWCASE: Sized[Translation | None] = Sized(
    full=None,
    quick=Translation(
        preset="small",
        bleu_sentences=FINETUNING.quick.bleu_sentences,
        train=TrainConfig(
            max_steps=250,
            warmup_steps=25,
            max_tokens=2048,
            lr=3e-3,
            schedule="cosine",
            eval_every=50,
            checkpoint_every=50,
            log_every=10,
            select="val_bleu",
        ),
        label_smoothing=0.0,
        dropout=0.0,
    ),
)

# notebook 10's caption paraphrasers: the translators' recipe for 150 steps instead of 250, the
# course's CPU budget for one more task (quick: 20)
PARAPHRASING: Sized[TrainConfig] = Sized(
    full=replace(FINETUNING.full.train, max_steps=150, warmup_steps=30),
    quick=replace(FINETUNING.quick.train, max_steps=20, warmup_steps=5),
)

# the course model's full-data recipe (``tmtlib.course.long_train_config``): about 60 minutes on 2
# cores and never more, linear warm-up then cosine decay to zero (Loshchilov & Hutter 2017), so the
# learning rate has annealed by the end. Steps per hour measured: 1.6 s per step in fp32; 1.2 s in
# bf16 on a CPU with native bf16 (1,532 steps in 30 minutes). Quick: the quick translator's recipe
# for 30 cosine steps
LONG_TRAINING: Sized[LongTraining] = Sized(
    full=LongTraining(
        train=TrainConfig(
            max_steps=2200,
            max_minutes=60,
            warmup_steps=200,
            schedule="cosine",
            max_tokens=4096,
            lr=1e-3,
            eval_every=275,
            checkpoint_every=275,
            log_every=25,
            select="val_bleu",
        ),
        steps_per_hour={"fp32": 2200, "bf16": 3000},
    ),
    quick=LongTraining(
        train=replace(FINETUNING.quick.train, max_steps=30, schedule="cosine"),
        steps_per_hour=None,
    ),
)
# what a pretrained start's pretraining takes out of the hour: the course's 300 denoising steps
# took 8.7 minutes on 2 cores, so a translator from them trains for the other 51 (both modes)
PRETRAINING_MINUTES = 9

# sentences of a test set decoded and scored (test_2016_flickr's 1,000; notebook 10's paraphrase
# test set): all of them in full mode, the first 100 in quick mode (beam search over 1,000 sentences
# takes minutes even for a tiny model)
TEST_SENTENCES: Sized[int | None] = Sized(full=None, quick=100)

# --- notebooks 1 and 2: autoencoders and VAEs on English captions --------------------------------

# notebook 1's sentence autoencoder, bottleneck and denoising AE: the small model on 30,000 English
# captions for 300 steps. Quick: the mini model for 300 steps of 1,024 tokens at a high learning
# rate, on the same 30,000 captions so that it learns to copy rather than memorise. Exact copies
# of the first 30 validation captions of at most 12 words (greedy), plain AE: 18 (about 50 s on
# one core); with 2,048-token steps 26 in twice the time, at 3e-3 instead 9, for 150 steps none,
# at 2e-2 none (diverged); the tiny model at 1e-2, 9; the former quick recipe (the tiny model, 40
# steps at 1e-3), none ("A A A A put put ...")
AUTOENCODERS: Sized[Pretraining] = Sized(
    full=Pretraining(
        preset="small",
        sentences_per_lang=30000,
        train=TrainConfig(
            max_steps=300,
            warmup_steps=60,
            max_tokens=3072,
            lr=1e-3,
            eval_every=75,
            checkpoint_every=75,
            log_every=5,
        ),
    ),
    quick=Pretraining(
        preset="mini",
        sentences_per_lang=30000,
        train=TrainConfig(
            max_steps=300,
            warmup_steps=60,
            max_tokens=1024,
            lr=1e-2,
            eval_every=75,
            checkpoint_every=75,
            log_every=10,
        ),
    ),
)

# notebook 2's VAE trained three ways (posterior collapse and its remedies): the small model for
# 400 steps, an eighth of them warm-up. Quick: the tiny model for 200 steps at 3e-3, long enough
# that the remedied VAE decodes sentences that depend on z (its interpolation changes along the
# path)
VAE_COLLAPSE: Sized[Pretraining] = Sized(
    full=Pretraining(
        preset="small",
        sentences_per_lang=30000,
        train=TrainConfig(
            max_steps=400,
            warmup_steps=50,
            max_tokens=3072,
            lr=1e-3,
            eval_every=100,
            checkpoint_every=100,
            log_every=5,
        ),
    ),
    quick=Pretraining(
        preset="tiny",
        sentences_per_lang=1500,
        train=TrainConfig(
            max_steps=200,
            warmup_steps=25,
            max_tokens=2048,
            lr=3e-3,
            eval_every=50,
            checkpoint_every=50,
            log_every=5,
        ),
    ),
)

# the VAE measurements (``tmtlib.experiments.vae_diagnostics_record``): draws z ~ q(z|x) per
# sentence for the ELBO on every validation caption, and for the importance-weighted bound (k up to
# 50) on the first 200; quick mode draws just enough to run each estimator
VAE_DIAGNOSTICS: Sized[dict] = Sized(
    full={"samples": 10, "iw_sentences": 200, "iw_samples": 50, "iw_k": (1, 10, 50)},
    quick={"samples": 2, "iw_sentences": 20, "iw_samples": 5, "iw_k": (1, 5)},
)

# --- the notebooks' own experiments -------------------------------------------------------------

# notebook 0: SentencePiece vocabularies of these sizes, to show the pieces-per-word / rare-piece
# trade-off around the course's 8,000 (quick mode trains three of them)
VOCABULARY_SIZES: Sized[tuple[int, ...]] = Sized(
    full=(1000, 2000, 4000, 8000, 16000), quick=(1000, 4000, 8000)
)

# notebook 1: steps of the copy task (a tiny Transformer learning to copy random token sequences)
COPY_TASK_STEPS: Sized[int] = Sized(full=400, quick=150)

# notebook 4: the translator trained by ``tmtlib.train`` after the notebook's own loop: the small
# model on all pairs for 120 cosine steps; quick: the tiny one for 30
INSIDE_TRANSLATOR: Sized[Translation] = Sized(
    full=Translation(
        preset="small",
        bleu_sentences=100,
        train=TrainConfig(
            max_steps=120,
            warmup_steps=12,
            max_tokens=2048,
            lr=2e-3,
            schedule="cosine",
            eval_every=120,
            checkpoint_every=40,
            log_every=10,
            select="val_bleu",
            progress=False,
        ),
    ),
    quick=Translation(
        preset="tiny",
        bleu_sentences=50,
        train=TrainConfig(
            max_steps=30,
            warmup_steps=3,
            max_tokens=1024,
            lr=2e-3,
            schedule="cosine",
            eval_every=30,
            checkpoint_every=10,
            log_every=10,
            select="val_bleu",
            progress=False,
        ),
    ),
)

# notebook 6 (and 10's summary): the parallel budgets (None: all 29,000 pairs), each with the seeds
# it is trained with; the budgets family of ``python -m tmtlib experiment`` has more seeds and
# budgets. Quick mode's budgets are smaller, so that its runs stay distinct from notebook 9's
BUDGET_SEEDS: Sized[dict[int | None, tuple[int, ...]]] = Sized(
    full={1000: (0, 1), 3000: (0, 1), None: (0,)},
    quick={200: (0, 1), 500: (0, 1)},
)
