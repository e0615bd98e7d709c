"""Render ``BENCHMARKS.md`` from the JSON files the benchmark scripts wrote in ``bench/results``.

    python -m bench.report

Every number in BENCHMARKS.md comes from these files; a benchmark that has not been run is listed
as such rather than left out.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import common

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "train_throughput": "python -m bench.train_throughput",
    "decode_throughput": "python -m bench.decode_throughput",
    "memory": "python -m bench.memory",
    "quality": "for engine in tmtlib hf-tuned hf tmtlib-bf16; do python -m "
    "bench.quality_per_minute --engine $engine --minutes 60; done; python -m "
    "bench.quality_per_minute --plot",
    "ci_cost": "python -m bench.ci_cost",
    "profile": "python -m bench.profile_ops",
}


QUALITY_ENGINES = ("tmtlib", "hf-tuned", "hf", "tmtlib-bf16")


def machine_line(result: dict) -> str:
    """Where a result was measured: CPU, its vector extensions and threads. fp32 rows are the
    headline; bf16 rows apply only to CPUs that multiply bf16 natively (AVX512-BF16 or AMX)."""
    v = result.get("versions", {})
    extensions = v.get("cpu_vector_extensions", "not recorded (measured before they were)")
    return (
        f"Measured on: {v.get('cpu_model', v.get('machine', 'unknown'))}, vector extensions "
        f"{extensions}, {v.get('threads', '?')} threads."
    )


def load(name: str) -> dict | None:
    path = common.RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def training(result: dict) -> list[str]:
    lines = [
        f"{result['batches']} real en→de batches × {result['rounds']} interleaved rounds; matmul "
        f"peak {result['matmul_peak_flops'] / 1e9:.1f} GFLOP/s in fp32 and "
        f"{result['matmul_peak_flops_bf16'] / 1e9:.1f} in bf16 (measured in the same run; each "
        "engine's share is of its precision's peak). `-bf16`: the engine under bf16 autocast; ÷ "
        "HF: against HF in fp32, its usual CPU loop.",
        "",
        "| engine | tokens/s median (min–max) | ÷ HF | GFLOP/s | share of its precision's "
        "peak | share of the fp32 peak |",
        "|---|---|---|---|---|---|",
    ]
    for engine, row in result["engines"].items():
        t = row["tokens_per_s"]
        lines.append(
            f"| {engine} | {t['median']:,.0f} ({t['min']:,.0f}–{t['max']:,.0f}) | "
            f"{row['ratio_to_hf']:.2f} | {row['flop_per_s'] / 1e9:.1f} | "
            f"{row['share_of_peak']:.0%} | {row['flop_per_s'] / result['matmul_peak_flops']:.0%} |"
        )
    if "own_batching" in result:
        lines += [
            "",
            "Each engine with its own recipe's batches from the same data (tmtlib: token-bucketed, "
            "~4,096 tokens; HF: its usual random batches of 64 sentences padded to the longest); "
            "real tokens/s:",
            "",
            "| engine | real tokens/s median (min–max) | ÷ HF | padding share |",
            "|---|---|---|---|",
        ]
        for engine, row in result["own_batching"].items():
            t = row["tokens_per_s"]
            lines.append(
                f"| {engine} | {t['median']:,.0f} ({t['min']:,.0f}–{t['max']:,.0f}) | "
                f"{row['ratio_to_hf']:.2f} | {row['padding_share']:.0%} |"
            )
    return lines


def decoding(result: dict) -> list[str]:
    lines = [
        f"{result['sentences']} test_2016_flickr sentences, the same trained weights in every "
        "engine; `-bf16`: under bf16 autocast; `-int8`: int8 weights (dynamic quantisation, "
        "`tmtlib.quantize`), fp32 elsewhere; ÷ HF and identical outputs: against HF `generate` "
        "in fp32, its default.",
        "",
        "| mode | engine | sentences/s median (min–max) | ÷ HF | pieces/sentence | BLEU | "
        "outputs identical to HF's |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, entry in result["modes"].items():
        for engine, row in entry.items():
            s = row["sentences_per_s"]
            lines.append(
                f"| {mode} | {engine} | {s['median']:.1f} ({s['min']:.1f}–{s['max']:.1f}) | "
                f"{row['ratio_to_hf']:.2f} | {row['pieces_per_sentence']:.1f} | {row['bleu']:.1f} "
                f"| {row['same_as_hf']:.1%} |"
            )
    return lines


def memory(result: dict) -> list[str]:
    lines = ["| process | peak RSS (MB) |", "|---|---|"]
    lines += [f"| {name} | {value:,.0f} |" for name, value in result["peak_rss_mb"].items()]
    return lines


def quality(records: list[dict]) -> list[str]:
    """Time to BLEU per engine (``bench.quality_per_minute``), each record with the machine it ran
    on; the headline ratio is tmtlib's time to the highest target over ``hf-tuned``'s (the same
    batches and recipe). Records from before time to BLEU was measured keep their own table."""
    timed = [r for r in records if "time_to_bleu" in r]
    lines = quality_before_time_to_bleu([r for r in records if r not in timed])
    if not timed:
        return lines + ["![quality per CPU-minute](bench/results/quality_per_minute.png)"]
    targets = list(timed[0]["time_to_bleu"])

    def minutes(value: float | None) -> str:
        return "not reached" if value is None else f"{value:.1f}"

    lines += [
        "| engine | "
        + " | ".join(f"minutes to {t} BLEU" for t in targets)
        + " | test BLEU at the end (minutes) | steps | measured on |",
        "|---" * (len(targets) + 4) + "|",
    ]
    for r in timed:
        times = " | ".join(minutes(r["time_to_bleu"][t]) for t in targets)
        bf16 = " (bf16: for CPUs with native bf16 only)" if r["engine"].endswith("bf16") else ""
        smoke = f", {r['test_sentences']} test sentences" if r["test_sentences"] != 1000 else ""
        where = machine_line(r).removeprefix("Measured on: ").removesuffix(".")
        lines.append(
            f"| {r['engine']}{bf16} | {times} | {r['test_bleu']:.1f} ({r['minutes']:g}{smoke}) "
            f"| {r['steps']:,} | {where} |"
        )
    by_engine = {r["engine"]: r["time_to_bleu"][targets[-1]] for r in timed}
    if by_engine.get("tmtlib") and by_engine.get("hf-tuned"):
        lines += [
            "",
            f"tmtlib's time to {targets[-1]} BLEU ÷ hf-tuned's: "
            f"**{by_engine['tmtlib'] / by_engine['hf-tuned']:.2f}** (fp32).",
        ]
    return lines + [
        "",
        f"sacreBLEU signature: `{timed[0]['signature']}`. Validation BLEU (greedy, 400 sentences) "
        f"every {timed[0]['eval_minutes']:g} training minutes; each new best checkpoint scored on "
        "test_2016_flickr (beam 5); evaluation time is not counted.",
        "",
        "![time to BLEU](bench/results/quality_per_minute.png)",
    ]


def quality_before_time_to_bleu(records: list[dict]) -> list[str]:
    """The table of records from before time to BLEU: test BLEU after given minutes."""
    if not records:
        return []
    lines = [
        "| engine | training minutes | step of the scored checkpoint | test_2016_flickr "
        "BLEU (beam 5) |",
        "|---|---|---|---|",
    ]
    for record in records:
        for test in record["tests"]:
            steps = test.get("best_step", record["steps"])
            lines.append(
                f"| {record['engine']} | {test['minutes']:g} | {steps:,} | "
                f"{test['test_bleu']:.1f} |"
            )
    return lines + [
        "",
        f"Measured before time to BLEU (and before vector extensions were recorded): "
        f"sacreBLEU `{records[0]['signature']}`; tmtlib scores the checkpoint with the best "
        "validation BLEU so far (its step is given), HF the model at the end.",
        "",
    ]


def profile(result: dict) -> list[str]:
    groups = list(
        dict.fromkeys(g for entry in result["profiles"].values() for g in entry["groups_s"])
    )
    lines = [
        "Share of wall time per op group (torch.profiler; decoding: the first "
        f"{result['decode_sentences']} "
        'test sentences). "outside ops" is Python and dispatch.',
        "",
        "| run | wall s | " + " | ".join(groups) + " |",
        "|---|---|" + "---|" * len(groups),
    ]
    for name, entry in result["profiles"].items():
        shares = [f"{entry['groups_s'].get(g, 0.0) / entry['wall_s']:.0%}" for g in groups]
        lines.append(f"| {name} | {entry['wall_s']:.2f} | " + " | ".join(shares) + " |")
    return lines


def ci_cost(result: dict) -> list[str]:
    lines = ["| part | seconds |", "|---|---|"]
    lines += [f"| `{name}` | {part['seconds']:.0f} |" for name, part in result["parts"].items()]
    return lines + [f"| **total** | **{result['total_seconds']:.0f}** |"]


def main() -> None:
    sections = [
        ("Training throughput", "train_throughput", training),
        ("Decoding throughput", "decode_throughput", decoding),
        ("Peak memory", "memory", memory),
        ("Where the time goes", "profile", profile),
        ("CI cost", "ci_cost", ci_cost),
    ]
    out = [
        "# Benchmarks",
        "",
        "Generated by `python -m bench.report` from `bench/results/*.json`. Install the "
        "benchmark-only",
        "dependency first: `python -m pip install -r bench/requirements.txt`.",
        "",
    ]
    versions = next((r["versions"] for r in map(load, COMMANDS) if r), None)
    if versions:
        out += [
            "Machine and versions of the latest run: "
            + ", ".join(f"{k} {v}" for k, v in versions.items()),
            "",
        ]
    for title, name, render in sections:
        out += [f"## {title}", "", f"`{COMMANDS[name]}`", ""]
        result = load(name)
        out += [machine_line(result), ""] + render(result) if result else ["Not run yet."]
        out.append("")
    out += ["## Quality per CPU-minute", "", f"`{COMMANDS['quality']}`", ""]
    records = [r for r in (load(f"quality_{engine}") for engine in QUALITY_ENGINES) if r]
    out += quality(records) if records else ["Not run yet."]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(out) + "\n")
    print("wrote", ROOT / "BENCHMARKS.md")


if __name__ == "__main__":
    main()
