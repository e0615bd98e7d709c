"""Where the time goes: torch.profiler op tables of a training step and of decoding, per engine.

    python -m bench.profile_ops [--checkpoint runs/full-en-de/best.pt]  # about 2 minutes on 2 cores

Training: 4 real en->de batches (forward + backward + AdamW) after one warm-up batch. Decoding: the
first 300 test_2016_flickr sentences, greedy and beam 5, on the same weights in both engines. Ops
are grouped into matrix products, attention, softmax / loss, elementwise and normalisation, copies
and indexing, and the optimiser; "outside ops" is wall time not spent inside any profiled op
(Python and dispatch). Writes ``bench/results/profile.json``; this is what the closing notes cite
when a speed target is missed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from tmtlib import data, pipeline
from tmtlib.decode import translate

from . import common
from .decode_throughput import default_checkpoint, hf_translate

# op groups: exact aten names (trailing "_" of in-place variants ignored), then substrings
GROUPS = {
    "matmul": ({"addmm", "mm", "bmm", "matmul", "linear", "baddbmm"}, ()),
    "attention": (set(), ("scaled_dot_product", "flash_attention")),
    "softmax/loss": (
        {
            "softmax",
            "_softmax",
            "log_softmax",
            "_log_softmax",
            "nll_loss_forward",
            "nll_loss_backward",
            "logsumexp",
            "topk",
            "argmax",
            "_log_softmax_backward_data",
            "_softmax_backward_data",
        },
        (),
    ),
    "optimiser": (
        set(),
        (
            "_foreach",
            "adam",
            "addcdiv",
            "addcmul",
            "lerp",
            "sqrt",
            "clip_grad",
            "linalg_vector_norm",
        ),
    ),
    "copies/indexing": (
        {
            "copy",
            "cat",
            "index_select",
            "index",
            "gather",
            "clone",
            "contiguous",
            "embedding",
            "embedding_dense_backward",
            "scatter",
            "nonzero",
            "_to_copy",
            "index_put",
            "repeat_interleave",
        },
        (),
    ),
    "elementwise/norm": (
        {
            "add",
            "mul",
            "div",
            "sub",
            "rsub",
            "gelu",
            "gelu_backward",
            "dropout",
            "native_dropout",
            "native_dropout_backward",
            "bernoulli",
            "native_layer_norm",
            "native_layer_norm_backward",
            "where",
            "masked_fill",
            "sum",
            "neg",
            "exp",
            "eq",
            "ne",
            "fill",
            "zero",
            "mean",
            "tanh",
            "threshold_backward",
            "relu",
        },
        (),
    ),
}


def group_of(op: str) -> str:
    name = op.removeprefix("aten::").rstrip("_") or op
    for group, (names, patterns) in GROUPS.items():
        if name in names or any(pattern in name for pattern in patterns):
            return group
    return "other ops"


def profiled(work) -> dict:
    """Run ``work`` under the profiler: wall seconds, seconds per group, the ten costliest ops."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        started = time.perf_counter()
        work()
        wall = time.perf_counter() - started
    ops = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    groups: dict[str, float] = {}
    for event in ops:
        groups[group_of(event.key)] = (
            groups.get(group_of(event.key), 0.0) + event.self_cpu_time_total / 1e6
        )
    groups["outside ops"] = max(0.0, wall - sum(groups.values()))
    top = sorted(ops, key=lambda e: e.self_cpu_time_total, reverse=True)[:10]
    return {
        "wall_s": wall,
        "groups_s": dict(sorted(groups.items(), key=lambda kv: -kv[1])),
        "top_ops": [
            {"op": e.key, "calls": e.count, "self_s": e.self_cpu_time_total / 1e6} for e in top
        ],
    }


def training_profiles() -> dict:
    batches = common.real_batches(5)
    vocab = common.course_tokenizer().vocab_size
    result = {}
    for engine in ("tmtlib", "tmtlib-bf16", "hf"):
        torch.manual_seed(0)
        model = common.build(engine, vocab).train()
        step = common.training_step(engine, model, torch.optim.AdamW(model.parameters(), lr=1e-4))
        step(batches[0])
        result[f"train/{engine}"] = profiled(lambda: [step(b) for b in batches[1:]])
    return result


def decoding_profiles(checkpoint: Path, sentences: int) -> dict:
    model, tokenizer, _ = pipeline.load(checkpoint)
    tag = tokenizer.lang_id("de")
    hf = common.hf_copy(model, tag)
    sources = [s for s, _ in data.load_parallel("en", "de", "test_2016_flickr")][:sentences]
    result = {}
    for beam in (1, 5):
        mode = "greedy" if beam == 1 else f"beam{beam}"
        runs = {
            "tmtlib": lambda: translate(model, tokenizer, sources, "de", beam_size=beam),
            "tmtlib-bf16": lambda: translate(
                model, tokenizer, sources, "de", beam_size=beam, precision="bf16"
            ),
            "hf": lambda: hf_translate(hf, tokenizer, sources, tag, beam),
        }
        for engine, work in runs.items():
            work()  # warm-up
            result[f"{mode}/{engine}"] = profiled(work)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    profiles = training_profiles() | decoding_profiles(
        args.checkpoint or default_checkpoint(), args.sentences
    )
    for name, entry in profiles.items():
        shares = ", ".join(
            f"{group} {seconds / entry['wall_s']:.0%}"
            for group, seconds in entry["groups_s"].items()
        )
        print(f"{name:18} {entry['wall_s']:6.2f} s: {shares}")
    result = {
        "versions": common.versions(),
        "decode_sentences": args.sentences,
        "profiles": profiles,
    }
    print("wrote", common.save("profile", result))


if __name__ == "__main__":
    main()
