"""Checks for notebook 03 (pretraining): teacher-forced language-model examples, top-p (nucleus)
filtering for sampling, and which parts of the network each objective trains."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..batching import Example, collate
from ..decode import nucleus
from ..objectives import make_objective
from ..tokenize import EOS_ID
from ..transfer import part_of
from . import Verdict, describe, expect, run_check, samples


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


def next_piece_scores(contexts: int = 32) -> torch.Tensor:
    """Log-frequencies [contexts, V] of the piece that follows each of the ``contexts`` most frequent
    pieces in German validation captions (add-0.001 smoothing): real next-token distributions."""
    tok, sentences = samples.tokenizer(), samples.caption_ids("de")
    follows = Counter((a, b) for ids in sentences for a, b in zip(ids, ids[1:]))
    firsts = [piece for piece, _ in Counter(a for a, _ in follows.elements()).most_common(contexts)]
    counts = torch.full((contexts, tok.vocab_size), 1e-3)
    for (a, b), n in follows.items():
        if a in firsts:
            counts[firsts.index(a), b] += n
    return counts.log()


def _top_p_attempt(my_top_p: Callable[[torch.Tensor, float], torch.Tensor]) -> str:
    scores = next_piece_scores()
    sizes = []
    for top_p in (0.5, 0.9, 0.95):
        expected, got = nucleus(scores, top_p), my_top_p(scores.clone(), top_p)
        expect(torch.is_tensor(got) and got.shape == scores.shape,
               f"return scores of shape {tuple(scores.shape)}, not {describe(got)}")
        kept, should = got.isfinite(), expected.isfinite()
        expect(bool(kept.any(-1).all()), f"top_p = {top_p}: some row keeps no token at all; keep the most likely one")
        expect(torch.equal(got[kept], scores[kept]), "the kept scores changed: leave them as they are (sampling "
                                                     "renormalises) and set the others to -inf")
        for row in range(len(scores)):
            if not torch.equal(kept[row], should[row]):
                n, m = int(kept[row].sum()), int(should[row].sum())
                mass = float(scores[row].softmax(-1)[kept[row]].sum())
                hint = ("too few: keep the token that makes the mass reach top_p" if n < m else
                        "too many: stop at the first token where the mass reaches top_p")
                expect(False, f"top_p = {top_p}, context {row}: you keep {n} tokens (mass {mass:.3f}), the nucleus "
                              f"has {m}; {hint}")
        sizes.append(f"{top_p}: {float(should.sum(-1).float().mean()):.0f}")
    return ("the same nucleus as tmtlib.decode.nucleus on 32 real next-piece distributions (mean tokens kept per "
            f"top_p: {', '.join(sizes)} of {scores.shape[1]:,})")


def check_top_p(my_top_p: Callable[[torch.Tensor, float], torch.Tensor]) -> Verdict:
    """``my_top_p(scores [b, V], top_p)`` -> the scores with every token outside the nucleus set to -inf."""
    return run_check("top-p (nucleus) filtering", lambda: _top_p_attempt(my_top_p))


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
