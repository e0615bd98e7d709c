"""Checks for notebook 03 (pretraining): teacher-forced language-model examples, top-p (nucleus)
filtering for sampling, and which parts of the network each objective trains."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..batching import Example, collate
from ..objectives import make_objective
from ..subwords import EOS_ID
from ..transfer import part_of
from . import Verdict, describe, expect, run_check, samples
from .decoding import check_top_p  # noqa: F401 (re-exported: the same filter as notebook 09's exercise)


def _lm_attempt(my_example: Callable[[Sequence[int], int], tuple[list[int], list[int]]]) -> str:
    tok = samples.tokenizer()
    tag = tok.lang_id("de")
    for i, ids in enumerate(samples.caption_ids("de", 200)):
        batch = collate([Example(None, ids, tag)])
        expected = batch.tgt_in[0].tolist(), batch.tgt_out[0].tolist()
        got = my_example(list(ids), tag)
        expect(isinstance(got, tuple) and len(got) == 2, f"return (inputs, targets), not {describe(got)}")
        inputs, targets = list(got[0]), list(got[1])
        expect(len(inputs) == len(targets), f"caption {i}: {len(inputs)} inputs but {len(targets)} targets: "
                                            "each input position predicts one target")
        expect(inputs != targets, "inputs equal targets: the model would learn to copy the current token; "
                                  "shift by one (the target at t is the input at t + 1)")
        expect(inputs[:1] == [tag], f"the first input must be the language tag <2de> (id {tag}), not {inputs[:1]}")
        expect(targets[-1:] == [EOS_ID], f"the last target must be EOS (id {EOS_ID}), so the model learns to stop")
        expect((inputs, targets) == expected, f"caption {i}: expected inputs {expected[0]} and targets {expected[1]}, "
                                              f"got {inputs} and {targets}")
    return "teacher-forced inputs and targets as tmtlib.batching.collate builds them, on 200 German captions"


def check_lm_example(my_example: Callable[[Sequence[int], int], tuple[list[int], list[int]]]) -> Verdict:
    """``my_example(ids, tag)`` -> (decoder inputs, targets) for the causal language model."""
    return run_check("language-model example", lambda: _lm_attempt(my_example))


def parts_with_gradient(model: nn.Module) -> set[str]:
    """The parts (``tmtlib.transfer.part_of``) of ``model`` whose parameters got a non-zero gradient."""
    return {part_of(name) for name, p in model.named_parameters() if p.grad is not None and bool(p.grad.any())}


def _parts_attempt(my_parts: Callable[[nn.Module], set[str]]) -> str:
    tok, found = samples.tokenizer(), []
    for kind in ("lm", "dae", "vae"):
        model = samples.tiny_model(latent_dim=8 if kind == "vae" else 0)
        objective = make_objective(kind, tok)
        examples = [objective.corrupt(e, random.Random(i)) for i, e in enumerate(
            Example(None if kind == "lm" else ids, ids, tok.lang_id("en")) for ids in samples.caption_ids("en", 16))]
        with torch.random.fork_rng():  # the VAE's sampling must not move the caller's random state
            objective.loss(model, collate(examples)).loss.backward()
        expected, got = parts_with_gradient(model), my_parts(model)
        expect(isinstance(got, (set, frozenset)), f"return a set of part names, not {describe(got)}")
        expect(set(got) == expected, f"after one {kind} step the parts with a gradient are {sorted(expected)}; you "
                                     f"found {sorted(got)} (a parameter counts if its .grad is not None and not all "
                                     "zero; tmtlib.transfer.part_of(name) gives its part)")
        found.append(f"{kind}: {', '.join(sorted(expected))}")
    return "right for all three objectives (" + "; ".join(found) + ")"


def check_parts_with_gradient(my_parts: Callable[[nn.Module], set[str]]) -> Verdict:
    """``my_parts(model)`` -> the parts of ``model`` that received a non-zero gradient."""
    return run_check("parts each objective trains", lambda: _parts_attempt(my_parts))
