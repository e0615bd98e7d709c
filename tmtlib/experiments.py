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

import json
import os
import platform
import statistics
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from . import checkpoint, course, data, pipeline, plot, settings, vae_diagnostics
from .evaluate import paired_bootstrap
from .train import History


@dataclass(frozen=True)
class Cell:
    """One run of a family: a translator from ``init`` on ``pairs`` pairs (None: all) with ``seed``,
    trained with the course's 250-step ``recipe`` or one of the ~60-minute ``LONG_RECIPES``
    (``tmtlib.course.long_train_config``; from a pretrained ``init``, the hour less its pretraining)."""

    family: str
    init: str | None
    pairs: int | None
    seed: int
    src: str = "en"
    tgt: str = "de"
    strategy: str = "full"
    recipe: str = "course"

    @property
    def name(self) -> str:
        return f"{self.system}_seed{self.seed}"

    @property
    def variant(self) -> str:
        """The cell without its budget and seed: one line of BLEU against the parallel budget."""
        strategy = "" if self.strategy == "full" else f"_{self.strategy}"
        recipe = "" if self.recipe == "course" else f"_{self.recipe}"
        return f"{self.src}-{self.tgt}_{self.init or 'scratch'}{strategy}{recipe}"

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
            minutes = 60 - (course.PRETRAINING_MINUTES if self.init else 0)
            recipe = {"train": course.long_train_config(self.seed, LONG_RECIPES[self.recipe], minutes)}
        _, _, folder = course.translator(self.init, pairs=self.pairs, seed=self.seed, src=self.src, tgt=self.tgt,
                                         strategy=self.strategy, **recipe)
        return folder, course.test_result(folder, self.src, self.tgt)


LONG_RECIPES = {"long": "fp32", "long_bf16": "bf16"}  # recipe name -> training precision


def _init(name: str) -> str | None:
    return None if name == "scratch" else name


def _budget(value: str | int | None) -> int | None:
    return None if value in (None, "all") else int(value)


def budgets(seeds: Iterable[int] = (0, 1, 2), budgets: Iterable[str | int | None] = (1000, 3000, 10000, None),
            inits: Iterable[str] = ("scratch", "lm", "dae", "vae")) -> list[Cell]:
    """en->de BLEU against the parallel budget, per initialisation (notebook 6)."""
    return [Cell("budgets", _init(i), _budget(b), s) for b in budgets for s in seeds for i in inits]


def crosslingual(seeds: Iterable[int] = (0, 1, 2), children: Iterable[str] = ("fr", "cs"), pairs: int = 3000,
                 inits: Iterable[str] = ("scratch", "dae", "parent", "parent_long")) -> list[Cell]:
    """en->de parent to en->fr / en->cs children, against scratch and monolingual pretraining (notebook 7).
    ``parent`` is the course's 250-step parent, ``parent_long`` the ~60-minute one (``experiment full``)."""
    return [Cell("crosslingual", _init(i), pairs, s, "en", child) for child in children for s in seeds for i in inits]


def strategies(seeds: Iterable[int] = (0,), child: str = "fr", pairs: int = 3000,
               names: Iterable[str] = ("full", "freeze_encoder", "gradual", "discriminative")) -> list[Cell]:
    """Fine-tuning strategies for the parent -> en->fr child (notebook 8)."""
    return [Cell("strategies", "parent", pairs, s, "en", child, strategy) for s in seeds for strategy in names]


def full(seeds: Iterable[int] = (0,), targets: Iterable[str] = ("de",), precision: str = "fp32",
         inits: Iterable[str] = ("scratch",)) -> list[Cell]:
    """en->X on all pairs with the ~60-minute recipe: the best the course model does on 2 CPU cores
    (and ``parent_long``, the stronger parent: en->de for the crosslingual children, en->fr for
    the en->de child of the budgets family). ``precision="bf16"`` trains the same hour in bf16
    mixed precision, more steps on a CPU with native bf16 (never a parent: those stay fp32).
    ``inits=("dae",)`` starts from the course's denoising pretraining instead, whose minutes come
    out of the hour (``tmtlib.course.PRETRAINING_MINUTES``): pretraining and translation in 60."""
    recipes = {value: name for name, value in LONG_RECIPES.items()}
    if precision not in recipes:
        raise ValueError(f"precision must be one of {', '.join(recipes)}, not {precision!r}")
    inits = list(inits)
    if not set(inits) <= {"scratch", "dae"}:
        raise ValueError(f"the full family starts from scratch or dae (pretraining within the hour), not {inits}")
    recipe = recipes[precision]
    return [Cell("full", _init(i), None, s, "en", tgt, recipe=recipe) for tgt in targets for s in seeds for i in inits]


FAMILIES = {"budgets": budgets, "crosslingual": crosslingual, "strategies": strategies, "full": full}


def results_dir() -> Path:
    """``data/results`` (committed) in full mode; a cache folder in quick mode."""
    return settings.cache_dir("results-quick") if course.QUICK else settings.REPO_ROOT / "data" / "results"


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_cores": os.cpu_count(), "torch": torch.__version__, "quick_mode": course.QUICK}


def record(cell: Cell, folder: Path, test: dict) -> dict[str, Any]:
    """The machine-readable account of one finished run."""
    config = json.loads((folder / "config.json").read_text())
    last = checkpoint.load(folder / "last.pt")
    progress, evals = last["progress"], last["history"]["evals"]
    best = max(evals, key=lambda e: e.get("val_bleu", float("-inf")))
    train_pairs = cell.pairs or len(data.load_parallel(cell.src, cell.tgt, "train"))
    return {
        "cell": asdict(cell) | {"name": cell.name}, "run_folder": folder.name, "config": config,
        "data": {"train_pairs": course.quick_pairs(train_pairs),
                 "valid_pairs": len(data.load_parallel(cell.src, cell.tgt, "val")),
                 "test_split": test["split"], "test_sentences": test["sentences"]},
        "training": {"steps": progress["step"], "seconds": round(progress["elapsed"], 1),
                     "tokens": progress.get("tokens") or None, "stopped": progress["stopped"]},
        "validation": {"best_val_bleu_greedy": best.get("val_bleu"), "at_step": best["step"],
                       "val_loss": best.get("val_loss"), "curve": evals},
        "test": {name: test[name] for name in ("bleu", "chrf", "chrf++", "beam_size", "hypotheses")},
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
    refs = [t for _, t in data.load_parallel(cell.src, cell.tgt, records[cell]["data"]["test_split"])]
    return {"baseline": baseline.name, "baseline_bleu": base["bleu"]["score"],
            "p_value": paired_bootstrap(base["hypotheses"], test["hypotheses"],
                                        refs[: len(test["hypotheses"])]).p_value}


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
        row = {"system": system, "seeds": [c.seed for c in members], "bleu_mean": statistics.mean(bleus),
               "bleu_std": statistics.stdev(bleus) if len(bleus) > 1 else None,
               "chrf_mean": statistics.mean(test["chrf"]["score"] for test in tests),
               "training_minutes": sum(records[c]["training"]["seconds"] / 60 for c in members)}
        if members[0].init is not None and all(c.scratch in records for c in members):
            row["gain_over_scratch"] = statistics.mean(bleu - records[c.scratch]["test"]["bleu"]["score"]
                                                       for c, bleu in zip(members, bleus))
            compared = [records[c].get("comparison") for c in members]
            if all(compared):
                row["p_values"] = [c["p_value"] for c in compared]
        rows.append(row)
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| system | seeds | BLEU (mean ± sd) | chrF | gain over scratch | bootstrap p per seed | training minutes |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        spread = f" ± {row['bleu_std']:.1f}" if row["bleu_std"] is not None else ""
        gain = f"{row['gain_over_scratch']:+.1f}" if "gain_over_scratch" in row else ""
        p_values = ", ".join(f"{p:.3f}" for p in row.get("p_values", []))
        lines.append(f"| {row['system']} | {len(row['seeds'])} | {row['bleu_mean']:.1f}{spread} | "
                     f"{row['chrf_mean']:.1f} | {gain} | {p_values} | {row['training_minutes']:.0f} |")
    return "\n".join(lines)


def budget_table(cells: list[Cell], rows: list[dict[str, Any]]) -> str:
    """Test BLEU, mean ± sd (seeds), of each variant (row) at each parallel budget (column), with
    the gain over scratch at that budget: the numbers behind the BLEU-against-pairs figure."""
    by_system = {row["system"]: row for row in rows}
    budgets = sorted({c.pairs for c in cells}, key=lambda pairs: pairs or 10**9)
    lines = ["| initialisation | " + " | ".join(f"{pairs:,}" if pairs else "all" for pairs in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
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


def recorded(folder: Path) -> dict[Cell, dict]:
    """Every run recorded in a family folder: its record, by cell."""
    records = {}
    for path in sorted(folder.glob("*.json")):
        if path.name != "summary.json":
            saved = json.loads(path.read_text())
            records[Cell(**{k: v for k, v in saved["cell"].items() if k != "name"})] = saved
    return records


def figures(family: str, records: dict[Cell, dict], folder: Path, log=print) -> list[Path]:
    """The family's figures beside its records: test BLEU against the parallel budget per
    initialisation, mean ± sd over seeds (budgets), or mean BLEU per system (the others); and
    validation BLEU (greedy) against step for every system's first seed, one panel per budget
    (left as it is while a first seed's record predates recorded curves)."""
    written = []
    fig, ax = _figure((6.5, 4))
    if family == "budgets":
        by_init: dict[str, dict[int, list[float]]] = {}
        all_pairs = {pair: len(data.load_parallel(*pair, "train")) for pair in {(c.src, c.tgt) for c in records}}
        for cell, saved in records.items():
            pairs = cell.pairs or all_pairs[cell.src, cell.tgt]
            by_init.setdefault(cell.init or "scratch", {}).setdefault(pairs, []).append(saved["test"]["bleu"]["score"])
        plot.score_curves(by_init, ax=ax, metric="test_2016_flickr BLEU (beam 5)")
        ax.set_title("en→de: BLEU against the parallel budget (mean ± sd over seeds)")
        name = "bleu_vs_pairs.png"
    else:
        systems: dict[str, list[float]] = {}
        for cell, saved in records.items():
            systems.setdefault(cell.system, []).append(saved["test"]["bleu"]["score"])
        plot.bars({system: statistics.mean(scores) for system, scores in systems.items()}, ax=ax,
                  ylabel="test_2016_flickr BLEU (beam 5, mean over seeds)")
        name = "bleu.png"
    written.append(_save(fig, folder / name))
    first_seed: dict[str, Cell] = {}
    for cell in sorted(records, key=lambda c: c.seed):
        first_seed.setdefault(cell.system, cell)
    uncurved = [cell.name for cell in first_seed.values() if "curve" not in records[cell]["validation"]]
    if uncurved:
        log(f"learning_curves.png left as it is: {len(uncurved)} first seeds ({uncurved[0]}, ...) have no "
            f"recorded validation curve (records from before curves were kept)")
        return written
    budgets = sorted({c.pairs for c in first_seed.values()}, key=lambda pairs: pairs or 10**9)
    colors = {variant: f"C{i % 10}" for i, variant in enumerate(sorted({c.variant for c in first_seed.values()}))}
    fig, axes = _figure((4.6 * len(budgets) + 1.4, 4.2), columns=len(budgets))
    for ax, pairs in zip([axes] if len(budgets) == 1 else axes, budgets):
        shown = sorted((c for c in first_seed.values() if c.pairs == pairs), key=lambda c: c.variant)
        curves = {c.variant: History(evals=records[c]["validation"]["curve"]) for c in shown}
        plot.learning_curves(curves, key="val_bleu", evals=True, ax=ax,
                             title=f"{pairs:,} pairs" if pairs else "all pairs", colors=colors)
    fig.suptitle("validation BLEU (greedy, 400 sentences), first seed of each system")
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


def run_family(family: str, cells: list[Cell], out: Path | None = None, log=print) -> list[dict[str, Any]]:
    """Run every cell (training only what is missing) and write one file per run; then summarise
    every run recorded in the family's folder, so that commands run one after another (say, more
    seeds for the small budgets only) add up to one table."""
    folder = (out or results_dir()) / family
    folder.mkdir(parents=True, exist_ok=True)
    for number, cell in enumerate(cells, 1):
        log(f"[{number}/{len(cells)}] {cell.name}")
        run_folder, test = cell.run()
        checkpoint.write_json_atomic(record(cell, run_folder, test), folder / f"{cell.name}.json")
    records = recorded(folder)
    cells = sorted(records, key=lambda c: (c.src, c.tgt, c.pairs or 10**9, c.recipe, c.init or "", c.strategy != "full",
                                          c.strategy, c.seed))
    for cell in cells:  # each record keeps its comparison with scratch, for summaries without translations
        saved, compared = records[cell], comparison(cell, records)
        if compared != saved.get("comparison"):
            saved.pop("comparison", None)
            saved.update({"comparison": compared} if compared else {})
            checkpoint.write_json_atomic(saved, folder / f"{cell.name}.json")
    rows = summarise(cells, records)
    signature = records[cells[0]]["test"]["bleu"]["signature"]
    checkpoint.write_json_atomic({"rows": rows, "signature": signature, "machine": machine()}, folder / "summary.json")
    pivot = (f"\n\nBLEU by parallel budget: mean ± sd (seeds, gain over scratch)\n\n{budget_table(cells, rows)}"
             if len({c.pairs for c in cells}) > 1 else "")
    minutes = sum(records[c]["training"]["seconds"] / 60 for c in cells)
    checkpoint.write_text_atomic(f"{markdown_table(rows)}\n\ntest_2016_flickr, beam 5; {signature}; training "
                                 f"minutes: wall clock of the optimiser steps, all seeds together, "
                                 f"{minutes:.0f} in all{pivot}\n", folder / "summary.md")
    figures(family, {cell: records[cell] for cell in cells}, folder, log=log)
    return rows


# --- pretraining ---------------------------------------------------------------------------------


def pretraining_specs() -> dict[str, pipeline.PretrainSpec]:
    """Notebook 3's pretraining runs (LM, denoising AE, VAE on the course model), notebook 2's
    VAE trained without and with the remedies for posterior collapse, and the denoising stages
    of the budgets family's ``parent_dae`` starts (from the en->fr parent, for en->de children)."""
    specs = {objective: course.pretrain_spec(objective) for objective in course.PRETRAIN_OBJECTIVES}
    specs |= {f"vae_{key}": spec for key, spec in course.vae_collapse_specs().items()}
    return specs | {init: course.denoised_parent_spec(init, ("en", "de")) for init in course.DENOISED_PARENTS}


def vae_specs() -> dict[str, pipeline.PretrainSpec]:
    """The VAE runs of ``pretraining_specs`` (without building the others' specs, which trains the
    parent they start from), keyed as ``VAE_RUNS``."""
    return {f"vae_{key}": spec for key, spec in course.vae_collapse_specs().items()} | {"vae": course.pretrain_spec("vae")}


def pretraining_record(name: str, folder: Path) -> dict[str, Any]:
    last = checkpoint.load(folder / "last.pt")
    progress, history = last["progress"], last["history"]
    return {"run": name, "run_folder": folder.name, "config": json.loads((folder / "config.json").read_text()),
            "training": {"steps": progress["step"], "seconds": round(progress["elapsed"], 1),
                         "tokens": progress.get("tokens") or None, "stopped": progress["stopped"]},
            "final_training_record": history["steps"][-1], "final_validation": history["evals"][-1],
            "machine": machine()}


def run_pretraining(out: Path | None = None, log=print) -> list[dict[str, Any]]:
    """Train (or load) every pretraining run, write a record per run, a summary and two figures:
    validation loss against step per objective, and the VAE's reconstruction and KL terms with
    and without remedies."""
    folder = (out or results_dir()) / "pretraining"
    folder.mkdir(parents=True, exist_ok=True)
    histories, rows = {}, []
    specs = pretraining_specs()
    for number, (name, spec) in enumerate(specs.items(), 1):
        log(f"[{number}/{len(specs)}] {name}")
        _, histories[name], run_folder = pipeline.cached_run(spec, course.tokenizer())
        saved = pretraining_record(name, run_folder)
        checkpoint.write_json_atomic(saved, folder / f"{name}.json")
        final = saved["final_validation"]
        rows.append({"run": name, "steps": saved["training"]["steps"], "minutes": saved["training"]["seconds"] / 60,
                     **{key: final[key] for key in ("val_loss", "val_nll", "val_kl") if key in final}})
    checkpoint.write_json_atomic({"rows": rows, "machine": machine()}, folder / "summary.json")
    run_vae_diagnostics(out, log=log)
    fig, ax = _figure((6.5, 4))
    # the longer denoising stage first: the shorter one, identical up to its last step, is drawn over it
    curves = (*course.PRETRAIN_OBJECTIVES, *reversed(course.DENOISED_PARENTS))
    plot.learning_curves({name: histories[name] for name in curves}, key="val_loss", evals=True, ax=ax,
                         title="pretraining: validation loss per token (course model)")
    _save(fig, folder / "pretraining_curves.png")
    fig, axes = _figure((15, 3.8), columns=3)
    plot.vae_terms({course.VAE_VARIANTS[key]: histories[f"vae_{key}"] for key in course.VAE_VARIANTS}, axes=axes)
    _save(fig, folder / "vae_collapse.png")
    return rows


# --- the VAEs, measured ------------------------------------------------------------------------------

VAE_RUNS = course.VAE_RUNS
# draws z ~ q(z|x) per sentence: for the ELBO on every validation caption, and for the importance-
# weighted bound (k up to 50) on the first 200
DIAGNOSTIC_SAMPLES = {"samples": 2, "iw_sentences": 20, "iw_samples": 5, "iw_k": (1, 5)} if course.QUICK else {
    "samples": 10, "iw_sentences": 200, "iw_samples": 50, "iw_k": (1, 10, 50)}


def vae_diagnostics_record(name: str) -> dict[str, Any]:
    """``tmtlib.vae_diagnostics.measure`` of the pretraining run ``name`` (one of ``VAE_RUNS``,
    trained first if missing) on its validation captions, from its selected checkpoint, and the
    gradient each cross-attention projection gets from its loss on 64 of them, and how far each
    moved from its initialisation."""
    spec, tokenizer = vae_specs()[name], course.tokenizer()
    model, _, folder = pipeline.cached_run(spec, tokenizer)
    examples = pipeline.pretraining_validation(spec, tokenizer)
    started = time.perf_counter()
    measured = vae_diagnostics.measure(model, examples, **DIAGNOSTIC_SAMPLES)
    objective = pipeline.build_objective(spec, tokenizer)
    torch.manual_seed(0)  # word dropout and z are drawn from the global generator
    gradients = vae_diagnostics.cross_attention_gradients(model, objective, examples[:64])
    torch.manual_seed(spec.train.seed)  # the initialisation the run started from (tmtlib.pipeline.pretrain)
    change = vae_diagnostics.cross_attention_change(model, type(model)(model.config))
    return {"run": name, "run_folder": folder.name,
            "checkpoint_step": checkpoint.load(folder / "best.pt")["progress"]["step"],
            "examples": f"the run's validation captions ({', '.join(spec.langs)}; task-2 val, the first 500 per language)",
            **measured, "cross_attention_gradient_norm": gradients, "cross_attention_change_from_init": change,
            "seconds": round(time.perf_counter() - started, 1), "machine": machine()}


def run_vae_diagnostics(out: Path | None = None, runs: Iterable[str] = VAE_RUNS, log=print) -> dict[str, dict]:
    """Measure each VAE of ``runs`` and keep its record in ``pretraining/vae_diagnostics.json``
    (records of other runs already there are kept), then rewrite ``summary.md``."""
    folder = (out or results_dir()) / "pretraining"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vae_diagnostics.json"
    records = json.loads(path.read_text())["runs"] if path.exists() else {}
    for name in runs:
        log(f"measuring {name}")
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
        lines = ["| run | steps | training minutes | val loss | val NLL | val KL |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['run']} | {r['steps']} | {r['minutes']:.1f} | {r['val_loss']:.3f} "
                  f"| {r.get('val_nll', float('nan')):.3f} | {r.get('val_kl', float('nan')):.4f} |" for r in rows]
        parts.append("\n".join(lines) + "\n\nper token, on the held-out captions; for a VAE the NLL is at z = mu, "
                     "so val loss is not -ELBO (see below)")
    if (folder / "vae_diagnostics.json").exists():
        parts.append(vae_diagnostics_table(json.loads((folder / "vae_diagnostics.json").read_text())["runs"]))
    return checkpoint.write_text_atomic("\n\n".join(parts) + "\n", folder / "summary.md")


def vae_diagnostics_table(records: dict[str, dict]) -> str:
    """The VAE measurements as a markdown table with a note on units."""
    first = next(iter(records.values()))
    iw = first["importance_weighted"]
    k = max(iw["nll_bound"], key=int)
    lines = ["| run | step | -ELBO | E_q[-log p(x\\|z)] | -log p(x\\|mu) | KL | -ELBO (subset) "
             f"| IW bound, k={k} (subset) | active units | I(x;z) | KL per sentence | NLL from another's z | gap |",
             "|---" * 13 + "|"]
    for name, r in records.items():
        shuffled, bound = r["shuffled_z"], r["importance_weighted"]
        lines.append(f"| {name} | {r['checkpoint_step']} | {r['neg_elbo']:.3f} | {r['reconstruction']:.3f} "
                     f"| {r['reconstruction_at_mean']:.3f} | {r['kl']:.4f} | {bound['neg_elbo']:.3f} "
                     f"| {bound['nll_bound'][k]:.3f} | {r['active_units']} / {r['latent_dim']} "
                     f"| {r['mutual_information']:.2f} | {r['kl_per_sentence']:.2f} | {shuffled['other_z']:.3f} "
                     f"| {shuffled['gap']:+.3f} ({100 * shuffled['relative_gap']:+.1f}%) |")
    return ("\n".join(lines) + f"\n\nVAE diagnostics (`tmtlib.vae_diagnostics`) on {first['examples']}, from the "
            "selected checkpoint; nats per token except I(x;z) and KL per sentence (nats). -ELBO = E_q[-log p(x|z)] "
            f"({first['samples']} samples z ~ q(z|x) per sentence) + KL; -log p(x|mu) is what training's validation "
            f"reports. On the fixed subset of the first {iw['sentences']} captions, from {iw['samples']} samples each: "
            "-ELBO and the importance-weighted upper bound on -log p(x) (Burda et al. 2016). Active units: "
            "Cov_x(E_q[z_d]) > 0.01 (Burda et al. 2016); I(x;z) as He et al. (2019), at most log N. Shuffled z: "
            "each sentence decoded from another sentence's posterior mean instead of its own; gap: how much worse.")
