"""Searches and translate(): a tiny model trained to copy, equalities between searches, limits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tmtlib.decode import (
    beam_search,
    beam_search_n_best,
    decode_latent,
    greedy,
    nucleus,
    sample,
    translate,
)
from tmtlib.models import Seq2Seq, autocast, model_config
from tmtlib.quantize import Int8Seq2Seq
from tmtlib.subwords import EOS_ID, PAD_ID, TokenizerSettings, train_tokenizer

V, TAG = 20, 4  # content ids 5..19; 4 plays the target-language tag


pytestmark = pytest.mark.usefixtures("one_thread")


def copy_batch(
    n: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sources of 3-7 random tokens + EOS, and the copy task's decoder input and target."""
    lengths = torch.randint(3, 8, (n,), generator=generator).tolist()
    src, tgt_in, tgt_out = (torch.full((n, 9), PAD_ID) for _ in range(3))
    for i, length in enumerate(lengths):
        x = torch.randint(5, V, (length,), generator=generator)
        src[i, :length], src[i, length] = x, EOS_ID
        tgt_in[i, 0], tgt_in[i, 1 : length + 1] = TAG, x
        tgt_out[i, :length], tgt_out[i, length] = x, EOS_ID
    return src, tgt_in, tgt_out


def content(src: torch.Tensor) -> list[list[int]]:
    return [row[row.ne(PAD_ID) & row.ne(EOS_ID)].tolist() for row in src]


def tags(n: int) -> torch.Tensor:
    return torch.full((n,), TAG)


@pytest.fixture(scope="module")
def copier() -> Seq2Seq:
    """The tiny model after 200 AdamW steps on copying, learning rate decayed linearly to 0 (~2
    s)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    model = Seq2Seq(model_config("tiny", V))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    steps = 200
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    for _ in range(steps):
        src, tgt_in, tgt_out = copy_batch(64, generator)
        loss = F.cross_entropy(
            model(src, tgt_in).flatten(0, 1), tgt_out.flatten(), ignore_index=PAD_ID
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


@pytest.fixture(scope="module")
def untrained() -> Seq2Seq:
    """A random tiny model: long, diverse, rarely ending outputs that exercise the limits."""
    torch.manual_seed(1)
    return Seq2Seq(model_config("tiny", V, latent_dim=4)).eval()


@pytest.fixture(scope="module")
def held_out_sources() -> torch.Tensor:
    return copy_batch(16, torch.Generator().manual_seed(123))[0]


def sequence_log_prob(model: Seq2Seq, src: torch.Tensor, output: list[int], ended: bool) -> float:
    """log p(output [+ EOS] | src) by teacher forcing."""
    target = output + [EOS_ID] if ended else output
    with torch.no_grad():
        logits = model(src.unsqueeze(0), torch.tensor([[TAG, *target[:-1]]]))  # [1, T, V]
    return logits.log_softmax(-1)[0, torch.arange(len(target)), target].sum().item()


def test_greedy_copies_after_training(copier, held_out_sources):
    assert greedy(copier, held_out_sources, tags(16)) == content(held_out_sources)
    assert greedy(copier, held_out_sources, tags(16), use_cache=False) == content(held_out_sources)


def test_searches_under_bf16_autocast_still_copy(copier, held_out_sources):
    with autocast(torch.device("cpu"), "bf16"):
        assert greedy(copier, held_out_sources, tags(16)) == content(held_out_sources)
        assert beam_search(copier, held_out_sources, tags(16)) == content(held_out_sources)


def test_an_int8_copy_still_copies_and_leaves_the_fp32_model_as_it_was(copier, held_out_sources):
    before = {name: value.clone() for name, value in copier.state_dict().items()}
    int8 = Int8Seq2Seq(copier)
    assert greedy(int8, held_out_sources, tags(16)) == content(held_out_sources)
    assert beam_search(int8, held_out_sources, tags(16)) == content(held_out_sources)
    # every linear layer and the output projection compute with int8 weights; the fp32 model's
    # layers and weights are as they were
    assert not any(type(module) is torch.nn.Linear for module in int8.modules())
    assert sum(type(module) is torch.nn.Linear for module in copier.modules()) > 0
    assert int8.output_int8.weight().dtype == torch.qint8
    assert all(torch.equal(before[name], value) for name, value in copier.state_dict().items())
    src, tgt_in, _ = copy_batch(8, torch.Generator().manual_seed(5))
    with torch.no_grad():
        exact, approximate = copier(src, tgt_in), int8(src, tgt_in)
    assert (approximate - exact).abs().max() < 0.05 * exact.abs().max()
    with pytest.raises(RuntimeError, match="decodes only"):
        int8.train()


def test_beam_search_copies_and_beam_one_is_greedy(copier, untrained, held_out_sources):
    assert beam_search(copier, held_out_sources, tags(16)) == content(held_out_sources)
    for model in (copier, untrained):
        expected = greedy(model, held_out_sources, tags(16))
        for penalty in (0.0, 1.0):
            assert (
                beam_search(model, held_out_sources, tags(16), beam_size=1, length_penalty=penalty)
                == expected
            )


def test_beam_finds_at_least_the_greedy_score(untrained, held_out_sources):
    model, src = untrained, held_out_sources[:6]
    limit = 12
    found_best = beam_search_n_best(
        model, src, tags(6), beam_size=5, length_penalty=0.0, max_len=limit
    )
    assert [tokens for ((_, tokens),) in found_best] == beam_search(
        model, src, tags(6), beam_size=5, length_penalty=0.0, max_len=limit
    )
    for i, ((found, hypothesis),) in enumerate(found_best):
        greedy_output = greedy(model, src[i : i + 1], tags(1), max_len=limit)[0]
        greedy_score = sequence_log_prob(model, src[i], greedy_output, len(greedy_output) < limit)
        rescored = sequence_log_prob(model, src[i], hypothesis, len(hypothesis) < limit)
        assert found == pytest.approx(rescored, abs=1e-4)
        assert found >= greedy_score - 1e-4


def test_n_best_are_distinct_and_ordered(untrained, held_out_sources):
    found = beam_search_n_best(untrained, held_out_sources[:4], tags(4), beam_size=4, n_best=3)
    assert [len(best) for best in found] == [3] * 4
    for best in found:
        assert [h.score for h in best] == sorted((h.score for h in best), reverse=True)
        assert len({tuple(h.tokens) for h in best}) == 3
    with pytest.raises(ValueError, match="n_best"):
        beam_search_n_best(untrained, held_out_sources, tags(16), beam_size=2, n_best=3)


def test_cache_does_not_change_results(untrained, held_out_sources):
    for search in (greedy, beam_search):
        cached = search(untrained, held_out_sources, tags(16))
        assert cached == search(untrained, held_out_sources, tags(16), use_cache=False)


def test_length_limits(untrained, held_out_sources):
    lengths = held_out_sources.ne(PAD_ID).sum(1).tolist()
    for search in (greedy, beam_search):
        outputs = search(untrained, held_out_sources, tags(16), max_len_ratio=0.5, max_len_offset=1)
        assert all(len(o) <= int(0.5 * n + 1) for o, n in zip(outputs, lengths))
        assert max(len(o) for o in search(untrained, held_out_sources, tags(16), max_len=3)) == 3
    long_model = Seq2Seq(model_config("tiny", V, max_len=6)).eval()  # outputs fit the positions
    assert max(len(o) for o in greedy(long_model, None, tags(3), max_len=50)) <= 5
    with pytest.raises(ValueError, match="give max_len"):
        greedy(untrained, None, tags(2))


def test_lm_and_latent_decoding(untrained):
    lm = greedy(untrained, None, tags(3), max_len=7)
    assert len(lm) == 3 and all(len(o) <= 7 for o in lm)
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    memory = untrained.latent_memory(z)
    via_latent = decode_latent(untrained, z, tags(3), max_len=7)
    assert via_latent == greedy(untrained, None, tags(3), memory=memory, max_len=7)
    assert len(decode_latent(untrained, z, tags(3), max_len=7, beam_size=3)) == 3


def test_sampling(copier, untrained, held_out_sources):
    for model in (copier, untrained):
        expected = greedy(model, held_out_sources, tags(16), max_len=12)
        assert sample(model, tags(16), src=held_out_sources, top_k=1, max_len=12) == expected

    def draw(seed: int) -> list[list[int]]:
        generator = torch.Generator().manual_seed(seed)
        return sample(untrained, tags(8), max_len=10, temperature=1.5, generator=generator)

    assert draw(0) == draw(0) and draw(0) != draw(1)
    with pytest.raises(ValueError, match="temperature"):
        sample(untrained, tags(2), temperature=0.0)


def test_searches_restore_training_mode(untrained, held_out_sources):
    untrained.train()
    try:
        greedy(untrained, held_out_sources, tags(16))
        beam_search(untrained, held_out_sources, tags(16), beam_size=2)
        assert untrained.training
    finally:
        untrained.eval()


# --- translate ------------------------------------------------------------------------------------

WORDS = "red big old cat man girl sees dogs near the river runs".split()


@pytest.fixture(scope="module")
def spm_tokenizer(tmp_path_factory):
    generator = torch.Generator().manual_seed(0)
    lines = [
        " ".join(WORDS[i] for i in torch.randint(len(WORDS), (6,), generator=generator).tolist())
        for _ in range(300)
    ]
    return train_tokenizer(
        lines, TokenizerSettings(vocab_size=300), cache=tmp_path_factory.mktemp("spm")
    )


@pytest.fixture(scope="module")
def translator(spm_tokenizer) -> Seq2Seq:
    torch.manual_seed(2)
    return Seq2Seq(model_config("tiny", spm_tokenizer.vocab_size)).eval()


SENTENCES = [
    "the old man sees the river",
    "dogs",
    "",
    "a red cat runs near the big dogs and the girl",
    "girl",
    "   ",
    "the man runs",
]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_translate_restores_order_and_skips_empty_lines(translator, spm_tokenizer, beam_size):
    batched = translate(
        translator, spm_tokenizer, SENTENCES, "de", beam_size=beam_size, max_tokens=20
    )
    one_by_one = [
        translate(translator, spm_tokenizer, [s], "de", beam_size=beam_size)[0] for s in SENTENCES
    ]
    assert batched == one_by_one and batched[2] == batched[5] == ""
    assert any(batched)  # the random model does produce text


def test_translate_does_not_run_the_model_on_empty_input(spm_tokenizer):
    class Untouchable(Seq2Seq):
        def encode(self, src):
            raise AssertionError("the model was called")

    model = Untouchable(model_config("tiny", spm_tokenizer.vocab_size))
    assert translate(model, spm_tokenizer, ["", " \n"], "fr") == ["", ""]
    with pytest.raises(ValueError, match="unknown language"):
        translate(model, spm_tokenizer, ["dogs"], "xx")
    with pytest.raises(ValueError, match="precision must be one of"):
        translate(model, spm_tokenizer, ["dogs"], "fr", precision="fp16")


def test_translate_returns_attention(translator, spm_tokenizer):
    texts, alignments = translate(
        translator,
        spm_tokenizer,
        ["the old man sees the river", ""],
        "en",
        beam_size=2,
        return_attention=True,
    )
    alignment = alignments[0]
    assert alignments[1] is None and texts[1] == ""
    assert alignment.source_pieces == spm_tokenizer.pieces("the old man sees the river") + ["</s>"]
    assert alignment.output_pieces[-1] == "</s>"
    assert alignment.attention.shape == (len(alignment.output_pieces), len(alignment.source_pieces))
    torch.testing.assert_close(
        alignment.attention.sum(-1), torch.ones(len(alignment.output_pieces))
    )


def test_nucleus_keeps_the_smallest_set_reaching_top_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.05, 0.9, 0.03, 0.02]])
    kept = nucleus(probs.log(), 0.8).isfinite()
    assert kept.tolist() == [[True, True, False, False], [False, True, False, False]]
    assert nucleus(probs.log(), 0.81).isfinite()[0].tolist() == [True, True, True, False]
    # the best token always stays
    assert nucleus(probs.log(), 1e-6).isfinite().sum(-1).tolist() == [
        1,
        1,
    ]
    assert torch.equal(nucleus(probs.log(), 1.0), probs.log())
    # kept scores unchanged
    assert torch.equal(nucleus(probs.log(), 0.8)[0, :2], probs.log()[0, :2])
    with pytest.raises(ValueError, match="top_p"):
        nucleus(probs, 0.0)


def test_sampling_with_top_p(untrained, held_out_sources):
    tiny_nucleus = sample(untrained, tags(16), src=held_out_sources, top_p=1e-6, max_len=12)
    assert tiny_nucleus == greedy(untrained, held_out_sources, tags(16), max_len=12)
    with pytest.raises(ValueError, match="top_p"):
        sample(untrained, tags(2), top_p=1.5)
