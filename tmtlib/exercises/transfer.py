"""Checks for notebook 05 (transfer and fine-tuning): BLEU's brevity penalty and clipped n-gram
precisions (against sacreBLEU, Post 2018), and freezing the embeddings (against
``tmtlib.transfer.freeze``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
from torch import nn

from .. import data
from ..batching import collate
from ..objectives import make_objective, translation_examples
from ..transfer import freeze, part_of
from . import Verdict, describe, expect, run_check, samples


def test_references(n: int = 500) -> list[str]:
    """The first ``n`` German references of ``test_2016_flickr``."""
    return [de for _, de in data.load_parallel("en", "de", "test_2016_flickr")[:n]]


def damaged(references: Sequence[str], every: int, drop_last: int = 1, repeat_first: bool = False) -> list[str]:
    """Stand-in system outputs: every ``every``-th reference loses its last ``drop_last`` words (and
    repeats its first word when ``repeat_first``); a negative ``drop_last`` appends words instead."""
    outputs = []
    for i, sentence in enumerate(references):
        words = sentence.split()
        if i % every == 0:
            words = words[:-drop_last] if drop_last > 0 else words + words[:-drop_last]
            words = [words[0], *words] if repeat_first and words else words
        outputs.append(" ".join(words))
    return outputs


def _bp_attempt(my_bp: Callable[[int, int], float]) -> str:
    references, lines = test_references(), []
    for every, drop in ((1, 2), (2, 1), (3, -2), (5, 3)):
        result = BLEU().corpus_score(damaged(references, every, drop), [references])
        got = my_bp(result.sys_len, result.ref_len)
        expect(isinstance(got, (int, float)), f"return a number, not {describe(got)}")
        c, r = result.sys_len, result.ref_len
        expect(not (c > r and abs(got - 1) > 1e-9), f"with output {c:,} tokens and references {r:,}, the output is "
                                                    f"longer: no penalty (BP = 1), yours is {got:.4f}")
        expect(not (c < r and abs(got - 1) < 1e-9), f"the output ({c:,} tokens) is shorter than the references "
                                                    f"({r:,}): BP must be below 1")
        expect(abs(got - math.exp(1 - c / r)) > 1e-9 or c >= r, "you swapped c and r: BP = exp(1 - r / c)")
        expect(abs(got - 100 * result.bp) > 1e-6, "return BP as a factor in (0, 1], not a percentage")
        expect(abs(got - result.bp) < 1e-9, f"output {c:,} tokens, references {r:,}: sacreBLEU's BP is "
                                            f"{result.bp:.6f}, yours {got:.6f} (BP = exp(1 - r / c) when c < r)")
        lines.append(f"{c:,}/{r:,} → {got:.4f}")
    return "matches sacreBLEU on damaged test references (" + "; ".join(lines) + ")"


def check_brevity_penalty(my_bp: Callable[[int, int], float]) -> Verdict:
    """``my_bp(output_length, reference_length)`` -> BLEU's brevity penalty (Papineni et al. 2002)."""
    return run_check("brevity penalty", lambda: _bp_attempt(my_bp))


def _unclipped_precisions(outputs: Sequence[str], references: Sequence[str]) -> list[float]:
    """n-gram precisions that count every matching n-gram, however often the reference has it."""
    tokenize, hits, totals = Tokenizer13a(), [0] * 4, [0] * 4
    for output, reference in zip(outputs, references):
        out, ref = tokenize(output).split(), tokenize(reference).split()
        for n in range(1, 5):
            ref_ngrams = {tuple(ref[i:i + n]) for i in range(len(ref) - n + 1)}
            grams = [tuple(out[i:i + n]) for i in range(len(out) - n + 1)]
            hits[n - 1] += sum(g in ref_ngrams for g in grams)
            totals[n - 1] += len(grams)
    return [h / t for h, t in zip(hits, totals)]


def _reference_precisions(outputs: Sequence[str], references: Sequence[str]) -> list[float]:
    """sacreBLEU's clipped n-gram precisions as fractions (its ``precisions`` are smoothed percentages)."""
    result = BLEU().corpus_score(list(outputs), [list(references)])
    return [c / t for c, t in zip(result.counts, result.totals)]


def _precision_attempt(my_precisions: Callable[[Sequence[str], Sequence[str]], list[float]]) -> str:
    references = test_references()
    outputs = damaged(references, 2, 2, repeat_first=True)
    expected = _reference_precisions(outputs, references)
    got = my_precisions(outputs, references)
    expect(isinstance(got, (list, tuple)) and len(got) == 4, f"return four precisions (n = 1..4), not {describe(got)}")
    got = [float(p) for p in got]
    expect(max(got) <= 1.0, f"{got}: return fractions in [0, 1], not percentages")
    unclipped = _unclipped_precisions(outputs, references)
    expect(not all(abs(g - u) < 1e-9 for g, u in zip(got, unclipped)),
           f"unigram precision {got[0]:.4f} instead of {expected[0]:.4f}: you did not clip. An output n-gram counts "
           "at most as often as it occurs in the reference (half of these outputs repeat their first word)")
    for n, (g, e) in enumerate(zip(got, expected), start=1):
        expect(abs(g - e) < 1e-9, f"{n}-gram precision: sacreBLEU {e:.4f}, yours {g:.4f} (tokenise both sides with "
                                  "sacreBLEU's 13a tokenizer; count clipped matches and all output n-grams over the "
                                  "whole corpus, then divide)")
    return "clipped 1–4-gram precisions " + ", ".join(f"{p:.3f}" for p in got) + " as sacreBLEU's"


def check_clipped_precisions(my_precisions: Callable[[Sequence[str], Sequence[str]], list[float]]) -> Verdict:
    """``my_precisions(outputs, references)`` -> BLEU's corpus-level clipped n-gram precisions, n = 1..4."""
    return run_check("clipped n-gram precisions", lambda: _precision_attempt(my_precisions))


def _freeze_attempt(my_freeze: Callable[[nn.Module], object]) -> str:
    model, reference = samples.tiny_model(), samples.tiny_model()
    my_freeze(model)
    freeze(reference, "embeddings")
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
        state = "frozen" if not q.requires_grad else "trainable"
        expect(p.requires_grad == q.requires_grad, f"{name} ({part_of(name)}) should be {state}: freeze exactly the "
                                                   "embedding parameters (requires_grad = False)")
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    pairs = data.load_parallel("en", "de", "val")[:16]
    batch = collate(translation_examples(samples.tokenizer(), pairs, "de"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    make_objective("translation").loss(model, batch).loss.backward()
    optimizer.step()
    moved = {part_of(name) for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    expect("embeddings" not in moved, "the embeddings changed in a training step")
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return (f"{frozen:,} of {sum(p.numel() for p in model.parameters()):,} parameters frozen (the embedding, tied "
            f"to the output layer); one step on real pairs moved only {', '.join(sorted(moved))}")


def check_freeze_embeddings(my_freeze: Callable[[nn.Module], object]) -> Verdict:
    """``my_freeze(model)`` -> nothing; afterwards the embeddings (and so the tied output layer) do not train."""
    return run_check("frozen embeddings", lambda: _freeze_attempt(my_freeze))
