"""The notebook 08 checks accept tmtlib.transfer's own functions and name the usual mistakes."""

from tmtlib import transfer
from tmtlib.exercises import strategies


def test_freeze():
    assert strategies.check_freeze(transfer.freeze)

    # "decoder" also catches cross-attention; "embeddings" matches nothing
    def by_prefix(model, parts):
        count = 0
        for name, param in model.named_parameters():
            if any(name.startswith(part) for part in parts):
                param.requires_grad_(False)
                count += param.numel()
        return count

    verdict = strategies.check_freeze(by_prefix)
    assert not verdict and "embed.weight" in verdict.message and "trainable" in verdict.message

    def counts_tensors(model, parts):
        transfer.freeze(model, parts)
        return sum(not param.requires_grad for param in model.parameters())

    verdict = strategies.check_freeze(counts_tensors)
    assert not verdict and "numel" in verdict.message


def test_parameter_groups():
    assert strategies.check_parameter_groups(
        lambda m, lr, part_lrs, wd: transfer.parameter_groups(m, lr, part_lrs, wd)
    )
    one_group = strategies.check_parameter_groups(
        lambda m, lr, part_lrs, wd: [
            {"params": [p for p in m.parameters() if p.requires_grad], "lr": lr, "weight_decay": wd}
        ]
    )
    assert not one_group and "1-D parameters" in one_group.message
    with_frozen = strategies.check_parameter_groups(
        lambda m, lr, part_lrs, wd: transfer.parameter_groups(
            m, lr, part_lrs, wd, include_frozen=True
        )
    )
    assert not with_frozen and "frozen" in with_frozen.message
    same_rate = strategies.check_parameter_groups(
        lambda m, lr, part_lrs, wd: transfer.parameter_groups(m, lr, None, wd)
    )
    assert not same_rate and "trains at 0.001" in same_rate.message


def test_gradual_unfreezing():
    assert strategies.check_gradual_unfreezing(transfer.GradualUnfreezing)

    class ExactStepOnly(transfer.GradualUnfreezing):
        def on_step(self, step, model):
            due = [part for at, parts in self.schedule if at == step for part in parts]
            transfer.unfreeze(model, due)
            return due

    verdict = strategies.check_gradual_unfreezing(ExactStepOnly)
    assert not verdict and "catches up" in verdict.message
