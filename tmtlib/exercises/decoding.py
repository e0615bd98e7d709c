"""Checks for notebook 09 (the interactive translator): greedy search written by hand, the nucleus
(top-p) filter of Holtzman et al. (2020), and sampling with it, compared with ``tmtlib.decode``.

The model is the tiny preset with the course's vocabulary, seeded, decoding real test sentences;
its end-of-sentence embedding is scaled up so that outputs end at different lengths (the output
layer is tied to the embeddings), which exercises the stopping rule as well as the search.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from itertools import pairwise

import torch
from torch import Tensor

from .. import data
from ..decode import _generate, _LiveHypotheses, evaluating, greedy, nucleus
from ..models import Seq2Seq, model_config
from ..pipeline import course_tokenizer
from ..subwords import EOS_ID
from . import Verdict, describe, expect, run_check, samples

MAX_LEN = 12
SENTENCES = (0, 1, 2, 3)


def toy_translator(eos_scale: float = 1.0) -> Seq2Seq:
    """A seeded tiny-preset model with the course's vocabulary. Untrained, but its large learned
    positions make each output position pick another token; ``eos_scale=5`` makes it end after
    one."""
    torch.manual_seed(0)
    model = Seq2Seq(
        model_config("tiny", course_tokenizer().vocab_size, positions="learned", max_len=64)
    )
    with torch.no_grad():
        model.positions.table.weight.normal_(0.0, 3.0)
        model.embed.weight[EOS_ID] *= eos_scale
    return model.eval()


def decoding_cases() -> list[tuple[str, Seq2Seq, int, list[int], int]]:
    """(name, model, test sentence index, source ids, max_len): a model that runs to its length
    limit (several limits) and one that ends with EOS after one token."""
    running, ending = toy_translator(), toy_translator(eos_scale=5.0)
    sources = sources_to_decode()
    return [
        (f"test sentence {i}", running, i, src, MAX_LEN - i % 3)
        for i, src in zip(SENTENCES, sources)
    ] + [
        (f"test sentence {i} (a model that ends early)", ending, i, src, MAX_LEN)
        for i, src in zip(SENTENCES[:2], sources)
    ]


def sources_to_decode() -> list[list[int]]:
    """Real English test sentences as source ids: the pieces, then EOS (as
    ``tmtlib.decode.translate`` does)."""
    sentences = [data.read_lines(1, "test_2016_flickr", "en")[i] for i in SENTENCES]
    return [ids + [EOS_ID] for ids in course_tokenizer().encode(sentences)]


def reference_greedy(model: Seq2Seq, src_ids: list[int], start_id: int, max_len: int) -> list[int]:
    """``tmtlib.decode.greedy`` for one sentence."""
    return greedy(model, torch.tensor([src_ids]), torch.tensor([start_id]), max_len=max_len)[0]


def _first_difference(got: list[int], expected: list[int]) -> str:
    for position, (mine, theirs) in enumerate(zip(got, expected)):
        if mine != theirs:
            return (
                f"they first differ at output position {position} (yours {mine}, the reference "
                f"{theirs})"
            )
    return f"yours has {len(got)} tokens, the reference {len(expected)}"


def _greedy_hint(got: list[int], expected: list[int], start_id: int, max_len: int) -> str:
    if got[:1] == [start_id] and got[1:] == expected:
        return " Leave out the start tag: return the generated tokens only."
    if got == expected + [EOS_ID]:
        return " Stop at EOS without returning it."
    if len(got) > len(expected) and got[: len(expected)] == expected:
        return f" Stop when the model predicts EOS, or after max_len = {max_len} tokens."
    return (
        " Feed the start tag plus every token so far and take the argmax of the LAST "
        "position's logits."
    )


def check_greedy(my_greedy: Callable[[Seq2Seq, list[int], int, int], list[int]]) -> Verdict:
    """Compare ``my_greedy(model, src_ids, start_id, max_len) -> output ids`` (no start tag, no EOS,
    at most ``max_len`` tokens) with ``tmtlib.decode.greedy`` on real test sentences."""

    def attempt() -> str:
        start = course_tokenizer().lang_id("de")
        lengths = []
        for name, model, _, src, max_len in decoding_cases():
            with evaluating(model):
                got = my_greedy(model, list(src), start, max_len)
            expected = reference_greedy(model, src, start, max_len)
            got = got.tolist() if isinstance(got, Tensor) else list(got)
            expect(
                got == expected,
                f"{name}, max_len {max_len}: your output {got} differs from tmtlib.decode.greedy's "
                f"{expected}: "
                f"{_first_difference(got, expected)}.{_greedy_hint(got, expected, start, max_len)}",
            )
            lengths.append(len(expected))
        return (
            f"your greedy search equals tmtlib.decode.greedy on {len(lengths)} cases (output "
            f"lengths {lengths})"
        )

    return run_check("greedy search by hand", attempt)


def next_piece_scores() -> Tensor:
    """Real next-token distributions [96, V]: the log-frequencies of the piece that follows each of
    the 32 most frequent pieces in German validation captions (add-0.001 smoothed, so the tails are
    long and tied), as they are and sharpened or flattened (temperatures 0.5 and 2)."""
    tok, sentences = samples.tokenizer(), samples.caption_ids("de")
    follows = Counter((a, b) for ids in sentences for a, b in pairwise(ids))
    firsts = [piece for piece, _ in Counter(a for a, _ in follows.elements()).most_common(32)]
    counts = torch.full((len(firsts), tok.vocab_size), 1e-3)
    for (a, b), n in follows.items():
        if a in firsts:
            counts[firsts.index(a), b] += n
    return torch.cat([counts.log() / temperature for temperature in (1.0, 0.5, 2.0)])


def nucleus_slip(kept: Tensor, probs: Tensor, p: float, tolerance: float = 1e-4) -> str | None:
    """What is wrong with the kept set ``kept`` [V] of one row of ``probs`` (float64) as the nucleus
    of mass ``p`` (Holtzman et al. 2020, eq. 3), or None. Judged by the definition, not by one sort
    order: ties may be broken either way, and a token whose mass-before lies within ``tolerance`` of
    p may go either way (float32 sums differ in their last bits between machines)."""
    if not kept.any():
        return (
            "no token is left: the most likely token must always stay (the nucleus is never empty)"
        )
    if (~kept).any() and probs[~kept].max() > probs[kept].min():
        return (
            "a dropped token is more likely than a kept one: keep the most probable tokens, in "
            "order"
        )
    mass, smallest = float(probs[kept].sum()), float(probs[kept].min())
    if mass < p - tolerance:
        return (
            f"the kept tokens hold {mass:.4f} < p: keep the token that crosses p too (the kept "
            "mass must reach p)"
        )
    if mass - smallest >= p + tolerance:
        return (
            f"the kept tokens hold {mass:.4f}, and {mass - smallest:.4f} >= p without the least "
            "likely one: one too many, stop as soon as the mass reaches p"
        )
    return None


def check_top_p(my_top_p: Callable[[Tensor, float], Tensor]) -> Verdict:
    """Compare ``my_top_p(logits [B, V], p) -> filtered logits`` with the definition of the nucleus
    (the library's :func:`tmtlib.decode.nucleus`) on real next-piece distributions: the kept logits
    unchanged, the others -inf, the kept set the smallest top set whose mass reaches p."""

    def attempt() -> str:
        logits = next_piece_scores()
        probs = logits.double().softmax(dim=-1)
        sizes = []
        for p in (0.1, 0.5, 0.9, 0.99, 1.0):
            got = my_top_p(logits.clone(), p)
            expect(
                isinstance(got, Tensor) and got.shape == logits.shape,
                f"return filtered logits of shape {tuple(logits.shape)}, not {describe(got)}",
            )
            kept = torch.isfinite(got)
            expect(
                torch.equal(got[kept], logits[kept]),
                f"with p = {p} the kept tokens' logits changed: leave them "
                "as they are and set the others to -inf (softmax renormalises)",
            )
            for row in range(len(logits)):
                slip = nucleus_slip(kept[row], probs[row], p)
                if slip is not None:  # the library's count only for the message
                    library = int(nucleus(logits[row : row + 1], p).isfinite().sum())
                    expect(
                        False,
                        f"with p = {p}, distribution {row}: you keep {int(kept[row].sum())} "
                        f"tokens, the library {library}; {slip}",
                    )
            sizes.append(f"{p}: {float(kept.sum(-1).double().mean()):.0f}")
        return (
            f"your filter keeps the nucleus on {len(logits)} real next-piece distributions (mean "
            f"tokens kept per p: {', '.join(sizes)} of {logits.shape[1]:,})"
        )

    return run_check("top-p (nucleus) filter", attempt)


def reference_top_p_sample(
    model: Seq2Seq,
    src_ids: list[int],
    start_id: int,
    max_len: int,
    p: float,
    generator: torch.Generator,
) -> list[int]:
    """Sampling from the top-p filtered distribution, one ``torch.multinomial`` draw per step, with
    the search loop of ``tmtlib.decode`` (with its decoder cache)."""

    def choose(logits: Tensor) -> Tensor:
        return torch.multinomial(
            nucleus(logits, p).softmax(dim=-1), 1, generator=generator
        ).squeeze(1)

    with evaluating(model):
        memory, memory_pad = model.encode(torch.tensor([src_ids]))
        hypotheses = _LiveHypotheses(
            model, torch.tensor([start_id]), memory, memory_pad, use_cache=True
        )
        return _generate(hypotheses, torch.tensor([max_len]), choose)[0]


def check_top_p_sampling(my_sample: Callable[..., list[int]]) -> Verdict:
    """Compare ``my_sample(model, src_ids, start_id, max_len, p, generator) -> output ids`` with the
    reference sampler: the same draws from a generator seeded alike, on real test sentences; with a
    tiny p it must be greedy search."""

    def attempt() -> str:
        start = course_tokenizer().lang_id("de")
        for name, model, index, src, max_len in decoding_cases():
            with evaluating(model):
                got = list(
                    my_sample(
                        model, list(src), start, max_len, 1e-6, torch.Generator().manual_seed(index)
                    )
                )
            expected = reference_greedy(model, src, start, max_len)
            expect(
                got == expected,
                f"{name}: with p = 1e-6 only the top token survives, so the output must be "
                f"greedy search's {expected}, not {got}: {_first_difference(got, expected)}",
            )
            for p in (0.5, 0.9):
                expected = reference_top_p_sample(
                    model, src, start, max_len, p, torch.Generator().manual_seed(index)
                )
                with evaluating(model):
                    got = list(
                        my_sample(
                            model,
                            list(src),
                            start,
                            max_len,
                            p,
                            torch.Generator().manual_seed(index),
                        )
                    )
                expect(
                    got == expected,
                    f"{name}, p = {p}: your sample {got} differs from the reference "
                    f"{expected}: {_first_difference(got, expected)}. Draw one token per step with "
                    "torch.multinomial(softmax(filtered logits), 1, generator=generator), "
                    "and stop at EOS",
                )
        return (
            "your sampler draws the same outputs as the reference at p = 0.5 and 0.9, and is "
            "greedy at p = 1e-6"
        )

    return run_check("top-p sampling", attempt)
