"""Quality per CPU-minute: BLEU against wall-clock training minutes on all en->de pairs.

    python -m bench.quality_per_minute --engine tmtlib --minutes 30 60  # tmtlib's CPU recipe
    python -m bench.quality_per_minute --engine tmtlib-bf16 --minutes 30  # the same in bf16
    python -m bench.quality_per_minute --engine hf --minutes 60  # HF BART, its usual recipe
    python -m bench.quality_per_minute --plot  # the figure from both records

tmtlib's recipe is the course's: token-bucketed batches of ~4,096 tokens, AdamW (lr 1e-3, 200
warm-up steps, inverse square root), label smoothing 0.1; ``tmtlib-bf16`` trains it in bf16 mixed
precision (for CPUs with native bf16; its validation BLEU decodes in bf16 too, the test set in
fp32). HF's usual recipe is what its translation examples do: batches of 64 sentences in random
order padded to the longest, AdamW at 5e-4 with linear warm-up and linear decay over the budget,
label smoothing 0.1, BART of the same size. Both evaluate validation BLEU (greedy, first 400
sentences) every few minutes of training time (evaluation time is not counted) and test_2016_flickr
BLEU (beam 5) at the end. Records go to ``bench/results/quality_<engine>.json``; the plot to
``bench/results/quality_per_minute.png``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tmtlib import data, pipeline
from tmtlib.batching import collate
from tmtlib.evaluate import bleu
from tmtlib.objectives import translation_examples
from tmtlib.subwords import PAD_ID
from tmtlib.train import TrainConfig

from . import common

VALID_SENTENCES = 400
ENGINES = ["tmtlib", "tmtlib-bf16", "hf"]


def run_tmtlib(
    stages: list[float], eval_minutes: float, out: Path, precision: str = "fp32"
) -> dict:
    """Train the course recipe for ``stages[-1]`` minutes, scoring the test set at each stage.

    Each stage resumes the same run with a larger ``max_minutes`` (the inverse-square-root schedule
    has no horizon, so this is one uninterrupted run) and scores the checkpoint with the best
    validation BLEU so far: what a user who stopped there would have.
    """
    steps_per_eval = max(1, int(eval_minutes * 60 * 1.0))  # about one step per second on 2 cores
    tests = []
    for minutes in stages:
        train = TrainConfig(
            max_steps=10**6,
            max_minutes=minutes,
            lr=1e-3,
            warmup_steps=200,
            eval_every=steps_per_eval,
            checkpoint_every=steps_per_eval,
            select="val_bleu",
            progress=False,
            precision=precision,
        )
        spec = pipeline.FinetuneSpec(
            pairs=None, preset="course", bleu_sentences=VALID_SENTENCES, train=train
        )
        _, history, _ = pipeline.finetune(spec, out)
        model, tokenizer, saved = pipeline.load(out / "best.pt")
        _, scores = pipeline.scores_on_test(model, tokenizer, "en", "de")
        tests.append(
            {
                "minutes": minutes,
                "best_step": saved["progress"]["step"],
                "test_bleu": scores["bleu"].value,
                "test_chrf": scores["chrf"].value,
            }
        )
        print(tests[-1], flush=True)
    curve = [
        {"minutes": e["time"] / 60, "step": e["step"], "val_bleu": e["val_bleu"]}
        for e in history.evals
    ]
    return {
        "curve": curve,
        "tests": tests,
        "test_bleu": tests[-1]["test_bleu"],
        "signature": scores["bleu"].signature,
        "steps": history.evals[-1]["step"],
    }


def hf_greedy(model, tokenizer, sentences: list[str], tag: int, beam: int = 1) -> list[str]:
    import decode_throughput

    return decode_throughput.hf_translate(model, tokenizer, sentences, tag, beam)


def run_hf(
    minutes: float, eval_minutes: float, batch_size: int = 64, lr: float = 5e-4, warmup: int = 500
) -> dict:
    tokenizer = common.course_tokenizer()
    tag = tokenizer.lang_id("de")
    examples = translation_examples(tokenizer, data.load_parallel("en", "de", "train"), "de")
    valid = data.load_parallel("en", "de", "val")[:VALID_SENTENCES]
    torch.manual_seed(0)
    model = common.hf_model(tokenizer.vocab_size)
    model.config.decoder_start_token_id = tag
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    expected_steps = None  # the linear decay needs a horizon: estimated from the first 20 steps
    rng, trained, step, curve, next_eval = random.Random(0), 0.0, 0, [], eval_minutes * 60
    while trained < minutes * 60:
        for group in common.sentence_batches(examples, batch_size, rng):
            started = time.perf_counter()
            batch = collate(group)
            factor = min(1.0, (step + 1) / warmup)
            if expected_steps:
                factor *= max(0.0, 1 - step / expected_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr * factor
            model.train()
            logits = model(
                input_ids=batch.src,
                attention_mask=batch.src.ne(PAD_ID),
                decoder_input_ids=batch.tgt_in,
                decoder_attention_mask=batch.tgt_in.ne(PAD_ID),
            ).logits
            loss = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                batch.tgt_out.reshape(-1),
                ignore_index=PAD_ID,
                label_smoothing=0.1,
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            trained += time.perf_counter() - started
            if step == 20:
                expected_steps = int(minutes * 60 / (trained / 20))
            if trained >= next_eval or trained >= minutes * 60:
                model.eval()
                hyps = hf_greedy(model, tokenizer, [s for s, _ in valid], tag)
                curve.append(
                    {
                        "minutes": trained / 60,
                        "step": step,
                        "val_bleu": bleu(hyps, [t for _, t in valid]).value,
                    }
                )
                print(curve[-1], flush=True)
                next_eval += eval_minutes * 60
            if trained >= minutes * 60:
                break
    model.eval()
    test = data.load_parallel("en", "de", "test_2016_flickr")
    score = bleu(
        hf_greedy(model, tokenizer, [s for s, _ in test], tag, beam=5), [t for _, t in test]
    )
    return {
        "curve": curve,
        "tests": [{"minutes": minutes, "test_bleu": score.value}],
        "test_bleu": score.value,
        "signature": score.signature,
        "steps": step,
    }


def plot() -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8), constrained_layout=True)
    for engine in ENGINES:
        path = common.RESULTS / f"quality_{engine}.json"
        if path.exists():
            record = json.loads(path.read_text())
            curve = record["curve"]
            ax.plot(
                [c["minutes"] for c in curve],
                [c["val_bleu"] for c in curve],
                marker="o",
                label=f"{engine} (test BLEU {record['test_bleu']:.1f} after "
                f"{record['minutes']:.0f} min)",
            )
    ax.set(
        xlabel="training minutes (2 CPU cores)",
        ylabel="validation BLEU (greedy, 400 sentences)",
        title="quality per CPU-minute, en→de, all 29,000 pairs",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = common.RESULTS / "quality_per_minute.png"
    fig.savefig(path, dpi=120)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=ENGINES)
    parser.add_argument(
        "--minutes",
        type=float,
        nargs="+",
        default=[30],
        help="training minutes; tmtlib scores the test set after each value (e.g. 30 60)",
    )
    parser.add_argument("--eval-minutes", type=float, default=5)
    parser.add_argument(
        "--out", type=Path, help="tmtlib's run folder (default runs/bench-quality-<engine>)"
    )
    parser.add_argument("--plot", action="store_true")
    args = parser.parse_args()
    if args.engine:
        started = time.time()
        out = args.out or Path(f"runs/bench-quality-{args.engine}")
        precision = common.engine_parts(args.engine)[1]
        runner = (
            run_tmtlib(args.minutes, args.eval_minutes, out, precision)
            if args.engine != "hf"
            else run_hf(args.minutes[-1], args.eval_minutes)
        )
        record = {
            "engine": args.engine,
            "minutes": args.minutes[-1],
            "wall_seconds": time.time() - started,
            "versions": common.versions(),
            **runner,
        }
        for test in record["tests"]:
            print(
                f"{args.engine}: test_2016_flickr BLEU {test['test_bleu']:.1f} after "
                f"{test['minutes']:g} training minutes"
            )
        print("wrote", common.save(f"quality_{args.engine}", record))
    if args.plot:
        print("wrote", plot())


if __name__ == "__main__":
    main()
