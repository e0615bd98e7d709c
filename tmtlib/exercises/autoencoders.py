"""Checks for notebook 01 (autoencoders): the reconstruction NLL, token masking and BART's span
infilling, each against ``tmtlib.objectives`` / ``tmtlib.noise`` on real validation captions."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..noise import infill_spans, mask_tokens
from ..objectives import token_nll
from ..subwords import PAD_ID
from . import Verdict, describe, expect, run_check, samples


def _nll_attempt(my_nll: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> str:
    batch = samples.caption_batch("en", 16)
    with torch.no_grad():
        logits = samples.tiny_model().forward(batch.src, batch.tgt_in)  # [B, T, V]
    expected = token_nll(logits, batch.tgt_out)[0]
    got = my_nll(logits, batch.tgt_out)
    expect(torch.is_tensor(got), f"return a tensor, not {describe(got)}")
    expect(
        got.numel() == 1, f"return one number (the mean over real tokens), not a {describe(got)}"
    )
    got = got.reshape(())
    expect(
        bool(got > 0),
        f"your NLL is {float(got):.4f} ≤ 0: a negative log-likelihood of a softmax is positive "
        "(check the sign: minimise -log p)",
    )
    flat_logits, flat_targets = logits.reshape(-1, logits.shape[-1]), batch.tgt_out.reshape(-1)
    with_padding = F.cross_entropy(flat_logits, flat_targets)
    summed = expected * batch.tgt_tokens
    expect(
        not torch.isclose(got, with_padding, rtol=1e-4),
        f"you averaged over padding too ({float(got):.4f} instead of {float(expected):.4f}): "
        f"{int((batch.tgt_out == PAD_ID).sum())} of the {batch.tgt_out.numel()} target positions "
        f"are padding (id {PAD_ID}); ignore them",
    )
    expect(
        not torch.isclose(got, summed, rtol=1e-4),
        "you returned the sum over tokens: divide by the number of real "
        f"target tokens ({batch.tgt_tokens})",
    )
    expect(
        bool(torch.isclose(got, expected, rtol=1e-4)),
        f"on 16 real captions the mean NLL per real token is {float(expected):.4f}, yours "
        f"{float(got):.4f} (log_softmax over the vocabulary, pick the target's log-probability, "
        "negate, average over real tokens)",
    )
    return f"{float(got):.4f} nats per token on 16 real captions, as tmtlib.objectives.token_nll"


def check_reconstruction_nll(
    my_nll: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> Verdict:
    """``my_nll(logits [B, T, V], targets [B, T])`` -> mean NLL over non-padding target tokens."""
    return run_check("reconstruction NLL", lambda: _nll_attempt(my_nll))


Corruption = Callable[..., list[int]]


def _common_invariants(corrupt: Callable[[list[int], random.Random], list[int]], sentences) -> None:
    """What every corruption must do: leave its input alone and repeat itself for the same seed."""
    tokens = list(sentences[0])
    got = corrupt(tokens, random.Random(0))
    expect(isinstance(got, list), f"return a new list of ids, not {describe(got)}")
    expect(
        got is not tokens and tokens == list(sentences[0]),
        "your function changed its input list: work on a copy",
    )
    expect(
        corrupt(list(sentences[0]), random.Random(0)) == got,
        "two calls with random.Random(0) gave different outputs: draw all randomness from `rng`",
    )


def _masking_attempt(my_mask: Corruption) -> str:
    tok, sentences = samples.tokenizer(), samples.caption_ids("en")
    mask = tok.mask_id
    _common_invariants(lambda t, rng: my_mask(t, 0.5, mask, rng), sentences)
    masked = total = 0
    for i, tokens in enumerate(sentences):
        got = my_mask(list(tokens), 0.15, mask, random.Random(i))
        expect(
            len(got) == len(tokens),
            f"caption {i}: {len(tokens)} pieces became {len(got)}; masking keeps the "
            "length (each chosen piece becomes one <mask>)",
        )
        changed = [(a, b) for a, b in zip(tokens, got) if a != b]
        expect(
            all(b == mask for _, b in changed),
            f"caption {i}: a piece changed into something other than "
            f"<mask> (id {mask}): {changed[:3]}",
        )
        masked, total = masked + len(changed), total + len(tokens)
    reference = (
        sum(
            a != b
            for i, t in enumerate(sentences)
            for a, b in zip(t, mask_tokens(t, 0.15, mask, random.Random(i)))
        )
        / total
    )
    rate = masked / total
    expect(
        abs(rate - 0.15) < 0.02,
        f"with p = 0.15 you masked {100 * rate:.1f}% of {total:,} pieces (tmtlib masks "
        f"{100 * reference:.1f}%): mask each piece independently with probability p",
    )
    expect(
        my_mask(list(sentences[1]), 0.0, mask, random.Random(0)) == list(sentences[1]),
        "p = 0 must change nothing",
    )
    expect(
        set(my_mask(list(sentences[1]), 1.0, mask, random.Random(0))) == {mask},
        "p = 1 must mask every piece",
    )
    return (
        f"masked {100 * rate:.1f}% of {total:,} real pieces at p = 0.15 (tmtlib: "
        f"{100 * reference:.1f}%)"
    )


def check_token_masking(my_mask: Corruption) -> Verdict:
    """``my_mask(tokens, p, mask_id, rng)`` -> tokens with each piece replaced by ``mask_id`` with
    probability p."""
    return run_check("token masking", lambda: _masking_attempt(my_mask))


def _spans_removed(tokens: Sequence[int], noisy: Sequence[int], mask: int) -> list[int] | None:
    """The lengths of the spans each mask replaced, if ``noisy`` is ``tokens`` with disjoint
    contiguous spans (possibly empty) each replaced by ONE mask; ``None`` if no such reading
    exists."""
    n = len(tokens)
    # (position in noisy, in tokens) -> spans
    reachable: dict[tuple[int, int], list[int]] = {(0, 0): []}
    for i, piece in enumerate(noisy):
        following: dict[tuple[int, int], list[int]] = {}
        for (_, j), spans in reachable.items():
            if piece == mask:
                for end in range(j, n + 1):
                    following.setdefault((i + 1, end), spans + [end - j])
            elif j < n and tokens[j] == piece:
                following.setdefault((i + 1, j + 1), spans)
        reachable = following
    return reachable.get((len(noisy), n))


def _infilling_attempt(my_infill: Corruption) -> str:
    tok, sentences = samples.tokenizer(), samples.caption_ids("en", 400)
    mask = tok.mask_id
    _common_invariants(lambda t, rng: my_infill(t, 0.5, mask, rng), sentences)
    expect(
        my_infill(list(sentences[1]), 0.0, mask, random.Random(0)) == list(sentences[1]),
        "ratio 0 must change nothing",
    )
    lengths, total = [], 0
    for i, tokens in enumerate(sentences):
        got = my_infill(list(tokens), 0.3, mask, random.Random(i))
        spans = _spans_removed(tokens, got, mask)
        expect(
            spans is not None,
            f"caption {i}: {list(tokens)} -> {got} is not the caption with spans replaced by "
            "single masks (the other pieces must stay, in order)",
        )
        lengths, total = lengths + spans, total + len(tokens)
    reference = [infill_spans(t, 0.3, mask, random.Random(i)) for i, t in enumerate(sentences)]
    ref_masks = sum(r.count(mask) for r in reference)
    ref_removed = sum(len(t) - len(r) + r.count(mask) for t, r in zip(sentences, reference))
    removed = sum(lengths)
    share = removed / total
    expect(
        abs(share - 0.3) < 0.03,
        f"you removed {100 * share:.1f}% of {total:,} pieces at ratio 0.3: spans should "
        "cover about 30% of the pieces",
    )
    expect(
        len(lengths) != removed,
        f"your {len(lengths):,} masks replace {removed:,} pieces, one each: that is token "
        "masking. Each *span* of Poisson(3) pieces must become ONE mask, so that the model "
        "learns how many pieces are missing",
    )
    mean_span, ref_span = removed / len(lengths), ref_removed / ref_masks
    expect(
        abs(mean_span - ref_span) < 0.25 * ref_span,
        f"your spans are {mean_span:.2f} pieces long on average, tmtlib's {ref_span:.2f}: draw the "
        "span lengths from Poisson(λ = 3) (zero-length spans insert a mask)",
    )
    return (
        f"removed {100 * share:.1f}% of {total:,} real pieces in spans of {mean_span:.2f} pieces "
        f"on average (tmtlib: {ref_span:.2f}), each span one <mask>"
    )


def check_span_infilling(my_infill: Corruption) -> Verdict:
    """``my_infill(tokens, ratio, mask_id, rng)`` -> BART text infilling with Poisson(3) span
    lengths."""
    return run_check("span infilling", lambda: _infilling_attempt(my_infill))
