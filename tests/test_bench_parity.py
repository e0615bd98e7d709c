"""The benchmarks compare tmtlib with Hugging Face on equal work: ``bench.common.hf_copy`` puts
tmtlib's weights into HF's M2M100, and the two models must then compute the same function.

Runs where ``transformers`` is installed (``pip install -e .[bench]``), skipped elsewhere.
"""

from __future__ import annotations

import pytest
import torch

from tmtlib.models import Seq2Seq, model_config
from tmtlib.subwords import EOS_ID, PAD_ID

transformers = pytest.importorskip("transformers", reason="the parity test needs the bench extra")
common = pytest.importorskip("bench.common")

TAG = 5  # the decoder's first token: a language tag, as tmtlib's translations start


def trained_like(seed: int = 0) -> Seq2Seq:
    """A small model with every weight random (LayerNorms and biases too), so that a tensor mapped
    to the wrong place cannot go unnoticed behind an initialisation of ones or zeros."""
    torch.manual_seed(seed)
    model = Seq2Seq(model_config("tiny", vocab_size=300, n_encoder_layers=2, n_decoder_layers=2))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
        model.embed.weight[PAD_ID].zero_()
    return model.eval()


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source ids with padding (and EOS), their attention mask, and decoder inputs."""
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(6, 300, (3, 9), generator=generator)
    src[0, 6:], src[1, 8:] = PAD_ID, PAD_ID
    src[0, 5], src[1, 7], src[2, 8] = EOS_ID, EOS_ID, EOS_ID
    tgt_in = torch.randint(6, 300, (3, 7), generator=generator)
    tgt_in[:, 0] = TAG
    return src, src.ne(PAD_ID).long(), tgt_in


@torch.no_grad()
def test_hf_copy_computes_the_same_logits_as_tmtlib():
    model = trained_like()
    hf = common.hf_copy(model, decoder_start_id=TAG)
    src, mask, tgt_in = batch()
    ours = model(src, tgt_in)  # [B, T, V]
    theirs = hf(input_ids=src, attention_mask=mask, decoder_input_ids=tgt_in).logits
    assert theirs.shape == ours.shape
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)


@torch.no_grad()
def test_a_weight_left_out_of_the_copy_changes_the_logits():
    """The parity is not vacuous: the same comparison fails when one tensor differs."""
    model = trained_like()
    hf = common.hf_copy(model, decoder_start_id=TAG)
    layer = hf.model.decoder.layers[1].fc2  # a new tensor: the copy may share tmtlib's storage
    # random, not a constant: a constant added to every weight shifts every output dimension
    # alike, which the final LayerNorm takes away again
    layer.weight = torch.nn.Parameter(layer.weight + 0.05 * torch.randn_like(layer.weight))
    src, mask, tgt_in = batch()
    theirs = hf(input_ids=src, attention_mask=mask, decoder_input_ids=tgt_in).logits
    assert not torch.allclose(theirs, model(src, tgt_in), atol=1e-4, rtol=1e-4)
