"""Denoising corruptions: properties checked over many seeds and random inputs."""

from __future__ import annotations

import random
import statistics
from dataclasses import FrozenInstanceError
from itertools import permutations

import pytest

from tmtlib import noise
from tmtlib.noise import NoiseConfig

MASK = 4  # content ids below start at 10, so a mask is never confused with a real token


def _sentence(rng: random.Random, max_len: int = 40) -> tuple[list[int], list[bool]]:
    """Distinct piece ids (so positions can be traced) and word-start flags, the first often
    False."""
    n = rng.randint(0, max_len)
    tokens = rng.sample(range(10, 10 + 10 * max_len), n)
    starts = [rng.random() < 0.6 for _ in range(n)]
    return tokens, starts


def _words(tokens: list[int], starts: list[bool]) -> list[list[int]]:
    words: list[list[int]] = []
    for token, start in zip(tokens, starts):
        if start or not words:
            words.append([])
        words[-1].append(token)
    return words


def _is_subsequence(short: list[int], long: list[int]) -> bool:
    rest = iter(long)
    return all(token in rest for token in short)


# Every corruption with a strength that makes it act, in piece and in word mode.
CORRUPTIONS = {
    "mask": lambda t, rng, ws=None: noise.mask_tokens(t, 0.3, MASK, rng, ws),
    "delete": lambda t, rng, ws=None: noise.delete_tokens(t, 0.3, rng, ws),
    "infill": lambda t, rng, ws=None: noise.infill_spans(t, 0.3, MASK, rng, word_starts=ws),
    "shuffle": lambda t, rng, ws=None: noise.shuffle_locally(t, 3, rng, ws),
    "apply": lambda t, rng, ws=None: noise.apply_noise(
        t, NoiseConfig(mask_p=0.1, delete_p=0.1, infill_ratio=0.3, shuffle_k=2), rng, MASK, ws
    ),
}


# --- shared contract -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_inputs_are_never_mutated_and_a_new_list_comes_back(name):
    corrupt = CORRUPTIONS[name]
    data = random.Random(0)
    for seed in range(200):
        tokens, starts = _sentence(data)
        before, starts_before = list(tokens), list(starts)
        for ws in (None, starts):
            out = corrupt(tokens, random.Random(seed), ws)
            assert tokens == before and starts == starts_before
            assert out is not tokens and isinstance(out, list)
        assert corrupt(tuple(tokens), random.Random(seed)) == corrupt(tokens, random.Random(seed))


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_same_seed_same_output_and_different_seeds_differ(name):
    corrupt = CORRUPTIONS[name]
    tokens = list(range(10, 60))
    for seed in range(20):
        assert corrupt(tokens, random.Random(seed)) == corrupt(tokens, random.Random(seed))
    outputs = {tuple(corrupt(tokens, random.Random(seed))) for seed in range(20)}
    assert len(outputs) > 10


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_empty_input_gives_empty_output(name):
    assert CORRUPTIONS[name]([], random.Random(0)) == []
    assert CORRUPTIONS[name]([], random.Random(0), []) == []


def test_word_starts_must_match_the_tokens():
    with pytest.raises(ValueError, match="2 flags for 3 tokens"):
        noise.mask_tokens([10, 11, 12], 0.5, MASK, random.Random(0), [True, False])


def test_leading_pieces_without_a_word_start_form_a_word():
    starts = [False, False, True, False, True]  # words [10, 11] | [12, 13] | [14]
    orders = {
        tuple(t for w in order for t in w) for order in permutations([[10, 11], [12, 13], [14]])
    }
    seen = {
        tuple(noise.shuffle_locally([10, 11, 12, 13, 14], 2, random.Random(seed), starts))
        for seed in range(200)
    }
    assert seen <= orders and len(seen) > 1


# --- masking -------------------------------------------------------------------------------------


def test_mask_p0_is_identity_and_p1_masks_everything():
    data = random.Random(1)
    for seed in range(100):
        tokens, starts = _sentence(data)
        for ws in (None, starts):
            assert noise.mask_tokens(tokens, 0.0, MASK, random.Random(seed), ws) == tokens
            assert noise.mask_tokens(tokens, 1.0, MASK, random.Random(seed), ws) == [MASK] * len(
                tokens
            )


def test_masking_preserves_length_and_only_writes_masks():
    data = random.Random(2)
    for seed in range(300):
        tokens, _ = _sentence(data)
        out = noise.mask_tokens(tokens, 0.4, MASK, random.Random(seed))
        assert len(out) == len(tokens)
        assert all(o == t or o == MASK for o, t in zip(out, tokens))


def test_mask_rate_matches_p():
    out = noise.mask_tokens(list(range(10, 20010)), 0.15, MASK, random.Random(3))
    assert abs(out.count(MASK) / len(out) - 0.15) < 0.01


def test_word_masking_masks_whole_words():
    data = random.Random(4)
    for seed in range(300):
        tokens, starts = _sentence(data)
        out = noise.mask_tokens(tokens, 0.5, MASK, random.Random(seed), starts)
        assert len(out) == len(tokens)
        position = 0
        for word in _words(tokens, starts):
            piece_out = out[position : position + len(word)]
            assert piece_out == word or piece_out == [MASK] * len(word)
            position += len(word)


# --- deletion ------------------------------------------------------------------------------------


def test_deletion_keeps_order_never_empties_and_p0_is_identity():
    data = random.Random(5)
    for seed in range(300):
        tokens, starts = _sentence(data)
        assert noise.delete_tokens(tokens, 0.0, random.Random(seed)) == tokens
        for p in (0.3, 0.9, 1.0):
            for ws in (None, starts):
                out = noise.delete_tokens(tokens, p, random.Random(seed), ws)
                assert _is_subsequence(out, tokens)
                assert bool(out) == bool(tokens)


def test_deleting_everything_keeps_exactly_one_unit():
    tokens, starts = [10, 11, 12, 13, 14], [True, False, True, True, False]
    kept = {tuple(noise.delete_tokens(tokens, 1.0, random.Random(s), starts)) for s in range(100)}
    assert kept == {(10, 11), (12,), (13, 14)}


def test_delete_rate_matches_p():
    out = noise.delete_tokens(list(range(10, 20010)), 0.1, random.Random(6))
    assert abs(1 - len(out) / 20000 - 0.1) < 0.01


def test_word_deletion_drops_whole_words():
    data = random.Random(7)
    for seed in range(300):
        tokens, starts = _sentence(data)
        out = noise.delete_tokens(tokens, 0.4, random.Random(seed), starts)
        kept_words = [w for w in _words(tokens, starts) if w[0] in out]
        assert out == [t for w in kept_words for t in w]


# --- span infilling ------------------------------------------------------------------------------


def test_infill_ratio0_is_identity_and_ratio1_leaves_only_masks():
    data = random.Random(8)
    for seed in range(100):
        tokens, _ = _sentence(data)
        assert noise.infill_spans(tokens, 0.0, MASK, random.Random(seed)) == tokens
        out = noise.infill_spans(tokens, 1.0, MASK, random.Random(seed))
        assert set(out) <= {MASK} and bool(out) == bool(tokens)


def test_infill_keeps_the_rest_in_order_and_covers_the_ratio():
    data = random.Random(9)
    for seed in range(300):
        tokens, _ = _sentence(data)
        out = noise.infill_spans(tokens, 0.3, MASK, random.Random(seed))
        kept = [t for t in out if t != MASK]
        assert _is_subsequence(kept, tokens)
        covered = len(tokens) - len(kept)
        assert int(0.3 * len(tokens)) <= covered <= int(0.3 * len(tokens)) + 1
        # every gap left by covered tokens holds at least one mask
        for a, b in zip([None, *kept], [*kept, None]):
            gap = (tokens.index(b) if b else len(tokens)) - (tokens.index(a) + 1 if a else 0)
            between = out[(out.index(a) + 1 if a else 0) : (out.index(b) if b else len(out))]
            assert gap == 0 or len(between) >= 1


def test_infill_fraction_is_unbiased_on_short_inputs():
    covered = [
        7 - sum(t != MASK for t in noise.infill_spans(range(10, 17), 0.3, MASK, random.Random(s)))
        for s in range(4000)
    ]
    assert abs(statistics.mean(covered) - 2.1) < 0.05


@pytest.mark.parametrize("lam", [1.0, 3.0, 5.0])
def test_each_span_becomes_one_mask_with_mean_length_lambda(lam):
    covered = masks = 0
    for seed in range(10):
        out = noise.infill_spans(
            list(range(10, 3010)), 0.3, MASK, random.Random(seed), poisson_lambda=lam
        )
        covered += 3000 - sum(t != MASK for t in out)
        masks += out.count(MASK)
    assert covered == 10 * 900
    assert abs(covered / masks - lam) < 0.1 * lam


def _assert_words_whole(tokens, starts, out):
    """Every word of ``tokens`` is either absent from ``out`` or present with all its pieces
    together."""
    for word in _words(tokens, starts):
        present = [t for t in word if t in out]
        assert present in ([], word)
        if present:
            start = out.index(word[0])
            assert out[start : start + len(word)] == word


def test_infill_in_word_mode_covers_whole_words():
    data = random.Random(10)
    for seed in range(300):
        tokens, starts = _sentence(data)
        out = noise.infill_spans(tokens, 0.4, MASK, random.Random(seed), word_starts=starts)
        _assert_words_whole(tokens, starts, out)


def test_poisson_sampler_has_mean_and_variance_lambda():
    rng = random.Random(11)
    for lam in (0.5, 3.0, 3.5):
        draws = [noise.sample_poisson(lam, rng) for _ in range(20000)]
        assert abs(statistics.mean(draws) - lam) < 0.05 * lam + 0.02
        assert abs(statistics.variance(draws) - lam) < 0.1 * lam
    with pytest.raises(ValueError, match="poisson_lambda"):
        noise.sample_poisson(0.0, rng)


# --- local shuffling -----------------------------------------------------------------------------


@pytest.mark.parametrize("k", [0, 1, 2, 3, 7])
def test_shuffle_preserves_tokens_and_moves_none_more_than_k(k):
    data = random.Random(12)
    largest = 0
    for seed in range(300):
        tokens, _ = _sentence(data)
        out = noise.shuffle_locally(tokens, k, random.Random(seed))
        assert sorted(out) == sorted(tokens)
        moves = [abs(out.index(t) - i) for i, t in enumerate(tokens)]
        assert all(move <= k for move in moves)
        largest = max([largest, *moves])
    # small bounds are reached: the shuffle is no stricter than promised
    assert largest >= min(k, 3)


def test_shuffle_k0_is_identity():
    data = random.Random(13)
    for seed in range(100):
        tokens, starts = _sentence(data)
        assert noise.shuffle_locally(tokens, 0, random.Random(seed)) == tokens
        assert noise.shuffle_locally(tokens, 0, random.Random(seed), starts) == tokens


def test_word_shuffle_keeps_words_intact_and_moves_them_at_most_k():
    data = random.Random(14)
    for seed in range(300):
        tokens, starts = _sentence(data)
        words = _words(tokens, starts)
        out = noise.shuffle_locally(tokens, 2, random.Random(seed), starts)
        by_first = {w[0]: w for w in words}
        shuffled, position = [], 0
        while position < len(out):
            word = by_first[out[position]]
            assert out[position : position + len(word)] == word
            shuffled.append(word)
            position += len(word)
        assert sorted(shuffled) == sorted(words)
        assert all(abs(shuffled.index(w) - i) <= 2 for i, w in enumerate(words))


# --- configurations and composition -------------------------------------------------------------


def test_apply_noise_with_everything_off_is_identity_and_draws_nothing():
    data = random.Random(15)
    for seed in range(50):
        tokens, starts = _sentence(data)
        rng = random.Random(seed)
        state = rng.getstate()
        assert noise.apply_noise(tokens, NoiseConfig.none(), rng, MASK, starts) == tokens
        assert rng.getstate() == state


def test_apply_noise_runs_shuffle_delete_infill_mask_in_that_order():
    config = NoiseConfig(
        mask_p=0.2, delete_p=0.2, infill_ratio=0.3, poisson_lambda=2.0, shuffle_k=3
    )
    data = random.Random(16)
    for seed in range(200):
        tokens, _ = _sentence(data)
        rng = random.Random(seed)
        by_hand = noise.shuffle_locally(tokens, 3, rng)
        by_hand = noise.delete_tokens(by_hand, 0.2, rng)
        by_hand = noise.infill_spans(by_hand, 0.3, MASK, rng, poisson_lambda=2.0)
        by_hand = noise.mask_tokens(by_hand, 0.2, MASK, rng)
        assert noise.apply_noise(tokens, config, random.Random(seed), MASK) == by_hand


def test_apply_noise_in_word_mode_never_splits_a_word():
    config = NoiseConfig(mask_p=0.2, delete_p=0.2, infill_ratio=0.3, shuffle_k=2)
    data = random.Random(17)
    for seed in range(300):
        tokens, starts = _sentence(data)
        out = noise.apply_noise(tokens, config, random.Random(seed), MASK, starts)
        _assert_words_whole(tokens, starts, out)


def test_presets_and_descriptions():
    assert NoiseConfig.none() == NoiseConfig()
    assert NoiseConfig.bart() == NoiseConfig(infill_ratio=0.3, poisson_lambda=3.0)
    assert NoiseConfig.lample() == NoiseConfig(delete_p=0.1, shuffle_k=3)
    assert noise.describe(NoiseConfig.none()) == "no noise"
    assert noise.describe(NoiseConfig.bart()) == "infill 30% (Poisson λ=3)"
    assert noise.describe(NoiseConfig(mask_p=0.15, delete_p=0.1, shuffle_k=3)) == (
        "shuffle k=3 → delete 10% → mask 15%"
    )
    with pytest.raises(FrozenInstanceError):
        NoiseConfig().mask_p = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad",
    [
        {"mask_p": -0.1},
        {"delete_p": 1.5},
        {"infill_ratio": 2.0},
        {"poisson_lambda": 0.0},
        {"shuffle_k": -1},
    ],
)
def test_invalid_configs_are_clear_errors(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        NoiseConfig(**bad)


def test_invalid_arguments_are_clear_errors():
    rng = random.Random(0)
    with pytest.raises(ValueError, match="mask p"):
        noise.mask_tokens([10], 1.2, MASK, rng)
    with pytest.raises(ValueError, match="delete p"):
        noise.delete_tokens([10], -0.5, rng)
    with pytest.raises(ValueError, match="infill ratio"):
        noise.infill_spans([10], 1.5, MASK, rng)
    with pytest.raises(ValueError, match="shuffle k"):
        noise.shuffle_locally([10], -1, rng)
