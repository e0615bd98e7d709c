"""Checks for the exercises of notebook 4, "Inside the translator".

* ``check_brevity_penalty(bp)``: BLEU's brevity penalty (Papineni et al. 2002, §2.2.2) against
  sacreBLEU's, on the course's recorded test-set translations;
* ``check_causal_attention(attention)``: causal scaled dot-product attention (Vaswani et al. 2017,
  eq. 1) against ``tmtlib.models.attend`` on the projected states of real test sentences;
* ``check_vaswani_learning_rate(lrate)``: the learning rate of Vaswani et al. (2017, eq. 3), in the
  paper's absolute form, against ``tmtlib.train.learning_rate_factor`` (which scales a base rate).

Each check says what is wrong (which input, which value, the likely slip), not just that it is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import cache

import torch
from sacrebleu.metrics import BLEU

from .. import data
from ..models import Seq2Seq, attend, attention_mask, model_config, split_heads
from ..pipeline import course_tokenizer
from ..settings import REPO_ROOT
from ..train import TrainConfig, learning_rate_factor
from . import Verdict, expect, run_check

# a kept record of the course (under data/results) whose 1,000 test_2016_flickr translations are
# stored with it
RECORD = "budgets/en-de_parent_dae_long_10000_seed2.json"


@cache
def recorded_translations() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(hypotheses, references) of ``RECORD``: real en->de translations of test_2016_flickr by a
    trained course model, and the German references they are scored against."""
    hyps = json.loads((REPO_ROOT / "data" / "results" / RECORD).read_text())["test"]["hypotheses"]
    refs = [de for _, de in data.load_parallel("en", "de", "test_2016_flickr")]
    return tuple(hyps), tuple(refs[: len(hyps)])


# --- exercise 1: the brevity penalty --------------------------------------------------------------


def _brevity_cases() -> list[tuple[str, int, int, float]]:
    """(description, hypothesis length c, reference length r, sacreBLEU's BP) on real translations:
    the whole test set, the test set with every translation cut to its first half (so c < r), and
    single sentences that are shorter, as long as, and longer than their references."""
    hyps, refs = recorded_translations()
    halves = [" ".join(h.split()[: max(1, len(h.split()) // 2)]) for h in hyps]
    bleu = BLEU()
    cases = []
    for name, system in (
        ("the recorded test translations", hyps),
        ("those translations cut in half", halves),
    ):
        score = bleu.corpus_score(list(system), [list(refs)])
        cases.append((name, score.sys_len, score.ref_len, score.bp))
    wanted = {
        "shorter": lambda c, r: c < r,
        "as long as": lambda c, r: c == r,
        "longer": lambda c, r: c > r,
    }
    for i, (hyp, ref) in enumerate(zip(hyps, refs)):
        score = bleu.corpus_score([hyp], [[ref]])  # one sentence as a corpus: no smoothing warning
        for label, holds in list(wanted.items()):
            if holds(score.sys_len, score.ref_len):
                cases.append(
                    (
                        f"test sentence {i} ({label} its reference)",
                        score.sys_len,
                        score.ref_len,
                        score.bp,
                    )
                )
                del wanted[label]
        if not wanted:
            break
    return cases


def _brevity_hint(mine: float, c: int, r: int) -> str:
    """The slip that turns sacreBLEU's penalty into ``mine``, if it is a usual one."""
    slips = {
        "exp(1 - c/r): the ratio is upside down, it must be exp(1 - r/c)": math.exp(1 - c / r),
        "exp(1 - r/c) also when c > r: the penalty is 1 for hypotheses at least as long as "
        "the reference": math.exp(1 - r / c) if c > 0 else 0.0,
        "a percentage: BP is a factor in [0, 1]": 100 * (math.exp(1 - r / c) if 0 < c < r else 1.0),
        "exp(r/c - 1): the sign of the exponent is flipped": math.exp(r / c - 1) if c > 0 else 0.0,
    }
    for slip, value in slips.items():
        if math.isclose(mine, value, rel_tol=1e-9):
            return f" — it looks like {slip}"
    return " — BP = 1 if c > r, else exp(1 - r/c)"


def check_brevity_penalty(brevity_penalty: Callable[[int, int], float]) -> Verdict:
    """Exercise: ``brevity_penalty(c, r)`` with c the hypothesis length and r the reference length
    (in 13a tokens, summed over the corpus) must equal sacreBLEU's BP on real translations."""

    cases = _brevity_cases()

    def attempt() -> str:
        for name, c, r, reference in cases:
            mine = brevity_penalty(c, r)
            expect(
                isinstance(mine, (int, float)) and not isinstance(mine, bool),
                f"brevity_penalty({c}, {r}) returned {mine!r}; it should return a float",
            )
            expect(
                math.isclose(mine, reference, rel_tol=1e-9, abs_tol=1e-12),
                f"on {name} (hypothesis length c = {c}, reference length r = {r}) your brevity "
                f"penalty is {mine:.4f}; sacreBLEU's is {reference:.4f}{_brevity_hint(mine, c, r)}",
            )
        return (
            f"equal to sacreBLEU's on {len(cases)} cases, from BP = "
            f"{min(c[3] for c in cases):.3f} to 1"
        )

    return run_check("brevity penalty", attempt)


# --- exercise 2: causal attention -----------------------------------------------------------------


@cache
def _attention_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries, keys and values [B, H, T, Dh] of three real test sentences: their embeddings
    projected by the first encoder layer of a seeded course-sized model (B = 3, H = 4, Dh = 64)."""
    tokenizer = course_tokenizer()
    sources = [en for en, _ in data.load_parallel("en", "de", "test_2016_flickr")[:3]]
    ids = [tokenizer.encode([s])[0][:12] for s in sources]
    length = min(len(i) for i in ids)
    torch.manual_seed(0)
    model = Seq2Seq(model_config("course", tokenizer.vocab_size, dropout=0.0)).eval()
    layer = model.encoder.layers[0]
    with torch.no_grad():
        x = layer.self_norm(model.embed_tokens(torch.tensor([i[:length] for i in ids])))
        q, k, v = layer.self_attn.qkv(x).chunk(3, dim=-1)
        return tuple(split_heads(t, model.config.n_heads) for t in (q, k, v))


def _attention_variants(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Usual slips in causal attention, each computed, so a wrong answer can be named."""
    T, Dh = q.size(-2), q.size(-1)
    scores = q @ k.transpose(-2, -1)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    return {
        "no mask: every position also attends to later ones": (scores / math.sqrt(Dh)).softmax(-1)
        @ v,
        "a mask that hides the diagonal too: a position must see itself (use triu(1), not "
        "triu(0))": (scores / math.sqrt(Dh))
        .masked_fill(torch.ones(T, T, dtype=torch.bool).triu(0), -1e9)
        .softmax(-1)
        @ v,
        "a mask that hides the past instead of the future (tril instead of triu)": (
            scores / math.sqrt(Dh)
        )
        .masked_fill(future.T, float("-inf"))
        .softmax(-1)
        @ v,
        "no scaling: divide the scores by sqrt(d_k)": scores.masked_fill(
            future, float("-inf")
        ).softmax(-1)
        @ v,
        "scores divided by d_k instead of sqrt(d_k)": (scores / Dh)
        .masked_fill(future, float("-inf"))
        .softmax(-1)
        @ v,
        "the softmax over the queries (dim=-2) instead of the keys (dim=-1)": (
            scores / math.sqrt(Dh)
        )
        .masked_fill(future, float("-inf"))
        .softmax(-2)
        .nan_to_num()
        @ v,
    }


def check_causal_attention(
    attention: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
) -> Verdict:
    """Exercise: ``attention(q, k, v)`` on [B, H, T, Dh] tensors must return
    softmax(QK^T / sqrt(d_k) + M) V [B, H, T, Dh], where M is -inf above the diagonal (position t
    sees positions 0..t), equal to ``tmtlib.models.attend`` with a causal mask."""

    q, k, v = _attention_inputs()
    T = q.size(2)

    def attempt() -> str:
        reference = attend(q, k, v, attention_mask(None, True, T, T, q.device))
        mine = attention(q.clone(), k.clone(), v.clone())
        expect(
            isinstance(mine, torch.Tensor),
            f"your function returned {type(mine).__name__}, not a tensor",
        )
        expect(
            mine.shape == reference.shape,
            f"your output has shape {tuple(mine.shape)}; for q, k, v of shape {tuple(q.shape)} it "
            f"should be {tuple(reference.shape)} [B, H, T, Dh]",
        )
        if not torch.allclose(mine, reference, atol=1e-5):
            for slip, wrong in _attention_variants(q, k, v).items():
                expect(
                    not torch.allclose(mine, wrong, atol=1e-5),
                    f"your output matches attention with {slip}",
                )
            t = int((mine - reference).abs().amax(dim=(0, 1, 3)).gt(1e-5).nonzero()[0])
            expect(
                False,
                f"your output first differs at position t = {t} (max difference "
                f"{(mine - reference).abs().max():.3g}); position 0 should equal v[..., 0, "
                ":] exactly",
            )
        changed_k, changed_v = k.clone(), v.clone()
        changed_k[:, :, -1] += 1.0
        changed_v[:, :, -1] += 1.0
        leaked = attention(q.clone(), changed_k, changed_v)[:, :, :-1]
        expect(
            torch.allclose(leaked, mine[:, :, :-1], atol=1e-6),
            "changing the last position's key and value changed earlier outputs: the future leaks",
        )
        return (
            f"equal to tmtlib.models.attend on {q.size(0)} real test sentences of {T} pieces, "
            f"{q.size(1)} heads"
        )

    return run_check("causal attention", attempt)


# --- exercise 3: the learning rate of eq. 3 -------------------------------------------------------

# (d_model, warm-up steps): the base Transformer of the paper, the course model with notebook 5's
# fine-tuning warm-up, and the paper's big Transformer
SCHEDULES = ((512, 4000), (256, 50), (1024, 4000))


def reference_learning_rate(step: int, d_model: int, warmup: int) -> float:
    """Eq. 3 of Vaswani et al. (2017), d_model^-0.5 * min(step^-0.5, step * warmup^-1.5) with steps
    counted from 1, written as the library computes it: a peak rate (d_model * warmup)^-0.5 times
    ``tmtlib.train.learning_rate_factor`` at the 0-based optimiser step ``step - 1``."""
    config = TrainConfig(warmup_steps=warmup, schedule="inverse_sqrt")
    return (d_model * warmup) ** -0.5 * learning_rate_factor(step - 1, config)


def _schedule_steps(warmup: int) -> list[int]:
    """Steps from 1 that cover the warm-up, its last step, the peak and the long decay."""
    return sorted(
        {1, 2, warmup // 2, warmup - 1, warmup, warmup + 1, 2 * warmup, 10 * warmup, 100_000} - {0}
    )


def _schedule_slips(d_model: int, warmup: int) -> dict[str, Callable[[int], float]]:
    """Usual slips in eq. 3, as functions of the step (from 1), so a wrong answer can be named."""

    def eq3(scale: float = d_model**-0.5, warmup_power: float = -1.5, pick=min, shift: int = 0):
        return lambda step: (
            scale * pick((step + shift) ** -0.5, (step + shift) * warmup**warmup_power)
        )

    return {
        "no d_model^-0.5 factor in front": eq3(scale=1.0),
        "d_model^0.5 instead of d_model^-0.5 in front": eq3(scale=d_model**0.5),
        "warmup^-0.5 instead of warmup^-1.5 in the warm-up term": eq3(warmup_power=-0.5),
        "max instead of min: the warm-up term must win during the warm-up, the decay after it": eq3(
            pick=max
        ),
        "no warm-up: the rate must rise linearly for the first warmup steps": lambda step: (
            (d_model * step) ** -0.5
        ),
        "steps counted from 0 (eq. 3's step_num is 1 at the first update)": eq3(shift=1),
        "a multiplier of a base rate, as tmtlib.train.learning_rate_factor: eq. 3 is the "
        "rate itself": lambda step: learning_rate_factor(
            step - 1, TrainConfig(warmup_steps=warmup, schedule="inverse_sqrt")
        ),
    }


def _same(values: list[float], expected: list[float]) -> bool:
    return all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(values, expected, strict=True))


def check_vaswani_learning_rate(lrate: Callable[[int, int, int], float]) -> Verdict:
    """Exercise: ``lrate(step, d_model, warmup)`` must be eq. 3 of Vaswani et al. (2017),
    d_model^-0.5 * min(step^-0.5, step * warmup^-1.5) with ``step`` counted from 1, equal to the
    course's schedule (``tmtlib.train.learning_rate_factor``) times the peak rate
    (d_model * warmup)^-0.5, for the paper's base and big models and the course's model, from the
    first step to step 100,000."""

    def attempt() -> str:
        peaks = []
        for d_model, warmup in SCHEDULES:
            steps = _schedule_steps(warmup)
            mine = [lrate(step, d_model, warmup) for step in steps]
            for step, value in zip(steps, mine):
                expect(
                    isinstance(value, (int, float)) and not isinstance(value, bool),
                    f"lrate({step}, {d_model}, {warmup}) returned {value!r}; it should "
                    "return a float",
                )
            reference = [reference_learning_rate(step, d_model, warmup) for step in steps]
            if not _same(mine, reference):
                hint = next(
                    (
                        f" — it looks like {slip}"
                        for slip, wrong in _schedule_slips(d_model, warmup).items()
                        if _same(mine, [wrong(step) for step in steps])
                    ),
                    " — lrate = d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)",
                )
                step, value, right = next(
                    row
                    for row in zip(steps, mine, reference)
                    if not math.isclose(row[1], row[2], rel_tol=1e-9)
                )
                expect(
                    False,
                    f"with d_model = {d_model} and warmup = {warmup}, at step {step} your rate is "
                    f"{value:.4g}; eq. 3 gives {right:.4g}{hint}",
                )
            peaks.append(
                f"{reference_learning_rate(warmup, d_model, warmup):.2g} (d_model "
                f"{d_model}, warm-up {warmup})"
            )
        return (
            "equal to the course's inverse-sqrt schedule times (d_model * warmup)^-0.5 at every "
            f"step tried; peak rates {', '.join(peaks)}"
        )

    return run_check("learning rate of Vaswani et al. (eq. 3)", attempt)
