"""Checks for notebook 05 (transfer and fine-tuning): the share of a translator that a transfer
report says came pretrained (against ``tmtlib.transfer.TransferReport.by_part``), BLEU's clipped
n-gram precisions (against sacreBLEU, Post 2018; the brevity penalty is notebook 04's exercise), and
freezing the embeddings (against ``tmtlib.transfer.freeze``)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from functools import cache

import torch
from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
from torch import nn

from .. import course, data
from ..batching import collate
from ..models import Seq2Seq, model_config
from ..objectives import make_objective, translation_examples
from ..transfer import DEFAULT_PARTS, TransferReport, freeze, part_of, transfer
from . import Verdict, describe, expect, run_check, samples


def reference_translations(n: int = 500) -> list[str]:
    """The first ``n`` German references of ``test_2016_flickr``."""
    return [de for _, de in data.load_parallel("en", "de", "test_2016_flickr")[:n]]


def damaged(
    references: Sequence[str], every: int, drop_last: int = 1, repeat_first: bool = False
) -> list[str]:
    """Stand-in system outputs: every ``every``-th reference loses its last ``drop_last`` words (and
    repeats its first word when ``repeat_first``); a negative ``drop_last`` appends words
    instead."""
    outputs = []
    for i, sentence in enumerate(references):
        words = sentence.split()
        if i % every == 0:
            words = words[:-drop_last] if drop_last > 0 else words + words[:-drop_last]
            words = [words[0], *words] if repeat_first and words else words
        outputs.append(" ".join(words))
    return outputs


# (case, source model overrides, parts): the course's three pretrained starts with the parts
# notebook 5 moves (``course.INIT_PARTS``), and two transfers that leave part of a selected part
# behind
_VAE = {"latent_dim": course.pretrain_spec("vae").latent_dim}
TRANSFERS = (
    ("the LM start", {}, course.INIT_PARTS["lm"]),
    ("the DAE start", {}, course.INIT_PARTS["dae"]),
    ("the VAE start", _VAE, course.INIT_PARTS["vae"]),
    ("only the encoder of a VAE", _VAE, ("encoder",)),
    ("a parent with 2 decoder layers, all parts", {"n_decoder_layers": 2}, DEFAULT_PARTS),
)


@cache
def transfer_reports() -> tuple[tuple[str, TransferReport], ...]:
    """The reports of ``TRANSFERS`` into a fresh course-sized translator over the course vocabulary.
    The sources are seeded, untrained models of the pretrained models' architectures: a report
    depends only on the tensors' names and shapes, so it is the one the trained checkpoints give."""
    vocab = samples.tokenizer().vocab_size
    with torch.random.fork_rng():
        torch.manual_seed(0)
        # one is enough: a report ignores the values
        translator = Seq2Seq(model_config("course", vocab))
        return tuple(
            (case, transfer(translator, Seq2Seq(model_config("course", vocab, **overrides)), parts))
            for case, overrides, parts in TRANSFERS
        )


def loaded_fraction(report: TransferReport) -> float:
    """The share of the translator's parameters (numbers, not tensors) that ``report`` says were
    loaded."""
    rows = report.by_part().values()
    loaded = sum(row["loaded_params"] for row in rows)
    return loaded / (loaded + sum(row["initialised_params"] for row in rows))


def _fraction_slips(report: TransferReport) -> dict[str, float]:
    """Usual slips in reading a report, each computed, so a wrong answer can be named."""
    loaded, initialised = (
        sum(report.sizes[name] for name in names) for names in (report.loaded, report.initialised)
    )
    ignored = sum(report.source_sizes[name] for name in report.ignored)
    return {
        "tensors counted, not parameters: weigh each name by its size, report.sizes[name]": len(
            report.loaded
        )
        / (len(report.loaded) + len(report.initialised)),
        "the ignored parameters in the denominator: they are in the checkpoint, not in the "
        "translator": loaded / (loaded + initialised + ignored),
        "a share of the checkpoint (report.source_sizes), not of the translator "
        "(report.sizes)": loaded / sum(report.source_sizes.values()),
        "the share that kept its random initialisation, not the share loaded": initialised
        / (loaded + initialised),
        "a percentage: return a fraction in [0, 1]": 100 * loaded / (loaded + initialised),
    }


def _fraction_attempt(my_fraction: Callable[[TransferReport], float]) -> str:
    shares = []
    for case, report in transfer_reports():
        got, expected = my_fraction(copy.deepcopy(report)), loaded_fraction(report)
        expect(
            isinstance(got, (int, float)) and not isinstance(got, bool),
            f"return a number, not {describe(got)}",
        )
        if not math.isclose(got, expected, rel_tol=1e-9):
            hint = next(
                (
                    f" — it looks like {slip}"
                    for slip, wrong in _fraction_slips(report).items()
                    if math.isclose(got, wrong, rel_tol=1e-9)
                ),
                " — sum report.sizes over report.loaded, divide by the sum over loaded and "
                "initialised",
            )
            expect(
                False,
                f"{case}: you say {got:.4f} of the translator came from the checkpoint; the report "
                f"says {expected:.4f}{hint}",
            )
        shares.append(f"{case} {expected:.0%}")
    return "equal to the report's own counts: " + "; ".join(shares)


def check_loaded_fraction(my_fraction: Callable[[TransferReport], float]) -> Verdict:
    """``my_fraction(report)`` -> the fraction of the translator's parameters that
    ``tmtlib.transfer`` loaded from the checkpoint, on five real transfers into the course's
    translator."""
    return run_check("share of the translator transferred", lambda: _fraction_attempt(my_fraction))


def _unclipped_precisions(outputs: Sequence[str], references: Sequence[str]) -> list[float]:
    """n-gram precisions that count every matching n-gram, however often the reference has it."""
    tokenize, hits, totals = Tokenizer13a(), [0] * 4, [0] * 4
    for output, reference in zip(outputs, references):
        out, ref = tokenize(output).split(), tokenize(reference).split()
        for n in range(1, 5):
            ref_ngrams = {tuple(ref[i : i + n]) for i in range(len(ref) - n + 1)}
            grams = [tuple(out[i : i + n]) for i in range(len(out) - n + 1)]
            hits[n - 1] += sum(g in ref_ngrams for g in grams)
            totals[n - 1] += len(grams)
    return [h / t for h, t in zip(hits, totals)]


def _reference_precisions(outputs: Sequence[str], references: Sequence[str]) -> list[float]:
    """sacreBLEU's clipped n-gram precisions as fractions (its ``precisions`` are smoothed
    percentages)."""
    result = BLEU().corpus_score(list(outputs), [list(references)])
    return [c / t for c, t in zip(result.counts, result.totals)]


def _precision_attempt(my_precisions: Callable[[Sequence[str], Sequence[str]], list[float]]) -> str:
    references = reference_translations()
    outputs = damaged(references, 2, 2, repeat_first=True)
    expected = _reference_precisions(outputs, references)
    got = my_precisions(outputs, references)
    expect(
        isinstance(got, (list, tuple)) and len(got) == 4,
        f"return four precisions (n = 1..4), not {describe(got)}",
    )
    got = [float(p) for p in got]
    expect(max(got) <= 1.0, f"{got}: return fractions in [0, 1], not percentages")
    unclipped = _unclipped_precisions(outputs, references)
    expect(
        not all(abs(g - u) < 1e-9 for g, u in zip(got, unclipped)),
        f"unigram precision {got[0]:.4f} instead of {expected[0]:.4f}: you did not clip. An output "
        "n-gram counts at most as often as it occurs in the reference (half of these outputs "
        "repeat their first word)",
    )
    for n, (g, e) in enumerate(zip(got, expected), start=1):
        expect(
            abs(g - e) < 1e-9,
            f"{n}-gram precision: sacreBLEU {e:.4f}, yours {g:.4f} (tokenise both sides with "
            "sacreBLEU's 13a tokenizer; count clipped matches and all output n-grams over the "
            "whole corpus, then divide)",
        )
    return "clipped 1–4-gram precisions " + ", ".join(f"{p:.3f}" for p in got) + " as sacreBLEU's"


def check_clipped_precisions(
    my_precisions: Callable[[Sequence[str], Sequence[str]], list[float]],
) -> Verdict:
    """``my_precisions(outputs, references)`` -> BLEU's corpus-level clipped n-gram precisions,
    n = 1..4."""
    return run_check("clipped n-gram precisions", lambda: _precision_attempt(my_precisions))


def _freeze_attempt(my_freeze: Callable[[nn.Module], object]) -> str:
    model, reference = samples.tiny_model(), samples.tiny_model()
    my_freeze(model)
    freeze(reference, "embeddings")
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
        state = "frozen" if not q.requires_grad else "trainable"
        expect(
            p.requires_grad == q.requires_grad,
            f"{name} ({part_of(name)}) should be {state}: freeze exactly the "
            "embedding parameters (requires_grad = False)",
        )
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    pairs = data.load_parallel("en", "de", "val")[:16]
    batch = collate(translation_examples(samples.tokenizer(), pairs, "de"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    make_objective("translation").loss(model, batch).loss.backward()
    optimizer.step()
    moved = {
        part_of(name) for name, p in model.named_parameters() if not torch.equal(p, before[name])
    }
    expect("embeddings" not in moved, "the embeddings changed in a training step")
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return (
        f"{frozen:,} of {sum(p.numel() for p in model.parameters()):,} parameters frozen "
        "(the embedding, tied "
        f"to the output layer); one step on real pairs moved only {', '.join(sorted(moved))}"
    )


def check_freeze_embeddings(my_freeze: Callable[[nn.Module], object]) -> Verdict:
    """``my_freeze(model)`` -> nothing; afterwards the embeddings (and so the tied output layer) do
    not train."""
    return run_check("frozen embeddings", lambda: _freeze_attempt(my_freeze))
