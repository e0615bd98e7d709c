"""tmtlib: the library behind the tmt course on transfer learning for machine translation.

One module per idea: ``data`` (Multi30k), ``subwords`` (SentencePiece), ``models`` (Transformer),
``noise`` (denoising corruptions), ``objectives`` (AE, DAE, VAE, LM, translation losses),
``transfer`` (moving pretrained weights), ``train`` (the training engine), ``decode`` (greedy,
beam, sampling), ``evaluate`` (sacreBLEU), ``plot``, ``widgets`` and ``cli``.
"""

__version__ = "0.1.0"
