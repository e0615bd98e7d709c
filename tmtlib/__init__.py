"""tmtlib: the library behind the tmt course on transfer learning for machine translation.

One module per idea, from the bottom up:

* ``settings`` reads the environment (the only module that does); ``validation`` checks settings;
* ``data`` (Multi30k), ``subwords`` (SentencePiece), ``batching`` (token buckets);
* ``models`` (the Transformer, in one file), ``noise`` (denoising corruptions), ``objectives``
  (AE, DAE, VAE, LM and translation losses), ``transfer`` (moving pretrained weights);
* ``checkpoint`` (crash-safe files and the run folder's layout: ``RunFolder``), ``train`` (one
  training loop, read top to bottom), ``decode`` (greedy, beam, sampling), ``evaluate``
  (sacreBLEU, paired bootstrap), ``vae_diagnostics``;
* ``pipeline`` (a pretraining or fine-tuning run from its settings, cached by their hash),
  ``recipes`` (the course's runs in their full and quick sizes), ``course`` (the runs the notebooks
  share), ``experiments`` (the recorded studies), ``plot``, ``widgets``, ``exercises`` (the
  learners' checks), ``results_docs`` and ``cli`` (``python -m tmtlib``).
"""

__version__ = "0.1.0"
