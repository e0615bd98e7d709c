"""Checks for notebook 08 (fine-tuning strategies): freezing parts of a model, per-part learning
rates (discriminative fine-tuning) and gradual unfreezing (Howard & Ruder 2018), each compared with
``tmtlib.transfer`` on a model of the course's vocabulary size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from .. import transfer
from ..models import Seq2Seq, model_config
from . import Mismatch, Verdict, expect, run_check

VOCAB_SIZE = 8000  # the course's joint vocabulary


def fresh_model() -> Seq2Seq:
    """A tiny-preset translator with the course's vocabulary size and learned positions."""
    torch.manual_seed(0)
    return Seq2Seq(model_config("tiny", VOCAB_SIZE, positions="learned", max_len=64))


def _frozen(model: nn.Module) -> set[str]:
    return {name for name, param in model.named_parameters() if not param.requires_grad}


FREEZE_CASES = (
    ("encoder",),
    ("embeddings",),
    ("decoder",),
    ("embeddings", "encoder"),
    ("cross_attention",),
)


def check_freeze(my_freeze: Callable[[nn.Module, Sequence[str]], int]) -> Verdict:
    """Compare ``my_freeze(model, parts) -> parameters frozen`` with ``tmtlib.transfer.freeze``:
    the same parameters must stop training, and the count must be the same."""

    def attempt() -> str:
        for parts in FREEZE_CASES:
            mine, reference = fresh_model(), fresh_model()
            expected_count = transfer.freeze(reference, list(parts))
            count = my_freeze(mine, list(parts))
            extra, missing = (
                sorted(_frozen(mine) - _frozen(reference)),
                sorted(_frozen(reference) - _frozen(mine)),
            )
            if missing:
                raise Mismatch(
                    f"with parts {list(parts)} you left {missing[0]} (part "
                    f"{transfer.part_of(missing[0])!r})"
                    f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''} trainable: set "
                    "requires_grad = False on every parameter whose part_of(name) is selected"
                )
            if extra:
                raise Mismatch(
                    f"with parts {list(parts)} you froze {extra[0]}, which belongs to "
                    f"{transfer.part_of(extra[0])!r}: pick parameters by "
                    "tmtlib.transfer.part_of(name)"
                )
            expect(
                count == expected_count,
                f"with parts {list(parts)} you froze the right parameters but returned {count}; "
                f"the number of parameters (numel, not tensors) is {expected_count:,}",
            )
        return (
            f"you freeze the same parameters as tmtlib.transfer.freeze for {len(FREEZE_CASES)} "
            "choices of parts"
        )

    return run_check("freezing parts", attempt)


def _lr_and_decay(groups: Sequence[Mapping], model: nn.Module) -> dict[str, tuple[float, float]]:
    """Per parameter name: (learning rate, weight decay) of the group holding it; a parameter in
    two groups, or an object not among the model's parameters, fails the check."""
    names = {id(param): name for name, param in model.named_parameters()}
    settings: dict[str, tuple[float, float]] = {}
    for group in groups:
        expect(
            "params" in group and "lr" in group,
            "each group is a dict with 'params' and 'lr' (and 'weight_decay')",
        )
        for param in group["params"]:
            name = names.get(id(param))
            expect(
                name is not None,
                "a group holds something that is not one of the model's parameters",
            )
            expect(
                name not in settings,
                f"{name} is in two groups: every parameter belongs to exactly one",
            )
            settings[name] = (group["lr"], group.get("weight_decay", 0.0))
    return settings


PART_RATES = ({}, {"embeddings": 1e-4, "encoder": 3e-4}, {"decoder": 2e-3})


def check_parameter_groups(
    my_groups: Callable[[nn.Module, float, Mapping[str, float], float], list[dict]],
) -> Verdict:
    """Compare ``my_groups(model, lr, part_lrs, weight_decay) -> AdamW parameter groups`` with
    ``tmtlib.transfer.parameter_groups``, parameter by parameter: its learning rate (the part's, or
    ``lr``) and weight decay (none on 1-D parameters: biases and LayerNorm), frozen ones left
    out."""

    def attempt() -> str:
        for part_lrs in PART_RATES:
            model = fresh_model()
            transfer.freeze(model, ["cross_attention"])
            expected = _lr_and_decay(transfer.parameter_groups(model, 1e-3, part_lrs, 0.01), model)
            got = _lr_and_decay(my_groups(model, 1e-3, dict(part_lrs), 0.01), model)
            frozen_in, left_out = sorted(set(got) - set(expected)), sorted(set(expected) - set(got))
            if frozen_in:
                raise Mismatch(
                    f"{frozen_in[0]} is frozen (requires_grad False) but in your groups: "
                    "leave it out"
                )
            if left_out:
                raise Mismatch(f"{left_out[0]} is trainable but in none of your groups")
            for name, (lr, decay) in expected.items():
                my_lr, my_decay = got[name]
                expect(
                    my_lr == lr,
                    f"with part_lrs={part_lrs}, {name} (part {transfer.part_of(name)!r}) "
                    f"trains at {my_lr:g} in your groups, at {lr:g} in the reference",
                )
                expect(
                    my_decay == decay,
                    f"{name} has weight decay {my_decay:g}, the reference {decay:g}: "
                    + (
                        "1-D parameters (biases, LayerNorm) are not decayed"
                        if decay == 0
                        else "matrices (ndim >= 2, embeddings included) are decayed"
                    ),
                )
        return (
            "your groups give every parameter the same learning rate and weight decay as tmtlib's"
        )

    return run_check("per-part learning rates", attempt)


SCHEDULE = [(10, ["encoder"]), (20, ["embeddings"])]


def check_gradual_unfreezing(
    my_class: Callable[[Sequence[tuple[int, Sequence[str]]]], object],
) -> Verdict:
    """Compare ``my_class(schedule)`` (with ``initial(model)`` and ``on_step(step, model) -> parts
    unfrozen``) with ``tmtlib.transfer.GradualUnfreezing``: the frozen parameters after ``initial``
    and after each step, a run that resumes at a later step, and the parts each step reports."""

    def attempt() -> str:
        for steps in (range(1, 31), [15, 25]):  # every step, then a resumed run that skips ahead
            mine, reference = fresh_model(), fresh_model()
            my_schedule, ref_schedule = my_class(SCHEDULE), transfer.GradualUnfreezing(SCHEDULE)
            my_schedule.initial(mine)
            ref_schedule.initial(reference)
            expect(
                _frozen(mine) == _frozen(reference),
                "after initial(model), freeze every part named in the "
                f"schedule: {len(_frozen(reference))} tensors, you froze {len(_frozen(mine))}",
            )
            for step in steps:
                expected, got = (
                    ref_schedule.on_step(step, reference),
                    my_schedule.on_step(step, mine),
                )
                expect(
                    sorted(got or []) == sorted(expected),
                    f"at step {step} (steps run: {list(steps)[:3]}...) you unfroze {got}, the "
                    f"reference {expected}: unfreeze every part due at or before this step that is "
                    "still frozen (a resumed run catches up), each once",
                )
                expect(
                    _frozen(mine) == _frozen(reference),
                    f"after step {step} your frozen tensors differ: "
                    f"{sorted(_frozen(mine) ^ _frozen(reference))[:2]}",
                )
        return (
            "your schedule freezes and unfreezes exactly as tmtlib.transfer.GradualUnfreezing, "
            "resumed runs included"
        )

    return run_check("gradual unfreezing", attempt)
