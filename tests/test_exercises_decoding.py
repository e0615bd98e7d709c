"""The notebook 09 checks accept a correct answer and name the usual mistakes."""

import pytest
import torch

from tmtlib.decode import nucleus
from tmtlib.exercises import decoding
from tmtlib.subwords import EOS_ID


def greedy_by_hand(model, src_ids, start_id, max_len, position=-1, choose=None):
    memory, pad = model.encode(torch.tensor([src_ids]))
    out = [start_id]
    for _ in range(max_len):
        logits = model.decode(torch.tensor([out]), memory, pad)[0, position]
        token = int(logits.argmax()) if choose is None else choose(logits)
        if token == EOS_ID:
            break
        out.append(token)
    return out[1:]


@pytest.mark.usefixtures("corpus")  # the check reads the real corpus
def test_greedy():
    assert decoding.check_greedy(greedy_by_hand)
    first_position = decoding.check_greedy(lambda *args: greedy_by_hand(*args, position=0))
    assert not first_position and "LAST position" in first_position.message
    with_tag = decoding.check_greedy(lambda *args: [args[2]] + greedy_by_hand(*args))
    assert not with_tag and "start tag" in with_tag.message


@pytest.mark.usefixtures("corpus")  # the check reads the real corpus
def test_top_p_filter():
    assert decoding.check_top_p(nucleus)

    def drops_crossing_token(logits, p):
        probs, order = logits.softmax(-1).sort(-1, descending=True)
        drop = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, probs.cumsum(-1) > p)
        return logits.masked_fill(drop, float("-inf"))

    verdict = decoding.check_top_p(drops_crossing_token)
    assert not verdict and "crosses p" in verdict.message


@pytest.mark.usefixtures("corpus")  # the check reads the real corpus
def test_top_p_sampling():
    def sample(model, src_ids, start_id, max_len, p, generator):
        def draw(logits):
            return int(
                torch.multinomial(nucleus(logits[None], p).softmax(-1), 1, generator=generator)
            )

        return greedy_by_hand(model, src_ids, start_id, max_len, choose=draw)

    assert decoding.check_top_p_sampling(sample)
    greedy_only = decoding.check_top_p_sampling(
        lambda m, s, st, ml, p, g: greedy_by_hand(m, s, st, ml)
    )
    assert not greedy_only and "p = 0.5" in greedy_only.message
