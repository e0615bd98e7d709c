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
    "quality": "python -m bench.quality_per_minute --engine tmtlib --minutes 30 60; python -m "
    "bench.quality_per_minute --engine tmtlib-bf16 --minutes 30; python -m "
    "bench.quality_per_minute --engine hf --minutes 60; python -m bench.quality_per_minute --plot",
    "ci_cost": "python -m bench.ci_cost",
    "profile": "python -m bench.profile_ops",
}


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
        "engine; `-bf16`: under bf16 autocast; ÷ HF and identical outputs: against HF `generate` "
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
    signature = records[0]["signature"]
    return lines + [
        "",
        f"sacreBLEU signature: `{signature}`; tmtlib scores the checkpoint with the best "
        "validation BLEU so far (its step is given), HF the model at the end.",
        "",
        "![quality per CPU-minute](bench/results/quality_per_minute.png)",
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
    records = [r for r in map(load, ("quality_tmtlib", "quality_tmtlib-bf16", "quality_hf")) if r]
    out += quality(records) if records else ["Not run yet."]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(out) + "\n")
    print("wrote", ROOT / "BENCHMARKS.md")


if __name__ == "__main__":
    main()
