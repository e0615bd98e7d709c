"""Checks for notebook 07 (cross-lingual transfer): how much of the child's text the parent's
vocabulary use already covers, moving chosen parts of a parent into a child as ``tmtlib.transfer``
does, and how much of the child's data the parent has already seen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from .. import data
from ..models import Seq2Seq, model_config
from ..pipeline import course_tokenizer
from ..transfer import part_of, transfer
from . import Verdict, expect, run_check


def coverage_inputs() -> tuple[list[int], list[int]]:
    """Real pieces: the French test set's (the child's text) and the parent's German training text
    (as notebook 7 counts them), both encoded with the course's joint vocabulary."""
    tok = course_tokenizer()
    french = [
        piece for ids in tok.encode(data.read_lines(1, "test_2016_flickr", "fr")) for piece in ids
    ]
    german = [piece for ids in tok.encode(data.read_lines(1, "train", "de")) for piece in ids]
    return french, german


def check_token_coverage(my_coverage: Callable[[list[int], list[int]], float]) -> Verdict:
    """Compare ``my_coverage(child_pieces, parent_pieces)`` (the share of the child's running pieces
    that occur at least once among the parent's) with the reference on real French and German
    text."""

    def attempt() -> str:
        french, german = coverage_inputs()
        seen = set(german)
        expected = sum(piece in seen for piece in french) / len(french)
        got = my_coverage(list(french), list(german))
        expect(
            isinstance(got, (float, int)),
            f"return a share between 0 and 1, not {type(got).__name__}",
        )
        types = len(set(french) & seen) / len(set(french))
        hint = ""
        if abs(got - types) < 1e-9:
            hint = (
                " You counted distinct pieces (type coverage); count every running piece "
                "(token coverage)."
            )
        elif abs(got - 100 * expected) < 1e-6:
            hint = " You returned a percentage; return a share between 0 and 1."
        elif abs(got - (1 - expected)) < 1e-9:
            hint = " You returned the share NOT covered."
        expect(
            abs(got - expected) < 1e-9,
            f"your coverage is {got:.4f}, the reference {expected:.4f}.{hint}",
        )
        return (
            f"{expected:.1%} of the French test pieces occur in the parent's German training "
            f"text (type coverage: {types:.1%})"
        )

    return run_check("token coverage", attempt)


def tiny_pair(vocab_size: int = 64) -> tuple[Seq2Seq, Seq2Seq]:
    """A fresh "child" and a differently initialised "parent" of the tiny preset (same shapes)."""
    torch.manual_seed(0)
    child = Seq2Seq(model_config("tiny", vocab_size, positions="learned", max_len=64))
    torch.manual_seed(1)
    parent = Seq2Seq(model_config("tiny", vocab_size, positions="learned", max_len=64))
    return child, parent


def _snapshot(model: nn.Module) -> dict[str, Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


_PART_HINTS = {
    "cross_attention": "Decoder tensors named *.cross_attn.* and *.cross_norm.* form the part "
    "'cross_attention', not 'decoder' (a language model's decoder never trains them)",
    "embeddings": "The part 'embeddings' holds embed.* and the learned positions.*",
    None: "Decide by the part each tensor belongs to: tmtlib.transfer.part_of(name)",
}

PART_CHOICES = (
    ("encoder",),
    ("embeddings", "encoder"),
    ("decoder",),
    ("cross_attention",),
    ("embeddings", "encoder", "decoder", "cross_attention"),
)


def check_copy_parts(
    my_copy_parts: Callable[[nn.Module, Mapping[str, Tensor], Sequence[str]], object],
) -> Verdict:
    """Compare ``my_copy_parts(child, parent_state, parts)``, which copies the parent's tensors of
    ``parts`` into ``child`` in place, with ``tmtlib.transfer.transfer`` on two tiny models, for
    several choices of parts; the parent's state must not change."""

    def attempt() -> str:
        for parts in PART_CHOICES:
            mine, parent = tiny_pair()
            reference, _ = tiny_pair()
            parent_state = parent.state_dict()
            before = _snapshot(parent)
            transfer(reference, parent, parts)
            my_copy_parts(mine, parent_state, list(parts))
            for name, tensor in before.items():
                expect(
                    torch.equal(parent.state_dict()[name], tensor),
                    f"with parts {list(parts)} you changed the parent's {name}: copy into "
                    "the child, not out of it",
                )
            expected, got = reference.state_dict(), mine.state_dict()
            for name in expected:
                copied, should = (
                    torch.equal(got[name], before[name]),
                    torch.equal(expected[name], before[name]),
                )
                expect(
                    copied == should,
                    f"with parts {list(parts)}, {name} (part {part_of(name)!r}) "
                    + (
                        "should come from the parent but kept its own initialisation"
                        if should
                        else "was copied but its part was not selected"
                    )
                    + f". {_PART_HINTS.get(part_of(name), _PART_HINTS[None])}",
                )
        return (
            f"you copy the same tensors as tmtlib.transfer.transfer for {len(PART_CHOICES)} "
            "choices of parts"
        )

    return run_check("copy chosen parts", attempt)


def overlap_inputs() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The child's 3,000 en→fr training pairs (seed 0, as in notebook 7) and the parent's en→de
    pairs."""
    child = data.low_resource_subset(data.load_parallel("en", "fr"), 3000, seed=0)
    return child, data.load_parallel("en", "de")


def check_source_overlap(
    my_overlap: Callable[[list[tuple[str, str]], list[tuple[str, str]]], float],
) -> Verdict:
    """Compare ``my_overlap(child_pairs, parent_pairs)`` (the share of child pairs whose *source*
    sentence is also a source sentence of the parent's training pairs) with the reference."""

    def attempt() -> str:
        child, parent = overlap_inputs()
        parent_sources = {src for src, _ in parent}
        expected = sum(src in parent_sources for src, _ in child) / len(child)
        got = my_overlap(list(child), list(parent))
        expect(
            isinstance(got, (float, int)),
            f"return a share between 0 and 1, not {type(got).__name__}",
        )
        parent_pairs = set(parent)
        whole_pairs = sum(pair in parent_pairs for pair in child) / len(child)
        hint = (
            " You compared whole pairs: the targets are in different languages, so they never "
            "match; compare the English sources"
            if abs(got - whole_pairs) < 1e-9
            else ""
        )
        expect(
            abs(got - expected) < 1e-9,
            f"your overlap is {got:.4f}, the reference {expected:.4f}.{hint}",
        )
        return f"{expected:.1%} of the child's English sources are in the parent's training data"

    return run_check("child sources seen by the parent", attempt)
