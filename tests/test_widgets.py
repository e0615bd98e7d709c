"""Widget logic: called directly, and through the widgets by setting control values."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
import sacrebleu
import torch

from tmtlib import widgets
from tmtlib.decode import decode_latent, encode_latent, translate
from tmtlib.models import Seq2Seq, model_config
from tmtlib.noise import NoiseConfig

SENTENCES = ["A man in an orange hat starring at something.", "Two dogs play in the snow."]


@pytest.fixture(scope="module")
def tokenizer(toy_tokenizer):
    """A vocabulary of the course's kind is all these tests need: the toy corpus's."""
    return toy_tokenizer


@pytest.fixture(scope="module")
def vae(tokenizer):
    torch.manual_seed(0)
    return Seq2Seq(model_config("tiny", tokenizer.vocab_size, latent_dim=8)).eval()


def test_noise_preview_is_seeded_and_follows_the_settings(tokenizer):
    clean, text = widgets.noise_preview(tokenizer, SENTENCES[0], NoiseConfig.none())
    assert clean == " ".join(tokenizer.pieces(SENTENCES[0])) and text == "no noise"
    masked, _ = widgets.noise_preview(tokenizer, SENTENCES[0], NoiseConfig(mask_p=1.0))
    assert set(masked.split()) == {"<mask>"}
    a = widgets.noise_preview(tokenizer, SENTENCES[0], NoiseConfig(shuffle_k=3), seed=1)
    assert a == widgets.noise_preview(tokenizer, SENTENCES[0], NoiseConfig(shuffle_k=3), seed=1)


def test_noise_explorer_reacts_to_its_controls(tokenizer, capsys):
    box = widgets.noise_explorer(tokenizer, SENTENCES)
    capsys.readouterr()
    sliders = {c.description: c for row in box.children[1:3] for c in row.children}
    sliders["mask p"].value = 1.0
    assert "<mask> <mask>" in capsys.readouterr().out
    box.children[0].value = SENTENCES[1]
    assert f"original:  {' '.join(tokenizer.pieces(SENTENCES[1]))}\n" in capsys.readouterr().out


def test_noise_explorer_opens_on_a_visible_corruption(tokenizer, capsys):
    for sentence in SENTENCES:
        widgets.noise_explorer(tokenizer, [sentence])
        (corrupted,) = [
            line for line in capsys.readouterr().out.splitlines() if line.startswith("corrupted:")
        ]
        assert "<mask>" in corrupted, corrupted


def test_interpolation_ends_decode_the_two_posterior_means(vae, tokenizer):
    ends = widgets.interpolate(vae, tokenizer, *SENTENCES, "en", [0.0, 1.0])
    mu = encode_latent(vae, tokenizer, SENTENCES)
    start = torch.full((2,), tokenizer.lang_id("en"))
    assert ends == tokenizer.decode(decode_latent(vae, mu, start, max_len=40))
    slider = widgets.interpolation_slider(vae, tokenizer, *SENTENCES, "en")
    slider.children[2].value = 1.0
    assert slider.children[3].value == widgets.wrapping_html(ends[1])


def test_long_lines_wrap_and_are_escaped():
    line = widgets.wrapping_text("a < b " * 40)
    assert (
        "white-space: normal" in line.value and "a &lt; b" in line.value and "<b" not in line.value
    )


def test_translate_one_returns_attention_and_score(vae, tokenizer):
    unscored = widgets.translate_one(vae, tokenizer, SENTENCES[0], "de", beam_size=2)
    assert unscored.chrf is None
    assert unscored.translation == translate(vae, tokenizer, [SENTENCES[0]], "de", beam_size=2)[0]
    # a reference that shares part of the output, so chrF is neither 0 nor 100
    reference = unscored.translation[: len(unscored.translation) // 2]
    view = widgets.translate_one(
        vae, tokenizer, SENTENCES[0], "de", beam_size=2, reference=reference
    )
    rows, cols = view.alignment.attention.shape
    assert rows == len(view.alignment.output_pieces) and cols == len(view.alignment.source_pieces)
    assert view.translation == unscored.translation
    expected = sacrebleu.sentence_chrf(
        view.translation, [reference]
    ).score  # as sacreBLEU scores it
    assert 0 < expected < 100 and view.chrf == pytest.approx(expected)


def test_worst_sentences_and_browser(capsys):
    refs = ["a dog runs", "a cat sleeps", "two men talk"]
    hyps = ["a dog runs", "xyz", "two men talk loudly"]
    scores = [sacrebleu.sentence_chrf(h, [r]).score for h, r in zip(hyps, refs)]
    assert scores[1] < scores[2] < scores[0] == 100  # so the two worst are 1, then 2
    worst = widgets.worst_sentences(["s1", "s2", "s3"], hyps, refs, k=2)
    assert [(row["index"], row["chrF"]) for row in worst] == [(1, scores[1]), (2, scores[2])]
    assert [row["output"] for row in worst] == hyps[1:] and worst[0]["reference"] == refs[1]
    browser = widgets.error_browser(["s1", "s2", "s3"], hyps, refs)
    browser.children[0].value = 3
    assert "#0" in capsys.readouterr().out.splitlines()[-4]


def test_a_refresh_waits_for_the_previous_one_to_finish():
    """Widget callbacks may run on several kernel threads at once (JupyterLab's comm subshells):
    one widget's refreshes must not overlap, or its Output widget loses lines."""
    running, overlaps = [], []

    @widgets.one_at_a_time
    def refresh(_=None):
        running.append(1)
        overlaps.append(len(running))
        time.sleep(0.02)
        running.pop()

    threads = [threading.Thread(target=refresh) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == [1, 1, 1, 1]


def test_the_translators_heatmap_is_drawn_outside_pyplot_and_shown_as_a_png(
    vae, tokenizer, monkeypatch
):
    """A figure in pyplot's list can be printed by a plt.show() on another thread mid-drawing
    (blank heatmaps in JupyterLab); the widget's figure is not in that list and is drawn whole.
    It is displayed as PNG data: a bare figure would show as "<Figure size ...>" text until pyplot
    is imported (notebook 9's saved widget state kept that text)."""
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr(widgets, "display", shown.append)
    before = plt.get_fignums()
    widgets.translator({"vae": vae}, tokenizer, "de", example=SENTENCES[1])
    assert plt.get_fignums() == before
    (image,) = shown
    assert image.format == "png"
    pixels = plt.imread(io.BytesIO(image.data)).reshape(-1, 4)
    view = widgets.translate_one(vae, tokenizer, SENTENCES[1], "de", beam_size=5)
    figure = widgets.heatmap_figure(view.alignment)
    width, height = figure.get_size_inches() * plt.rcParams["figure.dpi"]
    assert len(pixels) == round(width) * round(height)
    assert len(np.unique(pixels, axis=0)) > 10  # drawn, not one colour
