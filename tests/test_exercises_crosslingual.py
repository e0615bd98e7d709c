"""The notebook 07 checks accept a correct answer and name the usual mistakes."""

import pytest

from tmtlib.exercises import crosslingual
from tmtlib.transfer import part_of, transfer


def token_coverage(child, parent):
    seen = set(parent)
    return sum(piece in seen for piece in child) / len(child)


@pytest.mark.usefixtures("corpus")  # the check reads the real corpus
def test_token_coverage():
    assert crosslingual.check_token_coverage(token_coverage)
    types = crosslingual.check_token_coverage(
        lambda child, parent: len(set(child) & set(parent)) / len(set(child))
    )
    assert not types and "type coverage" in types.message


def test_copy_parts():
    assert crosslingual.check_copy_parts(lambda model, state, parts: transfer(model, state, parts))

    def by_prefix(model, state, parts):  # treats cross-attention as part of the decoder
        prefixes = {
            "embeddings": ("embed", "positions"),
            "encoder": "encoder",
            "decoder": "decoder",
            "cross_attention": "decoder",
        }
        for name, tensor in model.state_dict().items():
            if any(name.startswith(prefixes[part]) for part in parts):
                tensor.copy_(state[name])

    verdict = crosslingual.check_copy_parts(by_prefix)
    assert not verdict and "cross_attention" in verdict.message

    def wrong_direction(model, state, parts):
        for name, tensor in model.state_dict().items():
            if part_of(name) in parts:
                state[name].copy_(tensor)

    verdict = crosslingual.check_copy_parts(wrong_direction)
    assert not verdict and "changed the parent" in verdict.message


@pytest.mark.usefixtures("corpus")  # the check reads the real corpus
def test_source_overlap():
    def overlap(child, parent):
        sources = {src for src, _ in parent}
        return sum(src in sources for src, _ in child) / len(child)

    verdict = crosslingual.check_source_overlap(overlap)
    assert verdict and "100.0%" in verdict.message

    def whole_pairs(child, parent):
        parent = set(parent)
        return sum(pair in parent for pair in child) / len(child)

    pairs = crosslingual.check_source_overlap(whole_pairs)
    assert not pairs and "whole pairs" in pairs.message
