"""Benchmarks of tmtlib against Hugging Face ``transformers`` and ``torch.nn.Transformer``.

Run each from the repository root as a module, e.g. ``python -m bench.train_throughput``; then
``python -m bench.report`` renders BENCHMARKS.md from ``bench/results/*.json``.
"""
