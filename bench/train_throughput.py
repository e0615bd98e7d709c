"""Training throughput: tokens/s of forward + backward + AdamW, tmtlib vs HF BART vs nn.Transformer.

    python -m bench.train_throughput            # about 10 minutes on 2 cores

The same real en->de batches (token-bucketed, about 4,096 padded tokens) go through each engine,
interleaved round by round (A B C, B C A, ...) so that drift of the machine hits all of them alike.
Engines run in fp32 and, with the suffix ``-bf16``, in bf16 mixed precision (``common``); ratios
are to HF in fp32, its usual CPU loop. Tokens are real (non-pad) source + target tokens. FLOPs
per batch are counted by ``torch.utils.flop_counter`` (forward + backward); the machine's peaks
are large fp32 and bf16 matmuls measured in the same run, and each engine's share is of the peak
of its precision. A second table gives each engine its own recipe's batches from the same data
(tmtlib: token-bucketed; HF: its usual random batches of 64 sentences padded to the longest),
which is where padding waste shows. Writes ``bench/results/train_throughput.json``.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import common


def flops_per_batch(step_loss, batches) -> list[int]:
    counts = []
    for batch in batches:
        with FlopCounterMode(display=False) as counter:
            step_loss(batch)
        counts.append(counter.get_total_flops())
    return counts


def interleaved_rates(steps: dict, batches: dict, rounds: int) -> dict[str, list[float]]:
    """Real tokens/s of each engine over its batches, round by round in rotating order (A B C, B C
    A, ...)."""
    names = list(steps)
    rates = {name: [] for name in names}
    tokens = {name: sum(b.src_tokens + b.tgt_tokens for b in batches[name]) for name in names}
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            started = time.perf_counter()
            for batch in batches[name]:
                steps[name](batch)
            rates[name].append(tokens[name] / (time.perf_counter() - started))
    return rates


def padding_share(batches) -> float:
    real = sum(b.src_tokens + b.tgt_tokens for b in batches)
    return 1 - real / sum(b.src.numel() + b.tgt_in.numel() for b in batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=8, help="distinct real batches per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--engines", nargs="+", default=common.ENGINE_CHOICES, choices=common.ENGINE_CHOICES
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = common.real_batches(args.batches)
    vocab = common.course_tokenizer().vocab_size
    steps, flops = {}, {}
    for engine in args.engines:
        torch.manual_seed(0)
        model = common.build(engine, vocab).train()
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=1e-4, betas=(0.9, 0.98), weight_decay=0.01
        )
        steps[engine] = common.training_step(engine, model, optimizer)
        flops[engine] = flops_per_batch(steps[engine], batches)  # also the warm-up
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    peaks = {name: [common.matmul_peak(dtype=dtype)] for name, dtype in dtypes.items()}
    tokens = sum(b.src_tokens + b.tgt_tokens for b in batches)
    rates = interleaved_rates(steps, {engine: batches for engine in args.engines}, args.rounds)
    peak = {
        name: max(runs + [common.matmul_peak(dtype=dtypes[name])]) for name, runs in peaks.items()
    }
    result = {
        "versions": common.versions(),
        "batches": args.batches,
        "rounds": args.rounds,
        "tokens_per_round": tokens,
        "padded_tokens_per_batch": [b.src.numel() + b.tgt_in.numel() for b in batches],
        "matmul_peak_flops": peak["fp32"],
        "matmul_peak_flops_bf16": peak["bf16"],
        "engines": {},
    }
    print(
        f"Same batches: {args.batches} real en->de batches x {args.rounds} interleaved "
        f"rounds, {args.threads} "
        f"threads; matmul peak {peak['fp32'] / 1e9:.1f} GFLOP/s fp32, {peak['bf16'] / 1e9:.1f} bf16"
    )
    print(
        f"{'engine':12} {'tokens/s (median, min-max)':>30} {'vs HF':>7} {'GFLOP/s':>8} "
        f"{'of peak':>8}"
    )
    for engine in args.engines:
        stats = common.spread(rates[engine])
        flop_rate = sum(flops[engine]) / (tokens / stats["median"])
        share = flop_rate / peak[common.engine_parts(engine)[1]]
        ratio = (
            stats["median"] / common.spread(rates["hf"])["median"]
            if "hf" in rates
            else float("nan")
        )
        result["engines"][engine] = {
            "tokens_per_s": stats,
            "flops_per_round": sum(flops[engine]),
            "flop_per_s": flop_rate,
            "share_of_peak": share,
            "ratio_to_hf": ratio,
        }
        print(
            f"{engine:12} {stats['median']:12,.0f} ({stats['min']:,.0f}-{stats['max']:,.0f}) "
            f"{ratio:7.2f} {flop_rate / 1e9:8.1f} {share:8.0%}"
        )
    if {"tmtlib", "hf"} <= set(args.engines):
        result["own_batching"] = own_batching(steps, batches, args)
    print("wrote", common.save("train_throughput", result))


def own_batching(steps: dict, tmtlib_batches: list, args) -> dict:
    """Each engine with its own recipe's batches from the same training data: tmtlib's
    token-bucketed ~4,096-token batches, HF's usual random batches of 64 sentences padded to the
    longest."""
    own = {engine: tmtlib_batches for engine in steps if engine.startswith("tmtlib")}
    own["hf"] = common.usual_hf_batches(2 * args.batches)
    steps["hf"](own["hf"][0])  # warm-up for the new shapes
    rates = interleaved_rates({name: steps[name] for name in own}, own, args.rounds)
    print(
        f"Own batching: tmtlib {len(tmtlib_batches)} token-bucketed batches, HF {len(own['hf'])} "
        "random batches of 64 sentences; real tokens/s"
    )
    result = {}
    for name in own:
        stats = common.spread(rates[name])
        ratio = stats["median"] / common.spread(rates["hf"])["median"]
        result[name] = {
            "tokens_per_s": stats,
            "padding_share": padding_share(own[name]),
            "ratio_to_hf": ratio,
        }
        print(
            f"{name:12} {stats['median']:12,.0f} ({stats['min']:,.0f}-{stats['max']:,.0f}) "
            f"{ratio:7.2f} padding {result[name]['padding_share']:.0%}"
        )
    return result


if __name__ == "__main__":
    main()
