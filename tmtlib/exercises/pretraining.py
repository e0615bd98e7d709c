"""Checks for notebook 03 (pretraining): teacher-forced language-model examples, a language model's
perplexity on held-out captions (against ``tmtlib.train.validation_loss``), and which parts of the
network each objective trains."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..batching import Batch, Example, collate
from ..objectives import LanguageModel, make_objective, monolingual_examples, token_nll
from ..subwords import EOS_ID, PAD_ID
from ..train import validation_loss
from ..transfer import part_of
from . import Verdict, describe, expect, run_check, samples


def _lm_attempt(my_example: Callable[[Sequence[int], int], tuple[list[int], list[int]]]) -> str:
    tok = samples.tokenizer()
    tag = tok.lang_id("de")
    for i, ids in enumerate(samples.caption_ids("de", 200)):
        batch = collate([Example(None, ids, tag)])
        expected = batch.tgt_in[0].tolist(), batch.tgt_out[0].tolist()
        got = my_example(list(ids), tag)
        expect(
            isinstance(got, tuple) and len(got) == 2,
            f"return (inputs, targets), not {describe(got)}",
        )
        inputs, targets = list(got[0]), list(got[1])
        expect(
            len(inputs) == len(targets),
            f"caption {i}: {len(inputs)} inputs but {len(targets)} targets: "
            "each input position predicts one target",
        )
        expect(
            inputs != targets,
            "inputs equal targets: the model would learn to copy the current token; "
            "shift by one (the target at t is the input at t + 1)",
        )
        expect(
            inputs[:1] == [tag],
            f"the first input must be the language tag <2de> (id {tag}), not {inputs[:1]}",
        )
        expect(
            targets[-1:] == [EOS_ID],
            f"the last target must be EOS (id {EOS_ID}), so the model learns to stop",
        )
        expect(
            (inputs, targets) == expected,
            f"caption {i}: expected inputs {expected[0]} and targets {expected[1]}, "
            f"got {inputs} and {targets}",
        )
    return (
        "teacher-forced inputs and targets as tmtlib.batching.collate builds them, on 200 "
        "German captions"
    )


def check_lm_example(
    my_example: Callable[[Sequence[int], int], tuple[list[int], list[int]]],
) -> Verdict:
    """``my_example(ids, tag)`` -> (decoder inputs, targets) for the causal language model."""
    return run_check("language-model example", lambda: _lm_attempt(my_example))


# held-out batches of different sizes (so per-batch means weigh them wrongly), English and German
PERPLEXITY_BATCHES = (("en", 0, 8), ("en", 8, 24), ("de", 0, 5), ("de", 5, 21))


def perplexity_examples() -> list[list[Example]]:
    """Language-model examples (no source) of validation captions, one list per batch."""
    return [
        monolingual_examples(
            samples.tokenizer(),
            list(samples.captions(lang, 24)[start:stop]),
            lang,
            with_source=False,
        )
        for lang, start, stop in PERPLEXITY_BATCHES
    ]


def perplexity(model: nn.Module, examples: Sequence[Example]) -> float:
    """The corpus perplexity exp(summed NLL / real target tokens) of ``model`` on ``examples``, as
    ``tmtlib.train.validation_loss`` reports it (``val_ppl``)."""
    return validation_loss(model, LanguageModel(), examples)["val_ppl"]


def _perplexity_slips(model: nn.Module, batches: Sequence[Batch]) -> dict[str, float]:
    """Usual slips, each computed, so a wrong answer can be named."""
    sums, counts, padded, sentences, smoothed = [], [], [], [], 0.0
    with torch.no_grad():
        for batch in batches:
            logits = model.decode(batch.tgt_in)
            nll = -logits.log_softmax(-1).gather(-1, batch.tgt_out.unsqueeze(-1)).squeeze(-1)
            real = batch.tgt_out.ne(PAD_ID)
            sums.append(float(nll[real].sum()))
            counts.append(int(real.sum()))
            padded.append(float(nll.mean()))
            sentences += (nll * real).sum(1).div(real.sum(1)).tolist()
            smoothed += float(token_nll(logits, batch.tgt_out, label_smoothing=0.1)[0]) * counts[-1]
    mean = sum(sums) / sum(counts)
    return {
        "no exp: that is the NLL per token in nats; the perplexity is exp of it": mean,
        "2 ** NLL: the NLL is in nats (natural log), so the perplexity is e ** NLL": 2**mean,
        "padding counted: average over the real target tokens only (tgt_out != PAD_ID)": math.exp(
            sum(padded) / len(padded)
        ),
        "a mean of per-batch means: sum the NLL and the tokens over all batches, then "
        "divide": math.exp(sum(s / n for s, n in zip(sums, counts)) / len(sums)),
        "a mean of per-batch perplexities: sum the NLL and the tokens over all batches, "
        "then divide": sum(math.exp(s / n) for s, n in zip(sums, counts)) / len(sums),
        "a mean over sentences: every token counts once, so long captions weigh more": math.exp(
            sum(sentences) / len(sentences)
        ),
        "label smoothing (the training loss): the perplexity uses the plain NLL of the "
        "target pieces": math.exp(smoothed / sum(counts)),
    }


def _perplexity_attempt(my_perplexity: Callable[[nn.Module, Sequence[Batch]], float]) -> str:
    model, examples = samples.tiny_model().eval(), perplexity_examples()
    batches = [collate(batch) for batch in examples]
    expected = perplexity(model, [example for batch in examples for example in batch])
    with torch.no_grad():
        got = my_perplexity(model, batches)
    got = float(got) if isinstance(got, torch.Tensor) and got.numel() == 1 else got
    expect(
        isinstance(got, (int, float)) and not isinstance(got, bool),
        f"return a number, not {describe(got)}",
    )
    if not math.isclose(got, expected, rel_tol=1e-4):
        hint = next(
            (
                f" — it looks like {slip}"
                for slip, wrong in _perplexity_slips(model, batches).items()
                if math.isclose(got, wrong, rel_tol=1e-4)
            ),
            " — exp(sum of -log p(target) over every real target piece / their number), no "
            "label smoothing",
        )
        expect(
            False,
            f"your perplexity is {got:,.1f}; tmtlib.train.validation_loss gives "
            f"{expected:,.1f}{hint}",
        )
    tokens = sum(batch.tgt_tokens for batch in batches)
    return (
        f"perplexity {expected:,.0f} over {tokens} held-out pieces in {len(batches)} batches, as "
        "tmtlib.train.validation_loss computes it, for an untrained model (a uniform guess among "
        f"the {samples.tokenizer().vocab_size:,} pieces scores {samples.tokenizer().vocab_size:,})"
    )


def check_perplexity(my_perplexity: Callable[[nn.Module, Sequence[Batch]], float]) -> Verdict:
    """``my_perplexity(model, batches)`` -> the language model's perplexity on ``batches`` of
    held-out captions."""
    return run_check("language-model perplexity", lambda: _perplexity_attempt(my_perplexity))


def parts_with_gradient(model: nn.Module) -> set[str]:
    """The parts (``tmtlib.transfer.part_of``) of ``model`` whose parameters got a non-zero
    gradient."""
    return {
        part_of(name)
        for name, p in model.named_parameters()
        if p.grad is not None and bool(p.grad.any())
    }


def _parts_attempt(my_parts: Callable[[nn.Module], set[str]]) -> str:
    tok, found = samples.tokenizer(), []
    for kind in ("lm", "dae", "vae"):
        model = samples.tiny_model(latent_dim=8 if kind == "vae" else 0)
        objective = make_objective(kind, tok)
        examples = [
            objective.corrupt(e, random.Random(i))
            for i, e in enumerate(
                Example(None if kind == "lm" else ids, ids, tok.lang_id("en"))
                for ids in samples.caption_ids("en", 16)
            )
        ]
        with torch.random.fork_rng():  # the VAE's sampling must not move the caller's random state
            objective.loss(model, collate(examples)).loss.backward()
        expected, got = parts_with_gradient(model), my_parts(model)
        expect(
            isinstance(got, (set, frozenset)), f"return a set of part names, not {describe(got)}"
        )
        expect(
            set(got) == expected,
            f"after one {kind} step the parts with a gradient are {sorted(expected)}; you "
            f"found {sorted(got)} (a parameter counts if its .grad is not None and not all "
            "zero; tmtlib.transfer.part_of(name) gives its part)",
        )
        found.append(f"{kind}: {', '.join(sorted(expected))}")
    return "right for all three objectives (" + "; ".join(found) + ")"


def check_parts_with_gradient(my_parts: Callable[[nn.Module], set[str]]) -> Verdict:
    """``my_parts(model)`` -> the parts of ``model`` that received a non-zero gradient."""
    return run_check("parts each objective trains", lambda: _parts_attempt(my_parts))
