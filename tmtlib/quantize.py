"""Int8 weights for faster decoding on CPU: dynamic quantisation (Jacob et al. 2018, "Quantization
and training of neural networks for efficient integer-arithmetic-only inference").

Each linear layer's weight matrix W is stored once as int8 with one scale per output row,
W_i ≈ s_i · W_q,i; at each call the layer's input x is quantised to 8 bits with a scale read off x
itself ("dynamic": no calibration data), the product W_q x runs in integer arithmetic (fbgemm on
x86: four times fewer bytes of weights to read than fp32, and integer multiply-adds where AVX2 has
no bf16), and the result is scaled back to fp32. Norms, softmax, attention over the keys and the
embeddings stay fp32.

Only for decoding: the weights cannot be trained, and the model is a copy (the fp32 one is left
as it was). Translations may differ from fp32's where two candidates score almost alike; the
decoding benchmark (``python -m bench.decode_throughput``, engine ``tmtlib-int8``) measures speed,
BLEU and the share of outputs identical to fp32's.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

from .models import Seq2Seq

# one scale per output row of each weight matrix: with one scale per matrix, a row of small weights
# keeps few of its 8 bits; the errors of a tiny model's layers then compound to 13% of its largest
# logit on a CPU with AVX512-VNNI (3% per row; tests/test_decode.py bounds it at 5%)
QCONFIG = per_channel_dynamic_qconfig


class Int8Seq2Seq(Seq2Seq):
    """A ``Seq2Seq`` whose linear layers and tied output projection compute with int8 weights.
    ``Int8Seq2Seq(model)`` is a copy of ``model`` on the CPU, in eval mode; ``model`` is left as
    it was. The output projection h E^T, the largest matrix product of a decoding step (V·D
    multiply-adds per token, against about 14·D² per decoder layer), gets an int8 copy of E of
    its own; E itself stays fp32 for the embedding look-ups."""

    def __init__(self, model: Seq2Seq):
        super().__init__(model.config)
        self.load_state_dict(model.state_dict())
        self.eval()
        with warnings.catch_warnings():
            # torch.ao's quantisation is deprecated in favour of torchao, and says so on every
            # call; the torch pinned here still has it whole
            warnings.simplefilter("ignore")
            quantize_dynamic(self, {nn.Linear: QCONFIG}, dtype=torch.qint8, inplace=True)
            output = nn.Linear(model.config.d_model, model.config.vocab_size, bias=False)
            output.weight = nn.Parameter(self.embed.weight.detach().clone(), requires_grad=False)
            output.qconfig = QCONFIG
            self.output_int8 = DynamicInt8Linear.from_float(output)

    def project(self, h: Tensor) -> Tensor:
        """The tied output projection with int8 weights: [..., D] -> [..., V]."""
        return self.output_int8(h)

    def train(self, mode: bool = True) -> Int8Seq2Seq:
        """Int8 weights cannot be trained: refuse training mode (``eval()`` passes through)."""
        if mode:
            raise RuntimeError(
                "an int8 model decodes only: train the fp32 model it was copied from"
            )
        return super().train(False)
