"""Interactive widgets for the notebooks. The logic lives in plain functions (tested with pytest);
the widget builders only wire ipywidgets controls to them.

* ``noise_preview`` / ``noise_explorer``: try the denoising corruptions on a sentence;
* ``interpolate`` / ``interpolation_slider``: walk the VAE latent space between two sentences;
* ``translate_one`` / ``translator``: translate typed text with a chosen model and beam size,
  score it against an optional reference, and show the cross-attention;
* ``worst_sentences`` / ``error_browser``: the test sentences a model gets most wrong, by chrF.
"""

from __future__ import annotations

import functools
import html
import io
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import ipywidgets as w
import torch
from IPython.display import Image, display
from matplotlib.figure import Figure

from .decode import Alignment, decode_latent, encode_latent, translate
from .evaluate import sentence_chrf
from .models import Seq2Seq
from .noise import NoiseConfig, apply_noise, describe
from .plot import attention_figure_size, attention_heatmap
from .subwords import Tokenizer

# --- callbacks ------------------------------------------------------------------------------


def one_at_a_time(refresh: Callable[..., None]) -> Callable[..., None]:
    """``refresh`` that waits for its previous call to finish before it starts.

    JupyterLab (4.4 and later, with ipykernel 7) hands widget messages to kernel subshells,
    threads beside the one that runs cells; with its setting "one subshell per comm", each control
    has a thread of its own, and two refreshes of one widget can run at once. An ``Output`` widget
    sends what is printed to the message that started the latest ``with out:``, so two refreshes at
    once lose each other's lines. Each refresh reads every control anew: the last one to run shows
    what the controls show."""
    lock = threading.Lock()

    @functools.wraps(refresh)
    def serialised(*args, **kwargs) -> None:
        with lock:
            refresh(*args, **kwargs)

    return serialised


def heatmap_figure(alignment: Alignment) -> Figure:
    """The attention heatmap on a figure of its own, outside pyplot's list of open figures.

    That list is shared by every thread of the kernel, and a callback runs on a subshell thread
    (``one_at_a_time``): with pyplot, the heatmap could be printed by a ``plt.show()`` elsewhere
    while it was still being drawn, and the browser test saw blank heatmaps."""
    figure = Figure(figsize=attention_figure_size(alignment), layout="constrained")
    attention_heatmap(alignment, ax=figure.subplots())
    return figure


def png(figure: Figure) -> Image:
    """``figure`` as a PNG image to ``display``. A bare ``Figure`` displays as an image only once
    pyplot's inline backend has registered its formatter (on importing pyplot); before that, and
    in the widget state a notebook saves, it is the text ``<Figure size ...>``."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return Image(data=buffer.getvalue(), format="png")


# --- denoising --------------------------------------------------------------------------------

# the noise explorer's first view: the corruption of the course's denoising pretraining
EXPLORER_START = NoiseConfig(infill_ratio=0.3)


def noise_preview(
    tokenizer: Tokenizer, sentence: str, config: NoiseConfig, seed: int = 0
) -> tuple[str, str]:
    """(corrupted pieces joined by spaces, one-line description) for one sentence."""
    ids = tokenizer.encode([sentence])[0]
    noisy = apply_noise(
        ids, config, random.Random(seed), tokenizer.mask_id, word_starts=tokenizer.word_starts(ids)
    )
    pieces = [tokenizer.sp.id_to_piece(i) for i in noisy]
    return " ".join(pieces), describe(config)


def noise_explorer(tokenizer: Tokenizer, sentences: Sequence[str]) -> w.Widget:
    """Sliders for each corruption; shows the original and corrupted pieces of a chosen sentence.

    It opens on the course's denoising noise (``EXPLORER_START``: BART's span infilling of 30% of
    the pieces, which always masks at least one span), so the first view already shows a
    corruption."""
    sentence = w.Dropdown(
        options=list(sentences), description="sentence", layout=w.Layout(width="95%")
    )
    start = EXPLORER_START
    controls = {
        "mask_p": w.FloatSlider(start.mask_p, min=0, max=1, step=0.05, description="mask p"),
        "delete_p": w.FloatSlider(start.delete_p, min=0, max=1, step=0.05, description="delete p"),
        "infill_ratio": w.FloatSlider(
            start.infill_ratio, min=0, max=0.9, step=0.05, description="infill"
        ),
        "shuffle_k": w.IntSlider(start.shuffle_k, min=0, max=6, description="shuffle k"),
        "seed": w.IntSlider(0, min=0, max=20, description="seed"),
    }
    out = w.Output()

    @one_at_a_time
    def refresh(_=None):
        options = {k: c.value for k, c in controls.items() if k != "seed"}
        shown, text = noise_preview(
            tokenizer, sentence.value, NoiseConfig(**options), controls["seed"].value
        )
        out.clear_output()
        with out:
            print("original: ", " ".join(tokenizer.pieces(sentence.value)))
            print("corrupted:", shown)
            print("noise:    ", text)

    for control in [sentence, *controls.values()]:
        control.observe(refresh, names="value")
    refresh()
    return w.VBox(
        [sentence, w.HBox(list(controls.values())[:3]), w.HBox(list(controls.values())[3:]), out]
    )


# --- VAE latent space -------------------------------------------------------------------------


def interpolate(
    model: Seq2Seq, tokenizer: Tokenizer, a: str, b: str, lang: str, t: float | Sequence[float]
) -> list[str]:
    """Decode (greedily) the points z = (1 - t) mu(a) + t mu(b) of a VAE's latent space."""
    ts = [t] if isinstance(t, (int, float)) else list(t)
    mu = encode_latent(model, tokenizer, [a, b])  # [2, L]
    weights = torch.tensor(ts, dtype=mu.dtype, device=mu.device)[:, None]  # [N, 1]
    z = (1 - weights) * mu[0] + weights * mu[1]  # [N, L]
    start = torch.full((len(ts),), tokenizer.lang_id(lang), dtype=torch.long)
    return tokenizer.decode(decode_latent(model, z, start, max_len=40))


def interpolation_slider(
    model: Seq2Seq, tokenizer: Tokenizer, a: str, b: str, lang: str
) -> w.Widget:
    """A slider t in [0, 1] that decodes the latent point between ``a`` (t=0) and ``b`` (t=1)."""
    slider = w.FloatSlider(
        0.0, min=0.0, max=1.0, step=0.1, description="t", continuous_update=False
    )
    decoded = wrapping_text("")

    def refresh(_=None):
        decoded.value = wrapping_html(interpolate(model, tokenizer, a, b, lang, slider.value)[0])

    slider.observe(refresh, names="value")
    refresh()
    return w.VBox([wrapping_text(f"t=0: {a}"), wrapping_text(f"t=1: {b}"), slider, decoded])


def wrapping_html(text: str) -> str:
    """``text`` as HTML that wraps at the widget's edge (a ``Label`` cuts long lines off with
    "…")."""
    return f'<div style="white-space: normal; overflow-wrap: anywhere">{html.escape(text)}</div>'


def wrapping_text(text: str) -> w.HTML:
    """A line of plain text that wraps instead of being cut off, such as a long decoded sentence."""
    return w.HTML(wrapping_html(text))


# --- translation ------------------------------------------------------------------------------


@dataclass
class TranslationView:
    translation: str
    alignment: Alignment | None
    chrf: float | None  # against the reference, when one is given


def translate_one(
    model: Seq2Seq,
    tokenizer: Tokenizer,
    sentence: str,
    tgt: str,
    beam_size: int = 5,
    reference: str | None = None,
) -> TranslationView:
    """Translate one sentence; return it with its cross-attention and (optionally) its chrF."""
    (translation,), (alignment,) = translate(
        model, tokenizer, [sentence], tgt, beam_size=beam_size, return_attention=True
    )
    score = sentence_chrf([translation], [reference])[0] if reference else None
    return TranslationView(translation, alignment, score)


def translator(
    models: Mapping[str, Seq2Seq], tokenizer: Tokenizer, tgt: str, example: str = ""
) -> w.Widget:
    """Type a sentence, pick a model and a beam size; see the translation and its attention map."""
    text = w.Text(example, description="source", layout=w.Layout(width="95%"))
    reference = w.Text(
        "",
        description="reference",
        placeholder="(optional) for a chrF score",
        layout=w.Layout(width="95%"),
    )
    choice = w.Dropdown(options=list(models), description="model")
    # one beam search when the handle is let go, not one per value it passes on the way
    beam = w.IntSlider(5, min=1, max=10, description="beam", continuous_update=False)
    out = w.Output()

    @one_at_a_time
    def refresh(_=None):
        out.clear_output(wait=True)
        with out:
            if not text.value.strip():
                print("type a sentence")
                return
            view = translate_one(
                models[choice.value],
                tokenizer,
                text.value,
                tgt,
                beam.value,
                reference.value or None,
            )
            print(view.translation)
            if view.chrf is not None:
                print(f"chrF against the reference: {view.chrf:.1f}")
            display(png(heatmap_figure(view.alignment)))

    for control in (text, reference, choice, beam):
        control.observe(refresh, names="value")
    refresh()
    return w.VBox([text, reference, w.HBox([choice, beam]), out])


# --- error analysis ---------------------------------------------------------------------------


def worst_sentences(
    sources: Sequence[str], hyps: Sequence[str], refs: Sequence[str], k: int = 10
) -> list[dict]:
    """The ``k`` sentences with the lowest sentence-level chrF, worst first."""
    scores = sentence_chrf(hyps, refs)
    order = sorted(range(len(scores)), key=lambda i: scores[i])[:k]
    return [
        {
            "index": i,
            "chrF": scores[i],
            "source": sources[i],
            "output": hyps[i],
            "reference": refs[i],
        }
        for i in order
    ]


def error_browser(sources: Sequence[str], hyps: Sequence[str], refs: Sequence[str]) -> w.Widget:
    """Step through the worst translations of a test set (lowest chrF first)."""
    rows = worst_sentences(sources, hyps, refs, k=len(hyps))
    rank = w.IntSlider(1, min=1, max=len(rows), description="rank")
    out = w.Output()

    @one_at_a_time
    def refresh(_=None):
        row = rows[rank.value - 1]
        out.clear_output()
        with out:
            print(f"#{row['index']}  chrF {row['chrF']:.1f}")
            print("source:   ", row["source"])
            print("output:   ", row["output"])
            print("reference:", row["reference"])

    rank.observe(refresh, names="value")
    refresh()
    return w.VBox([rank, out])
