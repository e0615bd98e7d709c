"""tmtlib: the library behind the tmt course on transfer learning for machine translation.

One module per idea: ``data`` (Multi30k), ``tokenize`` (SentencePiece), ``models`` (Transformer),
``noise`` (denoising corruptions), ``objectives`` (AE, DAE, VAE, LM, translation losses),
``transfer`` (moving pretrained weights), ``train`` (the training engine), ``decode`` (greedy,
beam, sampling), ``evaluate`` (sacreBLEU), ``plot``, ``widgets`` and ``cli``.
"""

__version__ = "0.1.0"

import torch as _torch

# Denormal floats cost 10-100x more on x86 CPUs, and the tiny gradients and Adam moments of a
# converging model fall into that range (a VAE overfit ran 25x slower). Flush them to zero for
# every program that uses tmtlib; on processors without the switch this is a no-op.
_torch.set_flush_denormal(True)
