"""Decoding throughput: sentences/s, greedy and beam 5, tmtlib vs HF ``generate`` on the same
weights.

    # about 4 minutes on 2 cores (+7 to train the model in a fresh checkout)
    python -m bench.decode_throughput [--checkpoint runs/full-en-de/best.pt]

Both engines translate the 1,000 English sentences of test_2016_flickr into German with the
*same* trained weights (``common.hf_copy`` puts tmtlib's weights into HF's M2M100), the same
batches (sorted by length, at most 4,000 source tokens), the same length penalty (1.0) and the same
length limit (1.5 x source length + 10; HF takes one limit per batch, so it gets the batch's
largest). Each engine runs in fp32 and, as ``<engine>-bf16``, under bf16 autocast (``common``);
``tmtlib-int8`` decodes with an int8 copy of the weights (``tmtlib.quantize``: dynamic
quantisation of every linear layer and the output projection); ratios are to HF ``generate`` in
fp32, its default. Rounds rotate the order of the engines. Also reports output lengths, the share
of outputs identical to HF's fp32 ones, and BLEU, as a check that all really did the same job.
Writes ``bench/results/decode_throughput.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from tmtlib import data, pipeline
from tmtlib.batching import pad, token_batches
from tmtlib.decode import translate
from tmtlib.evaluate import bleu
from tmtlib.models import autocast
from tmtlib.quantize import Int8Seq2Seq
from tmtlib.subwords import EOS_ID

from . import common

# torch has no search; tmtlib-int8 decodes with int8 weights (tmtlib.quantize), in fp32 otherwise
DECODERS = [engine for engine in common.ENGINE_CHOICES if not engine.startswith("torch")]
DECODERS.insert(DECODERS.index("tmtlib-bf16") + 1, "tmtlib-int8")


def hf_translate(
    hf,
    tokenizer,
    sentences: list[str],
    tag: int,
    beam_size: int,
    max_tokens: int = 4000,
    precision: str = "fp32",
) -> list[str]:
    """HF ``generate`` with tmtlib's batching and length rule."""
    sources = [ids + [EOS_ID] for ids in tokenizer.encode(sentences)]
    outputs: list[list[int]] = [[] for _ in sources]
    for group in token_batches([len(s) for s in sources], max_tokens, shuffle=False):
        src = pad([sources[i] for i in group])
        limit = int(1.5 * max(len(sources[i]) for i in group) + 10)
        with torch.inference_mode(), autocast(torch.device("cpu"), precision):
            generated = hf.generate(
                input_ids=src,
                attention_mask=src.ne(0),
                num_beams=beam_size,
                do_sample=False,
                max_new_tokens=limit,
                length_penalty=1.0,
                early_stopping=False,
                decoder_start_token_id=tag,
                use_cache=True,
            )
        for i, row in zip(group, generated.tolist()):
            ids = row[1:]
            outputs[i] = ids[: ids.index(EOS_ID)] if EOS_ID in ids else [t for t in ids if t != 0]
    return tokenizer.decode(outputs)


def default_checkpoint() -> Path:
    """The course's en->de model trained on all pairs (notebook 6's 29k scratch run, the parent of
    notebooks 7-8): loaded from the run cache, or trained first in a fresh checkout (250 steps,
    about 7 minutes on 2 cores), so that every benchmark runs from a clean checkout."""
    from tmtlib import course, settings

    if settings.quick_mode():
        raise SystemExit(
            "unset TMT_QUICK: the benchmarks measure the course model, not the quick-mode one"
        )
    return course.parent()[2] / "best.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    parser.add_argument(
        "--engines",
        nargs="+",
        default=DECODERS,
        choices=DECODERS,
        help="hf is always included: the reference",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint or default_checkpoint()
    model, tokenizer, _ = pipeline.load(checkpoint)
    tag = tokenizer.lang_id("de")
    hf = common.hf_copy(model, tag)
    int8 = Int8Seq2Seq(model) if "tmtlib-int8" in args.engines else None
    test = data.load_parallel("en", "de", "test_2016_flickr")[: args.sentences]
    sources, references = [s for s, _ in test], [t for _, t in test]
    engines = {
        "tmtlib": lambda k: translate(model, tokenizer, sources, "de", beam_size=k),
        "tmtlib-bf16": lambda k: translate(
            model, tokenizer, sources, "de", beam_size=k, precision="bf16"
        ),
        "tmtlib-int8": lambda k: translate(int8, tokenizer, sources, "de", beam_size=k),
        "hf": lambda k: hf_translate(hf, tokenizer, sources, tag, k),
        "hf-bf16": lambda k: hf_translate(hf, tokenizer, sources, tag, k, precision="bf16"),
    }
    engines = {name: engines[name] for name in dict.fromkeys([*args.engines, "hf"])}
    result = {
        "versions": common.versions(),
        "checkpoint": pipeline.checkpoint_reference(checkpoint),  # no path of this machine
        "sentences": len(sources),
        "modes": {},
    }
    print(
        f"{len(sources)} test_2016_flickr sentences, {args.threads} threads, {args.rounds} "
        "rotating rounds"
    )
    print(
        f"{'mode':7} {'engine':12} {'sent/s (median, min-max)':>26} {'÷ HF':>6} "
        f"{'pieces/sent':>11} {'BLEU':>5} {'same as HF':>10}"
    )
    names = list(engines)
    for beam in args.beams:
        rates, outputs = {name: [] for name in engines}, {}
        for round_ in range(args.rounds):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                started = time.perf_counter()
                outputs[name] = engines[name](beam)
                rates[name].append(len(sources) / (time.perf_counter() - started))
        mode = "greedy" if beam == 1 else f"beam{beam}"
        entry = {}
        for name in engines:
            stats = common.spread(rates[name])
            pieces = sum(len(ids) for ids in tokenizer.encode(outputs[name])) / len(sources)
            score = bleu(outputs[name], references)
            entry[name] = {
                "sentences_per_s": stats,
                "pieces_per_sentence": pieces,
                "bleu": score.value,
                "signature": score.signature,
                "ratio_to_hf": stats["median"] / common.spread(rates["hf"])["median"],
                "same_as_hf": sum(a == b for a, b in zip(outputs[name], outputs["hf"]))
                / len(sources),
            }
            print(
                f"{mode:7} {name:12} {stats['median']:12.1f} "
                f"({stats['min']:.1f}-{stats['max']:.1f}) {entry[name]['ratio_to_hf']:6.2f} "
                f"{pieces:11.1f} {score.value:5.1f} {entry[name]['same_as_hf']:10.1%}"
            )
        result["modes"][mode] = entry
    print("wrote", common.save("decode_throughput", result))


if __name__ == "__main__":
    main()
