"""Peak memory (resident set) of training and decoding, each engine in a fresh process.

    # about 4 minutes on 2 cores (+7 to train the model in a fresh checkout)
    python -m bench.memory [--checkpoint runs/full-en-de/best.pt]

Training: 20 AdamW steps of the course-size model on real ~4,096-token en->de batches. Decoding:
the 1,000 test_2016_flickr sentences with beam 5 (tmtlib, and HF ``generate`` on a copy of the same
weights). Each measurement is the peak RSS of its own process, so one cannot inflate another.
Writes ``bench/results/memory.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from . import common

HERE = Path(__file__).resolve().parent


def child(task: str, engine: str, checkpoint: str | None) -> None:
    if task == "train":
        torch.manual_seed(0)
        model = common.build(engine, common.course_tokenizer().vocab_size).train()
        step = common.training_step(engine, model, torch.optim.AdamW(model.parameters(), lr=1e-4))
        for batch in common.real_batches(20):
            step(batch)
    else:
        import decode_throughput as bench

        from tmtlib import data, pipeline
        from tmtlib.decode import translate

        model, tokenizer, _ = pipeline.load(checkpoint or bench.default_checkpoint())
        sources = [s for s, _ in data.load_parallel("en", "de", "test_2016_flickr")]
        implementation, precision = common.engine_parts(engine)
        if implementation == "tmtlib":
            translate(model, tokenizer, sources, "de", beam_size=5, precision=precision)
        else:
            tag = tokenizer.lang_id("de")
            bench.hf_translate(
                common.hf_copy(model, tag), tokenizer, sources, tag, 5, precision=precision
            )
    print(json.dumps({"peak_rss_mb": common.peak_rss_mb()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--child", nargs=2, metavar=("TASK", "ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.checkpoint)
    jobs = [("train", e) for e in ("tmtlib", "tmtlib-bf16", "hf", "torch")]
    jobs += [("decode", e) for e in ("tmtlib", "tmtlib-bf16", "hf")]
    result = {"versions": common.versions(), "peak_rss_mb": {}}
    for task, engine in jobs:
        command = [sys.executable, str(HERE / "memory.py"), "--child", task, engine]
        command += ["--checkpoint", args.checkpoint] if args.checkpoint else []
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{task} {engine} failed:\n{done.stderr[-2000:]}")
        peak = json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"]
        result["peak_rss_mb"][f"{task}/{engine}"] = peak
        print(f"{task:7} {engine:12} peak RSS {peak:8.0f} MB", flush=True)
    print("wrote", common.save("memory", result))


if __name__ == "__main__":
    main()
