"""Quality per CPU-minute: time to BLEU on all en->de pairs, tmtlib against Hugging Face.

    python -m bench.quality_per_minute --engine tmtlib --minutes 60      # tmtlib's CPU recipe
    python -m bench.quality_per_minute --engine hf-tuned --minutes 60    # HF on tmtlib's batches
    python -m bench.quality_per_minute --engine hf --minutes 60          # HF, its usual recipe
    python -m bench.quality_per_minute --engine tmtlib-bf16 --minutes 60  # CPUs with native bf16
    python -m bench.quality_per_minute --plot  # the figure from the records

tmtlib's recipe (``course_recipe``) is the course's: token-bucketed batches of ~4,096 tokens,
AdamW (lr 1e-3, betas 0.9/0.98, weight decay 0.01, 200 warm-up steps, inverse square root),
gradient clipping at 1, label smoothing 0.1; ``tmtlib-bf16`` trains it in bf16 mixed precision.
``hf-tuned`` is a fair peer: HF BART of the same size trained on exactly tmtlib's batches (the
same token buckets in the same order, ``tmtlib.train.epoch_batches``) with the same optimiser,
schedule, clipping and label smoothing. ``hf`` is what HF's translation examples usually do:
batches of 64 sentences in random order padded to the longest, AdamW at 5e-4 with linear warm-up
and linear decay over the budget.

Every engine is evaluated the same way: every ``--eval-minutes`` of training time (evaluation is
not counted), validation BLEU (greedy, the first 400 sentences); whenever it is the best so far,
that checkpoint's test_2016_flickr BLEU (beam 5). **Time to BLEU** X is the training minutes
until the best-so-far checkpoint's test BLEU reaches X (``TARGETS``): what a user who stops
training at the validation-selected checkpoint would have. Records go to
``bench/results/quality_<engine>.json`` with the CPU's vector extensions and thread count; the
figure to ``bench/results/quality_per_minute.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch

from tmtlib import data, pipeline
from tmtlib.batching import collate
from tmtlib.evaluate import bleu
from tmtlib.objectives import translation_examples
from tmtlib.train import TrainConfig, epoch_batches, optimiser_and_schedule

from . import common

VALID_SENTENCES = 400
ENGINES = ["tmtlib", "tmtlib-bf16", "hf-tuned", "hf"]
TARGETS = (30.0, 34.0)  # test BLEU whose time to reach is reported


def course_recipe(minutes: float, precision: str = "fp32") -> TrainConfig:
    """tmtlib's CPU recipe for ``minutes`` of training (``hf-tuned`` follows it too); evaluation
    comes from the benchmark's clock (``--eval-minutes``), not from a step count."""
    return TrainConfig(
        max_steps=10**7,
        max_minutes=minutes,
        lr=1e-3,
        warmup_steps=200,
        eval_every=10**7,
        checkpoint_every=10**7,
        select="val_bleu",
        progress=False,
        precision=precision,
    )


def time_to(curve: list[dict], target: float) -> float | None:
    """Training minutes until the best-so-far checkpoint's test BLEU reached ``target``."""
    return next((c["minutes"] for c in curve if c["test_bleu_of_best"] >= target), None)


def evaluation_point(
    curve: list[dict], minutes: float, step: int, val_bleu: float, test_of_best: Callable[[], float]
) -> dict:
    """The next point of ``curve``: validation BLEU now, and the test BLEU of the best checkpoint
    so far (scored again only when this one is the new best)."""
    best = max([val_bleu, *(c["best_val_bleu"] for c in curve)])
    improved = not curve or val_bleu > curve[-1]["best_val_bleu"]
    point = {
        "minutes": minutes,
        "step": step,
        "val_bleu": val_bleu,
        "best_val_bleu": best,
        "test_bleu_of_best": test_of_best() if improved else curve[-1]["test_bleu_of_best"],
    }
    print(point, flush=True)
    return point


def run_tmtlib(
    minutes: float, eval_minutes: float, out: Path, precision: str = "fp32", test_limit=None
) -> dict:
    """Train the course recipe in stages of ``eval_minutes`` of training time, one uninterrupted
    run resumed with a larger ``max_minutes`` each time (the inverse-square-root schedule has no
    horizon, so the stages change nothing), evaluating at the end of each."""
    curve: list[dict] = []
    stages = [
        min(minutes, eval_minutes * k) for k in range(1, math.ceil(minutes / eval_minutes) + 1)
    ]
    for stage in stages:
        spec = pipeline.FinetuneSpec(
            pairs=None,
            preset="course",
            bleu_sentences=VALID_SENTENCES,
            train=course_recipe(stage, precision),
        )
        _, history, _ = pipeline.finetune(spec, out)
        last = history.evals[-1]

        def test_of_best() -> float:
            model, tokenizer, _ = pipeline.load(out / "best.pt")
            scores = pipeline.scores_on_test(model, tokenizer, "en", "de", limit=test_limit)[1]
            return scores["bleu"].value

        curve.append(
            evaluation_point(curve, last["time"] / 60, last["step"], last["val_bleu"], test_of_best)
        )
    return {"curve": curve, "steps": curve[-1]["step"]}


def hf_decode(model, tokenizer, sentences: list[str], tag: int, beam: int = 1) -> list[str]:
    from . import decode_throughput  # transformers, only for HF's engines

    return decode_throughput.hf_translate(model, tokenizer, sentences, tag, beam)


def run_hf(minutes: float, eval_minutes: float, tuned: bool, test_limit=None) -> dict:
    """Train HF BART of the course's size for ``minutes`` of training time: on tmtlib's batches
    with tmtlib's optimiser and schedule (``tuned``), or with HF's usual recipe."""
    tokenizer = common.course_tokenizer()
    tag = tokenizer.lang_id("de")
    examples = translation_examples(tokenizer, data.load_parallel("en", "de", "train"), "de")
    valid = data.load_parallel("en", "de", "val")[:VALID_SENTENCES]
    test = data.load_parallel("en", "de", "test_2016_flickr")[:test_limit]
    torch.manual_seed(0)
    model = common.hf_model(tokenizer.vocab_size)
    model.config.decoder_start_token_id = tag
    step_of = (
        tuned_steps(model, examples, minutes) if tuned else usual_steps(model, examples, minutes)
    )

    def test_of_best() -> float:
        hyps = hf_decode(model, tokenizer, [s for s, _ in test], tag, beam=5)
        return bleu(hyps, [t for _, t in test]).value

    trained, step, curve, next_eval = 0.0, 0, [], eval_minutes * 60
    while trained < minutes * 60:
        batch, optimise = step_of(step)
        started = time.perf_counter()
        model.train()
        common.hf_loss(model, batch).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimise(trained)
        step += 1
        trained += time.perf_counter() - started
        if trained >= next_eval or trained >= minutes * 60:
            model.eval()
            hyps = hf_decode(model, tokenizer, [s for s, _ in valid], tag)
            val = bleu(hyps, [t for _, t in valid]).value
            curve.append(evaluation_point(curve, trained / 60, step, val, test_of_best))
            next_eval += eval_minutes * 60
    return {"curve": curve, "steps": step}


StepSource = Callable[[int], tuple[object, Callable[[float], None]]]


def tuned_steps(model, examples: list, minutes: float) -> StepSource:
    """tmtlib's batches in tmtlib's order and its optimiser step (AdamW, warm-up, inverse square
    root): for step k, the batch and the function that applies the step."""
    config = course_recipe(minutes)
    optimizer, scheduler = optimiser_and_schedule(model, config, None)
    sizes = [example.size for example in examples]
    epoch, batches = 0, epoch_batches(sizes, config, 0, 0, 1)
    position = 0

    def step_of(step: int):
        nonlocal epoch, batches, position
        if position == len(batches):
            epoch, position = epoch + 1, 0
            batches = epoch_batches(sizes, config, epoch, 0, 1)
        batch = collate([examples[i] for i in batches[position]])
        position += 1

        def optimise(_trained: float) -> None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()

        return batch, optimise

    return step_of


def usual_steps(
    model, examples: list, minutes: float, batch_size: int = 64, lr: float = 5e-4, warmup: int = 500
) -> StepSource:
    """HF's usual recipe: random batches of 64 sentences, AdamW at 5e-4 with linear warm-up and a
    linear decay to zero at the end of the budget (its step count estimated from the first 20
    steps' time)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    rng = random.Random(0)
    groups = common.sentence_batches(examples, batch_size, rng)
    horizon: dict[str, int] = {}

    def step_of(step: int):
        nonlocal groups
        group = next(groups, None)
        if group is None:
            groups = common.sentence_batches(examples, batch_size, rng)
            group = next(groups)

        def optimise(trained: float) -> None:
            factor = min(1.0, (step + 1) / warmup)
            if step == 20:
                horizon["steps"] = int(minutes * 60 / (trained / 20))
            if "steps" in horizon:
                factor *= max(0.0, 1 - step / horizon["steps"])
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr * factor
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return collate(group), optimise

    return step_of


def plot() -> Path:
    """Test BLEU of each engine's best-so-far checkpoint against training minutes, with the
    ``TARGETS`` as lines: where a curve crosses one is that engine's time to it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), constrained_layout=True)
    for engine in ENGINES:
        path = common.RESULTS / f"quality_{engine}.json"
        if not path.exists():
            continue
        record = json.loads(path.read_text())
        if "time_to_bleu" not in record:  # a record from before time to BLEU was measured
            continue
        curve = record["curve"]
        ax.step(
            [c["minutes"] for c in curve],
            [c["test_bleu_of_best"] for c in curve],
            where="post",
            marker="o",
            markersize=3,
            label=engine,
        )
    for target in TARGETS:
        ax.axhline(target, color="grey", lw=0.8, ls="--")
    ax.set(
        xlabel="training minutes",
        ylabel="test BLEU of the best checkpoint so far (beam 5)",
        title="time to BLEU, en→de, all 29,000 pairs",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    path = common.RESULTS / "quality_per_minute.png"
    fig.savefig(path, dpi=120)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=ENGINES)
    parser.add_argument("--minutes", type=float, default=60, help="training minutes")
    parser.add_argument(
        "--eval-minutes", type=float, default=3, help="training minutes between evaluations"
    )
    parser.add_argument(
        "--out", type=Path, help="tmtlib's run folder (default runs/bench-quality-<engine>)"
    )
    parser.add_argument(
        "--test-sentences", type=int, help="score only this many test sentences (a smoke run)"
    )
    parser.add_argument("--plot", action="store_true")
    args = parser.parse_args()
    if args.engine:
        out = args.out or Path(f"runs/bench-quality-{args.engine}")
        if args.engine.startswith("tmtlib") and out.exists() and any(out.iterdir()):
            parser.exit(
                2, f"quality_per_minute: {out} holds an earlier run: remove it or pass --out\n"
            )
        started = time.time()
        if args.engine.startswith("tmtlib"):
            precision = "bf16" if args.engine.endswith("bf16") else "fp32"
            runner = run_tmtlib(
                args.minutes, args.eval_minutes, out, precision, args.test_sentences
            )
        else:
            tuned = args.engine == "hf-tuned"
            runner = run_hf(args.minutes, args.eval_minutes, tuned, args.test_sentences)
        record = {
            "engine": args.engine,
            "minutes": args.minutes,
            "eval_minutes": args.eval_minutes,
            "test_sentences": args.test_sentences
            or len(data.load_parallel("en", "de", "test_2016_flickr")),
            "time_to_bleu": {f"{t:g}": time_to(runner["curve"], t) for t in TARGETS},
            "test_bleu": runner["curve"][-1]["test_bleu_of_best"],
            "signature": bleu(["a"], ["a"]).signature,
            "wall_seconds": time.time() - started,
            "versions": common.versions(),
            **runner,
        }
        reached = ", ".join(
            f"{target} BLEU after {'-' if m is None else f'{m:.1f}'} min"
            for target, m in record["time_to_bleu"].items()
        )
        print(f"{args.engine}: {reached}; {record['test_bleu']:.1f} after {args.minutes:g} min")
        print("wrote", common.save(f"quality_{args.engine}", record))
    if args.plot:
        print("wrote", plot())


if __name__ == "__main__":
    main()
