"""The course's experiment families, one command each, with a result file per run.

    python -m tmtlib experiment budgets --budgets 1000 3000 all --inits scratch dae --seeds 0 1
    python -m tmtlib experiment crosslingual --children fr --seeds 0
    python -m tmtlib experiment strategies
    python -m tmtlib experiment pretraining
    python -m tmtlib experiment full          # en->de on all pairs for about 60 minutes
    python -m tmtlib experiment full --targets fr   # en->fr: the parent of an en->de child

A family is a grid of cells (initialisation x parallel budget x seed, and so on). Each cell is a
``tmtlib.course`` run: cached by its settings in ``data/cache/runs``, so a family trains only
what is missing and resumes a cell that was interrupted; the notebooks use the same runs. For each
cell the family writes ``<out>/<family>/<cell>.json`` (settings, seed, data size, training time
and tokens, the validation curve, test translations and scores with sacreBLEU signatures, and the
comparison with scratch), then ``summary.md`` and ``summary.json``: mean and standard deviation
over seeds, and the gain over scratch with a paired bootstrap p-value (Koehn 2004) per seed; and
its figures (BLEU against the parallel budget with error bars, or BLEU per system; validation BLEU
against step). Summaries and figures are built from the records alone, so a fresh clone without
the run cache can add a seed to the committed table. The ``pretraining`` family records
the course's pretraining runs instead: their validation curves, and the VAE's KL and
reconstruction with and without the remedies for posterior collapse.

In quick mode (``TMT_QUICK=1``) every run is tiny and the results go to the cache, never over
the committed full-mode results in ``data/results``.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint, course, data, pipeline, plot, recipes, settings, vae_diagnostics
from .evaluate import p_phrase, p_value_text, paired_bootstrap
from .models import Seq2Seq, model_config
from .subwords import TokenizerSettings
from .train import History

logger = logging.getLogger(__name__)  # progress: one line per run ("[3/12] en-de_dae_1000_seed0")


@dataclass(frozen=True)
class Cell:
    """One run of a family: a translator from ``init`` on ``pairs`` pairs (None: all) with ``seed``,
    trained with the course's 250-step ``recipe`` or one of the ~60-minute ``LONG_RECIPES``
    (``tmtlib.course.long_train_config``; from a pretrained ``init``, the hour less its
    pretraining), on the course model or another ``preset`` of ``tmtlib.models.PRESETS``."""

    family: str
    init: str | None
    pairs: int | None
    seed: int
    src: str = "en"
    tgt: str = "de"
    strategy: str = "full"
    recipe: str = "course"
    preset: str = "course"

    @property
    def name(self) -> str:
        return f"{self.system}_seed{self.seed}"

    @property
    def variant(self) -> str:
        """The cell without its budget and seed: one line of BLEU against the parallel budget."""
        strategy = "" if self.strategy == "full" else f"_{self.strategy}"
        recipe = "" if self.recipe == "course" else f"_{self.recipe}"
        preset = "" if self.preset == "course" else f"_{self.preset}"
        return f"{self.src}-{self.tgt}_{self.init or 'scratch'}{strategy}{recipe}{preset}"

    @property
    def system(self) -> str:
        """The cell without its seed: what a summary row averages over."""
        return f"{self.variant}_{self.pairs or 'all'}"

    @property
    def scratch(self) -> Cell:
        """The scratch run this cell is compared with: same pair, budget, recipe and seed."""
        return replace(self, init=None, strategy="full")

    def run(self) -> tuple[Path, dict]:
        """Train (or load) the cell's run; returns its folder and its beam-5 test result."""
        recipe = {}
        if self.recipe in LONG_RECIPES:
            minutes = 60 - (recipes.PRETRAINING_MINUTES if self.init else 0)
            recipe = {
                "train": course.long_train_config(self.seed, LONG_RECIPES[self.recipe], minutes)
            }
        if self.preset != "course":
            recipe["preset"] = self.preset
        _, _, folder = course.translator(
            self.init,
            pairs=self.pairs,
            seed=self.seed,
            src=self.src,
            tgt=self.tgt,
            strategy=self.strategy,
            **recipe,
        )
        return folder, course.test_set_result(folder, self.src, self.tgt)


LONG_RECIPES = {"long": "fp32", "long_bf16": "bf16"}  # recipe name -> training precision


def _init(name: str) -> str | None:
    return None if name == "scratch" else name


def _budget(value: str | int | None) -> int | None:
    return None if value in (None, "all") else int(value)


def budgets(
    seeds: Iterable[int] = (0, 1, 2),
    budgets: Iterable[str | int | None] = (1000, 3000, 10000, None),
    inits: Iterable[str] = ("scratch", "lm", "dae", "vae"),
) -> list[Cell]:
    """en->de BLEU against the parallel budget, per initialisation (notebook 6)."""
    return [Cell("budgets", _init(i), _budget(b), s) for b in budgets for s in seeds for i in inits]


def crosslingual(
    seeds: Iterable[int] = (0, 1, 2),
    children: Iterable[str] = ("fr", "cs"),
    pairs: int = 3000,
    inits: Iterable[str] = ("scratch", "dae", "parent", "parent_long"),
) -> list[Cell]:
    """en->de parent to en->fr / en->cs children, against scratch and monolingual pretraining
    (notebook 7). ``parent`` is the course's 250-step parent, ``parent_long`` the ~60-minute one
    (``experiment full``)."""
    return [
        Cell("crosslingual", _init(i), pairs, s, "en", child)
        for child in children
        for s in seeds
        for i in inits
    ]


def strategies(
    seeds: Iterable[int] = (0,),
    child: str = "fr",
    pairs: int = 3000,
    names: Iterable[str] = ("full", "freeze_encoder", "gradual", "discriminative"),
) -> list[Cell]:
    """Fine-tuning strategies for the parent -> en->fr child (notebook 8)."""
    return [
        Cell("strategies", "parent", pairs, s, "en", child, strategy)
        for s in seeds
        for strategy in names
    ]


def sizes(
    seeds: Iterable[int] = (0, 1, 2),
    presets: Iterable[str] = ("tiny", "small"),
    pairs: int = 3000,
) -> list[Cell]:
    """Model complexity (notebook 10): en->de from scratch on ``pairs`` pairs with smaller models
    than the course's, the same 250-step recipe. The course model's runs of the same task are the
    ``budgets`` family's scratch cells (``size_records`` puts them together)."""
    return [Cell("sizes", None, pairs, s, preset=p) for p in presets for s in seeds]


def full(
    seeds: Iterable[int] = (0,),
    targets: Iterable[str] = ("de",),
    precision: str = "fp32",
    inits: Iterable[str] = ("scratch",),
) -> list[Cell]:
    """en->X on all pairs with the ~60-minute recipe: the best the course model does on 2 CPU cores
    (and ``parent_long``, the stronger parent: en->de for the crosslingual children, en->fr for
    the en->de child of the budgets family). ``precision="bf16"`` trains the same hour in bf16
    mixed precision, more steps on a CPU with native bf16 (never a parent: those stay fp32).
    ``inits=("dae",)`` starts from the course's denoising pretraining instead, whose minutes come
    out of the hour (``tmtlib.recipes.PRETRAINING_MINUTES``): pretraining and translation in 60."""
    recipes = {value: name for name, value in LONG_RECIPES.items()}
    if precision not in recipes:
        raise ValueError(f"precision must be one of {', '.join(recipes)}, not {precision!r}")
    inits = list(inits)
    if not set(inits) <= {"scratch", "dae"}:
        raise ValueError(
            f"the full family starts from scratch or dae (pretraining within the hour), not {inits}"
        )
    recipe = recipes[precision]
    return [
        Cell("full", _init(i), None, s, "en", tgt, recipe=recipe)
        for tgt in targets
        for s in seeds
        for i in inits
    ]


FAMILIES = {
    "budgets": budgets,
    "crosslingual": crosslingual,
    "strategies": strategies,
    "full": full,
    "sizes": sizes,
}


def results_dir() -> Path:
    """``data/results`` (committed) in full mode; a cache folder in quick mode."""
    return (
        settings.cache_dir("results-quick")
        if settings.quick_mode()
        else settings.REPO_ROOT / "data" / "results"
    )


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "quick_mode": settings.quick_mode(),
    }


def recorded_config(folder: Path) -> dict[str, Any]:
    """The run's ``config.json`` as a record keeps it: a starting checkpoint given by an absolute
    path as the run's name hashes it (``tmtlib.pipeline.checkpoint_reference``: ``runs/<run
    folder>/best.pt`` in the run cache, the file's content hash elsewhere), so records hold no
    path of the machine that made them; a relative path stays as the user gave it."""
    config = checkpoint.RunFolder(folder).read_config()
    if config.get("init") and Path(config["init"]).is_absolute():
        config["init"] = pipeline.checkpoint_reference(config["init"])
    return config


def run_history(folder: Path) -> dict[str, list]:
    """The training and validation records of the run in ``folder`` (its ``history.json``)."""
    return checkpoint.RunFolder(folder).read_history()


def record(cell: Cell, folder: Path, test: dict) -> dict[str, Any]:
    """The machine-readable account of one finished run."""
    config = recorded_config(folder)
    progress, evals = checkpoint.RunFolder(folder).read_progress(), run_history(folder)["evals"]
    best = max(evals, key=lambda e: e.get("val_bleu", float("-inf")))
    train_pairs = cell.pairs or len(data.load_parallel(cell.src, cell.tgt, "train"))
    return {
        "cell": asdict(cell) | {"name": cell.name},
        "run_folder": folder.name,
        "config": config,
        "data": {
            "train_pairs": train_pairs,
            "valid_pairs": len(data.load_parallel(cell.src, cell.tgt, "val")),
            "test_split": test["split"],
            "test_sentences": test["sentences"],
        },
        "training": {
            "steps": progress["step"],
            "seconds": round(progress["elapsed"], 1),
            "tokens": progress.get("tokens") or None,
            "stopped": progress["stopped"],
        },
        "validation": {
            "best_val_bleu_greedy": best.get("val_bleu"),
            "at_step": best["step"],
            "val_loss": best.get("val_loss"),
            "curve": evals,
        },
        "test": {
            name: test[name] for name in ("bleu", "chrf", "chrf++", "beam_size", "hypotheses")
        },
        "machine": machine(),
    }


def comparison(cell: Cell, records: dict[Cell, dict]) -> dict[str, Any] | None:
    """``cell`` against the scratch run of the same pair, budget, recipe and seed: the paired-
    bootstrap p-value (Koehn 2004) of the BLEU difference, computed once from both runs' test
    translations and then kept in the cell's record (written afresh whenever its run is), where it
    holds while the scratch run scores what it scored then. None without a scratch run, or when a
    stale comparison cannot be recomputed (records from before translations were kept)."""
    baseline = cell.scratch
    if cell.init is None or baseline not in records:
        return None
    test, base = records[cell]["test"], records[baseline]["test"]
    kept = records[cell].get("comparison")
    if kept and kept["baseline_bleu"] == base["bleu"]["score"]:
        return kept
    if "hypotheses" not in test or "hypotheses" not in base:
        return None
    refs = [
        t for _, t in data.load_parallel(cell.src, cell.tgt, records[cell]["data"]["test_split"])
    ]
    return {
        "baseline": baseline.name,
        "baseline_bleu": base["bleu"]["score"],
        "p_value": paired_bootstrap(
            base["hypotheses"], test["hypotheses"], refs[: len(test["hypotheses"])]
        ).p_value,
    }


def summarise(cells: list[Cell], records: dict[Cell, dict]) -> list[dict[str, Any]]:
    """One row per system: BLEU/chrF mean and standard deviation over seeds, the training minutes of
    all its seeds together, and against the scratch system of the same pair and budget, the mean
    gain and each seed's bootstrap p-value (``comparison``: left out unless every seed has one)."""
    systems: dict[str, list[Cell]] = {}
    for cell in cells:
        systems.setdefault(cell.system, []).append(cell)
    rows = []
    for system, members in systems.items():
        tests = [records[c]["test"] for c in members]
        bleus = [test["bleu"]["score"] for test in tests]
        row = {
            "system": system,
            "seeds": [c.seed for c in members],
            "bleu_mean": statistics.mean(bleus),
            "bleu_std": statistics.stdev(bleus) if len(bleus) > 1 else None,
            "chrf_mean": statistics.mean(test["chrf"]["score"] for test in tests),
            "training_minutes": sum(records[c]["training"]["seconds"] / 60 for c in members),
        }
        if members[0].init is not None and all(c.scratch in records for c in members):
            row["gain_over_scratch"] = statistics.mean(
                bleu - records[c.scratch]["test"]["bleu"]["score"]
                for c, bleu in zip(members, bleus)
            )
            compared = [records[c].get("comparison") for c in members]
            if all(compared):
                row["p_values"] = [c["p_value"] for c in compared]
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Versus:
    """System ``b`` against system ``a`` (names as ``Cell.system``), from their records: test BLEU
    by seed, and each kind of evidence the records allow. ``bootstrap_p``: for each seed whose two
    runs both kept their test translations (or whose ``b`` run kept its comparison with ``a``, its
    scratch run), Koehn's (2004) paired bootstrap p-value, one-sided: the share of resampled test
    sets on which ``b`` does not beat ``a``. ``rank_p``: an exact one-sided rank test over seeds
    (``seed_rank_p``), for when the records hold scores but no translations."""

    a: str
    b: str
    a_scores: dict[int, float]
    b_scores: dict[int, float]
    bootstrap_p: dict[int, float]

    @property
    def delta(self) -> float:
        """Mean BLEU of ``b`` minus mean BLEU of ``a``."""
        return statistics.mean(self.b_scores.values()) - statistics.mean(self.a_scores.values())

    @property
    def rank_p(self) -> float:
        return seed_rank_p(list(self.a_scores.values()), list(self.b_scores.values()))

    @property
    def untested_seeds(self) -> list[int]:
        """Seeds both systems ran whose records keep no translations (no paired bootstrap)."""
        return sorted((self.a_scores.keys() & self.b_scores.keys()) - self.bootstrap_p.keys())

    @property
    def established(self) -> bool:
        """Whether the records show ``b`` better than ``a`` at the 5% level: every seed's paired
        bootstrap (p < 0.05), with ``b`` ahead on any seed that has scores but no translations;
        or else the rank test over seeds (p ≤ 0.05; its floor is 0.05 with 3 seeds against 3, and
        higher with fewer)."""
        if self.bootstrap_p:
            return all(p < 0.05 for p in self.bootstrap_p.values()) and all(
                self.b_scores[seed] > self.a_scores[seed] for seed in self.untested_seeds
            )
        return self.rank_p <= 0.05 + 1e-12

    def evidence(self) -> str:
        """The evidence in words: "paired bootstrap p ≤ 0.001 (seed 0)" ("... on each of the 3
        seeds" when every seed gives the same), "3 seeds against 3, rank
        test over seeds p = 0.050", or "1 seed against 1, no translations recorded: no test"."""
        seeds = (
            f"{len(self.b_scores)} seed{'s' if len(self.b_scores) > 1 else ''} against "
            f"{len(self.a_scores)}"
        )
        if self.bootstrap_p:
            phrases = {seed: p_phrase(p) for seed, p in self.bootstrap_p.items()}
            if len(phrases) > 1 and len(set(phrases.values())) == 1:
                tested = (
                    f"paired bootstrap p {phrases[min(phrases)]} on each of the {len(phrases)} "
                    "seeds"
                )
            else:
                tested = "paired bootstrap " + ", ".join(
                    f"p {phrase} (seed {seed})" for seed, phrase in phrases.items()
                )
            gaps = {seed: self.b_scores[seed] - self.a_scores[seed] for seed in self.untested_seeds}
            return tested + "".join(
                f"; seed {seed}, without translations: {gap:+.1f}" for seed, gap in gaps.items()
            )
        if (
            min(len(self.a_scores), len(self.b_scores)) == 1
            and max(len(self.a_scores), len(self.b_scores)) < 3
        ):
            return f"{seeds}, no translations recorded: no test"
        return f"{seeds}, rank test over seeds p {p_phrase(self.rank_p)}"


def seed_rank_p(a: list[float], b: list[float]) -> float:
    """Exact one-sided Mann–Whitney test that ``b``'s seeds score higher than ``a``'s: of all ways
    to split the pooled scores into groups of these sizes, the share whose ``b`` group wins at least
    as many of the (b, a) pairs as observed (a tie counts half). No distribution is assumed, so a
    few seeds give little: complete separation of 3 seeds from 3 gives 1/20 = 0.05, of 3 from 1
    1/4."""
    pooled = a + b

    def wins(group: tuple[int, ...]) -> float:
        rest = [pooled[i] for i in range(len(pooled)) if i not in group]
        return sum((pooled[i] > x) + 0.5 * (pooled[i] == x) for i in group for x in rest)

    observed = wins(tuple(range(len(a), len(pooled))))
    splits = [wins(group) for group in itertools.combinations(range(len(pooled)), len(b))]
    return sum(w >= observed - 1e-12 for w in splits) / len(splits)


def versus(records: dict[Cell, dict], a: str, b: str) -> Versus:
    """System ``b`` against system ``a`` from ``records`` (``recorded``; several families' records
    may be merged): their scores by seed and, seed by seed, the paired bootstrap where the records
    allow it (both runs' translations, or ``b``'s kept comparison with its scratch run ``a``)."""
    runs = {name: {cell.seed: cell for cell in records if cell.system == name} for name in (a, b)}
    for name, cells in runs.items():
        if not cells:
            raise ValueError(f"no recorded run of {name!r}")
    bootstrap_p = {}
    for seed in sorted(runs[a].keys() & runs[b].keys()):
        cell_a, cell_b = runs[a][seed], runs[b][seed]
        test_a, test_b = records[cell_a]["test"], records[cell_b]["test"]
        kept = records[cell_b].get("comparison")
        if kept and kept["baseline"] == cell_a.name:
            bootstrap_p[seed] = kept["p_value"]
        elif "hypotheses" in test_a and "hypotheses" in test_b:
            refs = [
                t
                for _, t in data.load_parallel(
                    cell_b.src, cell_b.tgt, records[cell_b]["data"]["test_split"]
                )
            ]
            bootstrap_p[seed] = paired_bootstrap(
                test_a["hypotheses"], test_b["hypotheses"], refs[: len(test_b["hypotheses"])]
            ).p_value
    scores = {
        name: {seed: records[cell]["test"]["bleu"]["score"] for seed, cell in sorted(cells.items())}
        for name, cells in runs.items()
    }
    return Versus(a, b, scores[a], scores[b], bootstrap_p)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| system | seeds | BLEU (mean ± sd) | chrF | gain over scratch | bootstrap p per "
        "seed | training minutes |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        spread = f" ± {row['bleu_std']:.1f}" if row["bleu_std"] is not None else ""
        gain = f"{row['gain_over_scratch']:+.1f}" if "gain_over_scratch" in row else ""
        p_values = ", ".join(p_value_text(p) for p in row.get("p_values", []))
        lines.append(
            f"| {row['system']} | {len(row['seeds'])} | {row['bleu_mean']:.1f}{spread} | "
            f"{row['chrf_mean']:.1f} | {gain} | {p_values} | {row['training_minutes']:.0f} |"
        )
    return "\n".join(lines)


def budget_table(cells: list[Cell], rows: list[dict[str, Any]]) -> str:
    """Test BLEU, mean ± sd (seeds), of each variant (row) at each parallel budget (column), with
    the gain over scratch at that budget: the numbers behind the BLEU-against-pairs figure."""
    by_system = {row["system"]: row for row in rows}
    budgets = sorted({c.pairs for c in cells}, key=lambda pairs: pairs or 10**9)
    lines = [
        "| initialisation | "
        + " | ".join(f"{pairs:,}" if pairs else "all" for pairs in budgets)
        + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for variant in dict.fromkeys(c.variant for c in cells):
        entries = []
        for pairs in budgets:
            row = by_system.get(f"{variant}_{pairs or 'all'}")
            if row is None:
                entries.append("")
                continue
            spread = f" ± {row['bleu_std']:.1f}" if row["bleu_std"] is not None else ""
            gain = f", {row['gain_over_scratch']:+.1f}" if "gain_over_scratch" in row else ""
            entries.append(f"{row['bleu_mean']:.1f}{spread} ({len(row['seeds'])}{gain})")
        lines.append(f"| {variant} | " + " | ".join(entries) + " |")
    return "\n".join(lines)


COMMITTED = settings.REPO_ROOT / "data" / "results"


def committed(*families: str) -> dict[Cell, dict]:
    """The committed full-mode study in ``data/results``, read (never trained) in either mode: the
    records of ``families`` together, by cell. The notebooks show it beside the learner's own
    runs."""
    return {
        cell: saved for family in families for cell, saved in recorded(COMMITTED / family).items()
    }


def recorded(folder: Path) -> dict[Cell, dict]:
    """Every run recorded in a family folder: its record, by cell."""
    records = {}
    for path in sorted(folder.glob("*.json")):
        if path.name != "summary.json":
            saved = json.loads(path.read_text())
            records[Cell(**{k: v for k, v in saved["cell"].items() if k != "name"})] = saved
    return records


def size_records(root: Path = COMMITTED, pairs: int = 3000) -> dict[Cell, dict]:
    """The runs of the size ablation under a results folder (default: the committed study): the
    ``sizes`` family and the course model's en->de scratch runs on the same pairs and recipe from
    ``budgets``, by cell."""
    study = {**recorded(root / "budgets"), **recorded(root / "sizes")}
    return {
        cell: saved
        for cell, saved in study.items()
        if cell.init is None
        and cell.pairs == pairs
        and (cell.src, cell.tgt, cell.recipe) == ("en", "de", "course")
    }


def size_table(records: dict[Cell, dict]) -> str:
    """The size ablation (``size_records``) as a markdown table, smallest model first: parameters,
    seeds, training minutes per run and test BLEU / chrF, mean ± sample sd over seeds."""
    by_preset: dict[str, list[dict]] = {}
    for cell, saved in records.items():
        by_preset.setdefault(cell.preset, []).append(saved)
    lines = [
        "| model | trainable parameters | seeds | training minutes per run | test BLEU "
        "| test chrF |",
        "|---|---|---|---|---|---|",
    ]
    for preset in sorted(by_preset, key=preset_parameters):
        runs = by_preset[preset]
        bleu = [saved["test"]["bleu"]["score"] for saved in runs]
        minutes = [saved["training"]["seconds"] / 60 for saved in runs]
        chrf = statistics.mean(saved["test"]["chrf"]["score"] for saved in runs)
        spread = f" ± {statistics.stdev(bleu):.1f}" if len(bleu) > 1 else ""
        lines.append(
            f"| {preset} | {preset_parameters(preset):,} | {len(runs)} | "
            f"{statistics.mean(minutes):.1f} | {statistics.mean(bleu):.1f}{spread} | {chrf:.1f} |"
        )
    return "\n".join(lines)


def bleu_by_system(records: dict[Cell, dict]) -> dict[str, list[float]]:
    """Test BLEU of every recorded seed, by system (``Cell.system``)."""
    systems: dict[str, list[float]] = {}
    for cell, saved in records.items():
        systems.setdefault(cell.system, []).append(saved["test"]["bleu"]["score"])
    return systems


def ranked_systems(records: dict[Cell, dict]) -> list[str]:
    """The recorded systems, best mean test BLEU over seeds first."""
    systems = bleu_by_system(records)
    return sorted(systems, key=lambda system: statistics.mean(systems[system]), reverse=True)


def strategy_ranking(records: dict[Cell, dict]) -> str:
    """The ``strategies`` family as a ranking, best mean test BLEU first: each strategy's seeds
    and BLEU (mean ± sample sd), and its difference from the strategy ranked just above with the
    evidence for it (``versus``): the question notebook 8 asks is the order, not the gain over
    scratch."""
    systems = bleu_by_system(records)
    names = {cell.system: label(cell) for cell in records}
    ranked = ranked_systems(records)
    lines = [
        "| strategy | seeds | test BLEU | behind the strategy above (evidence it is behind) |",
        "|---|---|---|---|",
    ]
    for above, system in zip([None, *ranked], ranked):
        scores = systems[system]
        spread = f" ± {statistics.stdev(scores):.1f}" if len(scores) > 1 else ""
        step = ""
        if above is not None:
            result = versus(records, system, above)
            step = f"{-result.delta:+.1f} ({result.evidence()})"
        lines.append(
            f"| {names[system]} | {len(scores)} | {statistics.mean(scores):.1f}{spread} | {step} |"
        )
    return "\n".join(lines)


@functools.cache
def preset_parameters(preset: str) -> int:
    """Trainable parameters of a model size with the course's vocabulary (tied embeddings once);
    counted once per process (it builds the model)."""
    vocab_size = TokenizerSettings().vocab_size
    return Seq2Seq(model_config(preset, vocab_size)).num_parameters()


STRATEGY_NAMES = {
    "full": "full fine-tuning",
    "freeze_encoder": "frozen encoder",
    "gradual": "gradual unfreezing",
    "discriminative": "discriminative rates",
}
RECIPE_NAMES = {"course": "", "long": "60 min", "long_bf16": "60 min, bf16"}
BLEU_AXIS = "test BLEU (test_2016_flickr, beam 5)"


def label(cell: Cell) -> str:
    """A cell's system in words, for legends and tick labels: "DAE", "60-min parent",
    "scratch, 60 min", "frozen encoder" (a strategy of the ``strategies`` family's one parent)."""
    if cell.family == "strategies":
        return STRATEGY_NAMES[cell.strategy]
    words = [
        plot.INIT_NAMES.get(cell.init or "scratch", cell.init or "scratch"),
        RECIPE_NAMES[cell.recipe],
    ]
    if cell.strategy != "full":
        words.append(STRATEGY_NAMES[cell.strategy])
    if cell.preset != "course":
        words.append(f"{cell.preset} model")
    return ", ".join(word for word in words if word)


def _in_order(records: dict[Cell, dict]) -> dict[Cell, dict]:
    """Records in the order of the figures: scratch first, then ``plot.INIT_COLORS``'s order."""
    order = list(plot.INIT_COLORS)
    return dict(
        sorted(
            records.items(),
            key=lambda item: (
                order.index(item[0].init or "scratch"),
                item[0].recipe,
                list(STRATEGY_NAMES).index(item[0].strategy),
            ),
        )
    )


def draw_budgets(records: dict[Cell, dict], ax) -> None:
    """Test BLEU against the parallel budget, one line per initialisation: mean ± sample sd over
    seeds, the seed counts in the legend (the ``budgets`` family's figure)."""
    by_init: dict[str, dict[int, list[float]]] = {}
    all_pairs = {
        pair: len(data.load_parallel(*pair, "train")) for pair in {(c.src, c.tgt) for c in records}
    }
    for cell, saved in _in_order(records).items():
        pairs = cell.pairs or all_pairs[cell.src, cell.tgt]
        by_init.setdefault(cell.init or "scratch", {}).setdefault(pairs, []).append(
            saved["test"]["bleu"]["score"]
        )
    plot.score_curves(by_init, ax=ax, metric=BLEU_AXIS, names=plot.INIT_NAMES)
    pairs = " / ".join(sorted({f"{c.src}→{c.tgt}" for c in records}))
    ax.set_title(f"{pairs}: test BLEU against the parallel pairs (mean ± sample sd over seeds)")


def color(cell: Cell) -> str | None:
    """A cell's colour in the figures: its initialisation's (``plot.INIT_COLORS``), in a lighter
    shade for a model smaller than the course's (``plot.SIZE_COLORS``), in one of the parent's
    blues for a fine-tuning strategy (``plot.STRATEGY_COLORS``)."""
    if cell.preset != "course" and cell.init is None:
        return plot.SIZE_COLORS.get(cell.preset)
    if cell.family == "strategies":
        return plot.STRATEGY_COLORS[cell.strategy]
    return plot.init_color(cell.init or "scratch")


def draw_sizes(records: dict[Cell, dict], axes) -> None:
    """The size ablation (``size_records``): test BLEU against trainable parameters, and the
    training minutes of each size, mean ± sample sd over seeds."""
    bleu: dict[int, list[float]] = {}
    minutes: dict[str, list[float]] = {}
    colors: dict[str, str] = {}
    for cell, saved in sorted(records.items(), key=lambda item: preset_parameters(item[0].preset)):
        parameters = preset_parameters(cell.preset)
        bleu.setdefault(parameters, []).append(saved["test"]["bleu"]["score"])
        name = f"{cell.preset}\n{parameters / 1e6:.1f} M"
        minutes.setdefault(name, []).append(saved["training"]["seconds"] / 60)
        colors[name] = color(cell)
    plot.score_curves(
        {"scratch": bleu},
        ax=axes[0],
        metric=BLEU_AXIS,
        xlabel="trainable parameters",
        names={"scratch": "from scratch"},
    )
    pairs = next(iter(records)).pairs
    axes[0].set_title(f"en→de, {pairs:,} pairs, 250 steps: test BLEU by model size")
    plot.bars(
        minutes,
        ax=axes[1],
        ylabel="training minutes (wall clock, 2 CPU cores)",
        colors=colors,
    )
    axes[1].set_title("training time of the 250 steps")


def draw_systems(records: dict[Cell, dict], axes) -> None:
    """Test BLEU per system, mean ± sample sd with its seed count, on one of ``axes`` per language
    pair (scores of different pairs are not comparable), in the order of ``language_pairs``."""
    for ax, (src, tgt) in zip(np.atleast_1d(axes), language_pairs(records)):
        systems: dict[str, list[float]] = {}
        colors: dict[str, str | None] = {}
        for cell, saved in _in_order(records).items():
            if (cell.src, cell.tgt) == (src, tgt):
                systems.setdefault(label(cell), []).append(saved["test"]["bleu"]["score"])
                colors[label(cell)] = color(cell)
        plot.bars(systems, ax=ax, ylabel=BLEU_AXIS, colors=colors)
        ax.set_title(f"{src}→{tgt}")


def language_pairs(records: dict[Cell, dict]) -> list[tuple[str, str]]:
    return sorted({(c.src, c.tgt) for c in records})


def figures(family: str, records: dict[Cell, dict], folder: Path) -> list[Path]:
    """The family's figures beside its records: ``draw_budgets`` (budgets) or ``draw_systems``
    (the others); and validation BLEU (greedy) against step for every system's first seed with a
    recorded curve, one panel per budget (a system whose records all predate recorded curves is
    left out). Every initialisation has its ``plot.INIT_COLORS`` colour."""
    written = []
    if family == "sizes":
        fig, axes = _figure((12.5, 4.4), columns=2)
        draw_sizes(size_records(folder.parent), axes)
        name = "bleu_by_size.png"
    elif family == "budgets":
        fig, ax = _figure((8.5, 4.2))
        draw_budgets(records, ax)
        name = "bleu_vs_pairs.png"
    else:
        columns = len(language_pairs(records))
        fig, axes = _figure((max(5.2 * columns + 0.6, 7.0), 4.4), columns=columns)
        draw_systems(records, axes)
        fig.suptitle("test BLEU: mean ± sample sd over seeds (seed count on each bar)")
        name = "bleu.png"
    written.append(_save(fig, folder / name))
    first_seed: dict[str, Cell] = {}  # each system's first seed with a recorded curve
    for cell in sorted(records, key=lambda c: c.seed):
        if "curve" in records[cell]["validation"]:
            first_seed.setdefault(cell.system, cell)
    uncurved = sorted({c.system for c in records} - first_seed.keys())
    if uncurved:
        logger.warning(
            f"learning_curves.png leaves out {len(uncurved)} systems ({', '.join(uncurved)}): "
            "no seed of theirs has a recorded validation curve (records from before curves were "
            "kept)"
        )
    if not first_seed:
        return written
    budgets = sorted({c.pairs for c in first_seed.values()}, key=lambda pairs: pairs or 10**9)
    colors = {label(c): color(c) for c in first_seed.values()}
    fig, axes = _figure((4.6 * len(budgets) + 1.4, 4.2), columns=len(budgets))
    for ax, pairs in zip(np.atleast_1d(axes), budgets):
        shown = sorted(
            (c for c in first_seed.values() if c.pairs == pairs), key=lambda c: c.variant
        )
        names = {c: f"{c.src}→{c.tgt} {label(c)} (seed {c.seed})" for c in shown}
        plot.learning_curves(
            {names[c]: History(evals=records[c]["validation"]["curve"]) for c in shown},
            key="val_bleu",
            evals=True,
            ax=ax,
            title=f"{pairs:,} pairs" if pairs else "all pairs",
            colors={names[c]: colors[label(c)] for c in shown},
        )
    which = (
        f"the {len(first_seed)} of {len(first_seed) + len(uncurved)} systems whose records kept "
        "a curve, first such seed"
        if uncurved
        else "one seed of each system"
    )
    fig.suptitle(f"validation BLEU (greedy, 400 sentences):\n{which}")
    written.append(_save(fig, folder / "learning_curves.png"))
    return written


def _figure(size: tuple[float, float], columns: int = 1):
    """A figure for a file, outside pyplot: no backend switch, nothing left open in a notebook."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(1, columns)


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def run_family(family: str, cells: list[Cell], out: Path | None = None) -> list[dict[str, Any]]:
    """Run every cell (training only what is missing) and write one file per run; then summarise
    every run recorded in the family's folder, so that commands run one after another (say, more
    seeds for the small budgets only) add up to one table."""
    folder = (out or results_dir()) / family
    folder.mkdir(parents=True, exist_ok=True)
    for number, cell in enumerate(cells, 1):
        logger.info(f"[{number}/{len(cells)}] {cell.name}")
        run_folder, test = cell.run()
        checkpoint.write_json_atomic(record(cell, run_folder, test), folder / f"{cell.name}.json")
    records = recorded(folder)
    cells = sorted(
        records,
        key=lambda c: (
            c.src,
            c.tgt,
            c.pairs or 10**9,
            c.recipe,
            c.init or "",
            c.strategy != "full",
            c.strategy,
            c.seed,
        ),
    )
    for (
        cell
    ) in cells:  # each record keeps its comparison with scratch, for summaries without translations
        saved, compared = records[cell], comparison(cell, records)
        if compared != saved.get("comparison"):
            saved.pop("comparison", None)
            saved.update({"comparison": compared} if compared else {})
            checkpoint.write_json_atomic(saved, folder / f"{cell.name}.json")
    rows = summarise(cells, records)
    signature = records[cells[0]]["test"]["bleu"]["signature"]
    checkpoint.write_json_atomic(
        {"rows": rows, "signature": signature, "machine": machine()}, folder / "summary.json"
    )
    pivot = (
        "\n\nBLEU by parallel budget: mean ± sd (seeds, gain over "
        f"scratch)\n\n{budget_table(cells, rows)}"
        if len({c.pairs for c in cells}) > 1
        else ""
    )
    if family == "strategies":
        pivot += (
            "\n\nThe strategies ranked; each against the one above, paired bootstrap on the seeds "
            f"that kept their translations\n\n{strategy_ranking(records)}"
        )
    minutes = sum(records[c]["training"]["seconds"] / 60 for c in cells)
    checkpoint.write_text_atomic(
        f"{markdown_table(rows)}\n\ntest_2016_flickr, beam 5; {signature}; training minutes: wall "
        f"clock of the optimiser steps, all seeds together, {minutes:.0f} in all{pivot}\n",
        folder / "summary.md",
    )
    figures(family, {cell: records[cell] for cell in cells}, folder)
    return rows


# --- pretraining ---------------------------------------------------------------------------------


def pretraining_specs() -> dict[str, pipeline.PretrainSpec]:
    """Notebook 3's pretraining runs (LM, denoising AE, VAE on the course model), notebook 2's
    VAE trained without and with the remedies for posterior collapse, and the denoising stages
    of the budgets family's ``parent_dae`` starts (from the en->fr parent, for en->de children)."""
    specs = {objective: course.pretrain_spec(objective) for objective in course.PRETRAIN_OBJECTIVES}
    specs |= {f"vae_{key}": spec for key, spec in course.vae_collapse_specs().items()}
    return specs | {
        init: course.denoised_parent_spec(init, ("en", "de")) for init in course.DENOISED_PARENTS
    }


def vae_specs() -> dict[str, pipeline.PretrainSpec]:
    """The VAE runs of ``pretraining_specs`` (without building the others' specs, which trains the
    parent they start from), keyed as ``VAE_RUNS``."""
    return {f"vae_{key}": spec for key, spec in course.vae_collapse_specs().items()} | {
        "vae": course.pretrain_spec("vae")
    }


def pretraining_record(name: str, folder: Path) -> dict[str, Any]:
    progress, history = checkpoint.RunFolder(folder).read_progress(), run_history(folder)
    return {
        "run": name,
        "run_folder": folder.name,
        "config": recorded_config(folder),
        "training": {
            "steps": progress["step"],
            "seconds": round(progress["elapsed"], 1),
            "tokens": progress.get("tokens") or None,
            "stopped": progress["stopped"],
        },
        "final_training_record": history["steps"][-1],
        "final_validation": history["evals"][-1],
        "machine": machine(),
    }


def run_pretraining(out: Path | None = None) -> list[dict[str, Any]]:
    """Train (or load) every pretraining run, write a record per run, a summary and two figures:
    validation loss against step per objective, and the VAE's reconstruction and KL terms with
    and without remedies."""
    folder = (out or results_dir()) / "pretraining"
    folder.mkdir(parents=True, exist_ok=True)
    histories, rows = {}, []
    specs = pretraining_specs()
    for number, (name, spec) in enumerate(specs.items(), 1):
        logger.info(f"[{number}/{len(specs)}] {name}")
        _, histories[name], run_folder = pipeline.cached_run(spec, pipeline.course_tokenizer())
        saved = pretraining_record(name, run_folder)
        checkpoint.write_json_atomic(saved, folder / f"{name}.json")
        final = saved["final_validation"]
        rows.append(
            {
                "run": name,
                "steps": saved["training"]["steps"],
                "minutes": saved["training"]["seconds"] / 60,
                **{key: final[key] for key in ("val_loss", "val_nll", "val_kl") if key in final},
            }
        )
    checkpoint.write_json_atomic({"rows": rows, "machine": machine()}, folder / "summary.json")
    run_vae_diagnostics(out)
    fig, ax = _figure((6.5, 4))
    # the longer denoising stage first: the shorter one, identical up to its last step, is drawn
    # over it
    curves = (*course.PRETRAIN_OBJECTIVES, *reversed(course.DENOISED_PARENTS))
    plot.learning_curves(
        {name: histories[name] for name in curves},
        key="val_loss",
        evals=True,
        ax=ax,
        title="pretraining: validation loss per token (course model)",
    )
    _save(fig, folder / "pretraining_curves.png")
    vae_collapse_figure(out, {f"vae_{key}": histories[f"vae_{key}"] for key in course.VAE_VARIANTS})
    return rows


def vae_collapse_figure(
    out: Path | None = None, histories: dict[str, History] | None = None
) -> Path:
    """``pretraining/vae_collapse.png``: notebook 2's three VAEs (``course.vae_collapse_specs``),
    their reconstruction and KL terms and the KL weight against step (``plot.vae_terms``), from
    ``histories`` by run name (``vae_no_remedy`` ...) or else from the runs (trained first if
    missing): drawn on its own, it needs none of the other pretraining runs."""
    if histories is None:
        tokenizer = pipeline.course_tokenizer()
        histories = {
            f"vae_{key}": pipeline.cached_run(spec, tokenizer)[1]
            for key, spec in course.vae_collapse_specs().items()
        }
    histories = {course.VAE_VARIANTS[key]: histories[f"vae_{key}"] for key in course.VAE_VARIANTS}
    folder = (out or results_dir()) / "pretraining"
    folder.mkdir(parents=True, exist_ok=True)
    fig, axes = _figure((15, 3.8), columns=3)
    plot.vae_terms(histories, axes=axes)
    return _save(fig, folder / "vae_collapse.png")


# --- the VAEs, measured ---------------------------------------------------------------------------

VAE_RUNS = course.VAE_RUNS


def vae_diagnostics_record(name: str) -> dict[str, Any]:
    """``tmtlib.vae_diagnostics.measure`` of the pretraining run ``name`` (one of ``VAE_RUNS``,
    trained first if missing) on its validation captions, from its selected checkpoint, and the
    gradient each cross-attention projection gets from its loss on 64 of them, and how far each
    moved from its initialisation. Samples drawn: ``recipes.VAE_DIAGNOSTICS``."""
    spec, tokenizer = vae_specs()[name], pipeline.course_tokenizer()
    model, _, folder = pipeline.cached_run(spec, tokenizer)
    examples = pipeline.pretraining_validation(spec, tokenizer)
    started = time.perf_counter()
    measured = vae_diagnostics.measure(model, examples, **recipes.VAE_DIAGNOSTICS.current())
    objective = pipeline.build_objective(spec, tokenizer)
    torch.manual_seed(0)  # word dropout and z are drawn from the global generator
    gradients = vae_diagnostics.cross_attention_gradients(model, objective, examples[:64])
    # the initialisation the run started from (tmtlib.pipeline.pretrain)
    torch.manual_seed(spec.train.seed)
    change = vae_diagnostics.cross_attention_change(model, type(model)(model.config))
    return {
        "run": name,
        "run_folder": folder.name,
        "checkpoint_step": checkpoint.load(checkpoint.RunFolder(folder).best)["progress"]["step"],
        "examples": (
            f"the run's validation captions ({', '.join(spec.langs)}; task-2 val, the first "
            "500 per language)"
        ),
        **measured,
        "cross_attention_gradient_norm": gradients,
        "cross_attention_change_from_init": change,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }


def run_vae_diagnostics(out: Path | None = None, runs: Iterable[str] = VAE_RUNS) -> dict[str, dict]:
    """Measure each VAE of ``runs`` and keep its record in ``pretraining/vae_diagnostics.json``
    (records of other runs already there are kept), then rewrite ``summary.md``."""
    folder = (out or results_dir()) / "pretraining"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vae_diagnostics.json"
    records = json.loads(path.read_text())["runs"] if path.exists() else {}
    for name in runs:
        logger.info(f"measuring {name}")
        records[name] = vae_diagnostics_record(name)
    records = {name: records[name] for name in VAE_RUNS if name in records}
    checkpoint.write_json_atomic({"runs": records}, path)
    write_pretraining_summary(folder)
    return records


def write_pretraining_summary(folder: Path) -> Path:
    """``summary.md`` of the pretraining folder from its records: validation figures per run
    (``summary.json``), then the VAE measurements (``vae_diagnostics.json``), whichever exist."""
    parts = []
    if (folder / "summary.json").exists():
        rows = json.loads((folder / "summary.json").read_text())["rows"]
        lines = [
            "| run | steps | training minutes | val loss | val NLL | val KL |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['run']} | {r['steps']} | {r['minutes']:.1f} | {r['val_loss']:.3f} "
            f"| {r.get('val_nll', float('nan')):.3f} | {r.get('val_kl', float('nan')):.4f} |"
            for r in rows
        ]
        parts.append(
            "\n".join(lines)
            + "\n\nper token, on the held-out captions; for a VAE the NLL is at z = mu, "
            "so val loss is not -ELBO (see below)"
        )
    if (folder / "vae_diagnostics.json").exists():
        parts.append(
            vae_diagnostics_table(json.loads((folder / "vae_diagnostics.json").read_text())["runs"])
        )
    return checkpoint.write_text_atomic("\n\n".join(parts) + "\n", folder / "summary.md")


def measured_on(records: dict[str, dict]) -> str:
    """Which captions the VAEs of ``records`` were measured on, in words: one phrase when they
    share them, else each phrase with the runs it applies to."""
    runs_by_examples: dict[str, list[str]] = {}
    for name, r in records.items():
        runs_by_examples.setdefault(r["examples"], []).append(name)
    if len(runs_by_examples) == 1:
        return next(iter(runs_by_examples))
    return "; ".join(f"{', '.join(names)}: {text}" for text, names in runs_by_examples.items())


def vae_diagnostics_table(records: dict[str, dict]) -> str:
    """The VAE measurements as a markdown table with a note on units."""
    first = next(iter(records.values()))
    iw = first["importance_weighted"]
    k = max(iw["nll_bound"], key=int)
    lines = [
        "| run | step | -ELBO | E_q[-log p(x\\|z)] | -log p(x\\|mu) | KL | -ELBO (subset) "
        f"| IW bound, k={k} (subset) | active units | I(x;z) | KL per sentence | NLL from "
        "another's z | gap |",
        "|---" * 13 + "|",
    ]
    for name, r in records.items():
        shuffled, bound = r["shuffled_z"], r["importance_weighted"]
        lines.append(
            f"| {name} | {r['checkpoint_step']} | {r['neg_elbo']:.3f} | {r['reconstruction']:.3f} "
            f"| {r['reconstruction_at_mean']:.3f} | {r['kl']:.4f} | {bound['neg_elbo']:.3f} "
            f"| {bound['nll_bound'][k]:.3f} | {r['active_units']} / {r['latent_dim']} "
            f"| {r['mutual_information']:.2f} | {r['kl_per_sentence']:.2f} | "
            f"{shuffled['other_z']:.3f} "
            f"| {shuffled['gap']:+.3f} ({100 * shuffled['relative_gap']:+.1f}%) |"
        )
    return (
        "\n".join(lines)
        + f"\n\nVAE diagnostics (`tmtlib.vae_diagnostics`) on {measured_on(records)}, from the "
        "selected checkpoint; nats per token except I(x;z) and KL per sentence (nats). -ELBO = "
        f"E_q[-log p(x|z)] ({first['samples']} samples z ~ q(z|x) per sentence) + KL; -log p(x|mu) "
        "is what training's validation reports. On the fixed subset of the first "
        f"{iw['sentences']} captions, from {iw['samples']} samples each: -ELBO and the "
        "importance-weighted upper bound on -log p(x) (Burda et al. 2016). Active units: "
        "Cov_x(E_q[z_d]) > 0.01 (Burda et al. 2016); I(x;z) as He et al. (2019), at most log N. "
        "Shuffled z: each sentence decoded from another sentence's posterior mean instead of its "
        "own; gap: how much worse."
    )
