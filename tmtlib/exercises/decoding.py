"""Checks for notebook 09 (the interactive translator): greedy search written by hand, the nucleus
(top-p) filter of Holtzman et al. (2020), and sampling with it, compared with ``tmtlib.decode``.

The model is the tiny preset with the course's vocabulary, seeded, decoding real test sentences;
its end-of-sentence embedding is scaled up so that outputs end at different lengths (the output
layer is tied to the embeddings), which exercises the stopping rule as well as the search.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .. import course, data
from ..decode import _generate, _Prefixes, evaluating, greedy, nucleus
from ..models import Seq2Seq, model_config
from ..tokenize import EOS_ID
from . import Verdict, describe, expect, run_check

MAX_LEN = 12
SENTENCES = (0, 1, 2, 3)


def toy_translator(eos_scale: float = 1.0) -> Seq2Seq:
    """A seeded tiny-preset model with the course's vocabulary. Untrained, but its large learned
    positions make each output position pick another token; ``eos_scale=5`` makes it end after one."""
    torch.manual_seed(0)
    model = Seq2Seq(model_config("tiny", course.tokenizer().vocab_size, positions="learned", max_len=64))
    with torch.no_grad():
        model.positions.table.weight.normal_(0.0, 3.0)
        model.embed.weight[EOS_ID] *= eos_scale
    return model.eval()


def decoding_cases() -> list[tuple[str, Seq2Seq, int, list[int], int]]:
    """(name, model, test sentence index, source ids, max_len): a model that runs to its length
    limit (several limits) and one that ends with EOS after one token."""
    running, ending = toy_translator(), toy_translator(eos_scale=5.0)
    sources = test_sources()
    return ([(f"test sentence {i}", running, i, src, MAX_LEN - i % 3) for i, src in zip(SENTENCES, sources)]
            + [(f"test sentence {i} (a model that ends early)", ending, i, src, MAX_LEN)
               for i, src in zip(SENTENCES[:2], sources)])


def test_sources() -> list[list[int]]:
    """Real English test sentences as source ids: the pieces, then EOS (as ``tmtlib.decode.translate`` does)."""
    sentences = [data.read_lines(1, "test_2016_flickr", "en")[i] for i in SENTENCES]
    return [ids + [EOS_ID] for ids in course.tokenizer().encode(sentences)]


def reference_greedy(model: Seq2Seq, src_ids: list[int], start_id: int, max_len: int) -> list[int]:
    """``tmtlib.decode.greedy`` for one sentence."""
    return greedy(model, torch.tensor([src_ids]), torch.tensor([start_id]), max_len=max_len)[0]


def _first_difference(got: list[int], expected: list[int]) -> str:
    for position, (mine, theirs) in enumerate(zip(got, expected)):
        if mine != theirs:
            return f"they first differ at output position {position} (yours {mine}, the reference {theirs})"
    return f"yours has {len(got)} tokens, the reference {len(expected)}"


def _greedy_hint(got: list[int], expected: list[int], start_id: int, max_len: int) -> str:
    if got[:1] == [start_id] and got[1:] == expected:
        return " Leave out the start tag: return the generated tokens only."
    if got == expected + [EOS_ID]:
        return " Stop at EOS without returning it."
    if len(got) > len(expected) and got[:len(expected)] == expected:
        return f" Stop when the model predicts EOS, or after max_len = {max_len} tokens."
    return " Feed the start tag plus every token so far and take the argmax of the LAST position's logits."


def check_greedy(my_greedy: Callable[[Seq2Seq, list[int], int, int], list[int]]) -> Verdict:
    """Compare ``my_greedy(model, src_ids, start_id, max_len) -> output ids`` (no start tag, no EOS,
    at most ``max_len`` tokens) with ``tmtlib.decode.greedy`` on real test sentences."""

    def attempt() -> str:
        start = course.tokenizer().lang_id("de")
        lengths = []
        for name, model, _, src, max_len in decoding_cases():
            with evaluating(model):
                got = my_greedy(model, list(src), start, max_len)
            expected = reference_greedy(model, src, start, max_len)
            got = got.tolist() if isinstance(got, Tensor) else list(got)
            expect(got == expected, f"{name}, max_len {max_len}: your output {got} differs from tmtlib.decode.greedy's "
                   f"{expected}: {_first_difference(got, expected)}.{_greedy_hint(got, expected, start, max_len)}")
            lengths.append(len(expected))
        return f"your greedy search equals tmtlib.decode.greedy on {len(lengths)} cases (output lengths {lengths})"

    return run_check("greedy search by hand", attempt)


def filter_cases() -> list[tuple[Tensor, float]]:
    """Flat, peaked and very peaked distributions over the course's vocabulary, at several p."""
    generator = torch.Generator().manual_seed(0)
    vocab = course.tokenizer().vocab_size
    cases = []
    for scale in (0.5, 3.0, 8.0):
        logits = torch.randn(3, vocab, generator=generator) * scale
        cases += [(logits, p) for p in (0.5, 0.9, 1.0)]
    return cases


def check_top_p(my_top_p: Callable[[Tensor, float], Tensor]) -> Verdict:
    """Compare ``my_top_p(logits [B, V], p) -> filtered logits`` with the library's :func:`tmtlib.decode.nucleus`: the same
    tokens kept (logits unchanged) and the others at -inf."""

    def attempt() -> str:
        kept = []
        for logits, p in filter_cases():
            got = my_top_p(logits.clone(), p)
            expected = nucleus(logits, p)
            expect(isinstance(got, Tensor) and got.shape == logits.shape,
                   f"return filtered logits of shape {tuple(logits.shape)}, not {describe(got)}")
            mine, theirs = torch.isfinite(got), torch.isfinite(expected)
            if not torch.equal(mine, theirs):
                difference = int(mine.sum(-1)[0] - theirs.sum(-1)[0])
                hint = ("you drop the token that crosses p: keep it (the kept mass must reach p)"
                        if difference == -1 else "keep the most probable tokens until their probability mass "
                        "reaches p: sort the softmax probabilities, not the logits' values alone")
                expect(False, f"at p = {p}, you keep {int(mine.sum(-1)[0])} tokens of the first row, the reference "
                       f"{int(theirs.sum(-1)[0])}: {hint}")
            expect(torch.allclose(got[theirs], expected[theirs]), "the kept tokens' logits changed: leave them as "
                   "they are and set the others to -inf (softmax renormalises)")
            kept.append(int(theirs.sum(-1)[0]))
        return f"your filter keeps the same tokens as the reference ({min(kept)} to {max(kept)} per row)"

    return run_check("top-p filter", attempt)


def reference_top_p_sample(model: Seq2Seq, src_ids: list[int], start_id: int, max_len: int, p: float,
                           generator: torch.Generator) -> list[int]:
    """Sampling from the top-p filtered distribution, one ``torch.multinomial`` draw per step, with
    the search loop of ``tmtlib.decode`` (with its decoder cache)."""
    def choose(logits: Tensor) -> Tensor:
        return torch.multinomial(nucleus(logits, p).softmax(dim=-1), 1, generator=generator).squeeze(1)

    with evaluating(model):
        memory, memory_pad = model.encode(torch.tensor([src_ids]))
        prefixes = _Prefixes(model, torch.tensor([start_id]), memory, memory_pad, use_cache=True)
        return _generate(prefixes, torch.tensor([max_len]), choose)[0]


def check_top_p_sampling(my_sample: Callable[..., list[int]]) -> Verdict:
    """Compare ``my_sample(model, src_ids, start_id, max_len, p, generator) -> output ids`` with the
    reference sampler: the same draws from a generator seeded alike, on real test sentences; with a
    tiny p it must be greedy search."""

    def attempt() -> str:
        start = course.tokenizer().lang_id("de")
        for name, model, index, src, max_len in decoding_cases():
            with evaluating(model):
                got = list(my_sample(model, list(src), start, max_len, 1e-6, torch.Generator().manual_seed(index)))
            expected = reference_greedy(model, src, start, max_len)
            expect(got == expected, f"{name}: with p = 1e-6 only the top token survives, so the output must be "
                   f"greedy search's {expected}, not {got}: {_first_difference(got, expected)}")
            for p in (0.5, 0.9):
                expected = reference_top_p_sample(model, src, start, max_len, p, torch.Generator().manual_seed(index))
                with evaluating(model):
                    got = list(my_sample(model, list(src), start, max_len, p, torch.Generator().manual_seed(index)))
                expect(got == expected, f"{name}, p = {p}: your sample {got} differs from the reference "
                       f"{expected}: {_first_difference(got, expected)}. Draw one token per step with "
                       "torch.multinomial(softmax(filtered logits), 1, generator=generator), and stop at EOS")
        return "your sampler draws the same outputs as the reference at p = 0.5 and 0.9, and is greedy at p = 1e-6"

    return run_check("top-p sampling", attempt)
