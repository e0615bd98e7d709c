"""Figures: the error bars are the sample standard deviation the result tables report."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from tmtlib.plot import beam_tree, score_curves  # noqa: E402


def test_score_curves_error_bars_are_sample_standard_deviations():
    ax = score_curves({"dae": {1000: [18.0, 19.0, 20.0], 3000: [24.0]}})
    bars = ax.containers[0]  # ErrorbarContainer: (line, caps, (vertical segments,))
    segments = bars.lines[2][0].get_segments()
    half_widths = [abs(segment[1][1] - segment[0][1]) / 2 for segment in segments]
    assert np.allclose(half_widths, [np.std([18.0, 19.0, 20.0], ddof=1), 0.0])


def test_an_initialisation_has_one_colour_in_curves_bars_and_learning_curves():
    from matplotlib.colors import to_hex

    from tmtlib.plot import INIT_COLORS, bars, learning_curves
    from tmtlib.train import History

    green = to_hex(INIT_COLORS["dae"])
    curves = score_curves({"dae": {1000: [18.0, 19.0]}, "scratch": {1000: [12.0, 13.0]}})
    assert to_hex(curves.lines[0].get_color()) == green
    assert "(2 seeds)" in curves.get_legend().get_texts()[0].get_text()
    bar_ax = bars({"scratch": 14.4, "DAE": 21.3})
    assert to_hex(bar_ax.patches[1].get_facecolor()) == green
    lines = learning_curves(
        {"DAE": History(evals=[{"step": 50, "val_bleu": 3.0}])}, "val_bleu", evals=True
    )
    assert (
        to_hex(lines.lines[0].get_color()) == green
        and lines.get_ylabel() == "validation BLEU (greedy)"
    )


def test_every_bar_is_labelled_so_a_zero_height_bar_is_seen():
    from tmtlib.plot import bars

    ax = bars({"full": [31.3], "frozen encoder": [0.0, 0.0]})
    assert [t.get_text() for t in ax.texts] == ["31.3\n(1 seed)", "0.0 ± 0.0\n(2 seeds)"]


def test_attention_heatmaps_share_one_scale_and_show_it():
    import torch

    from tmtlib.decode import Alignment
    from tmtlib.plot import attention_heatmap

    ax = attention_heatmap(
        Alignment(["▁a", "</s>"], ["▁b", "</s>"], torch.tensor([[0.9, 0.1], [0.2, 0.3]]))
    )
    (image,) = ax.images
    assert image.get_clim() == (0.0, 1.0) and image.colorbar is not None
    assert image.colorbar.ax.get_ylabel() == "attention weight"


def test_beam_tree_joins_each_hypothesis_to_its_parent_and_marks_the_result():
    nodes = [
        dict(id=0, parent=None, step=0, label="<2de>", score=0.0, finished=False, best=True),
        dict(id=1, parent=0, step=1, label="Ein", score=-0.5, finished=False, best=True),
        dict(id=2, parent=0, step=1, label="Eine", score=-1.2, finished=False, best=False),
        dict(id=3, parent=1, step=2, label="EOS", score=-0.9, finished=True, best=True),
    ]
    ax = beam_tree(nodes)
    edges = [line.get_xydata().tolist() for line in ax.lines]
    # one edge per child, rows by id
    assert edges == [
        [[0, 0], [1, 0]],
        [[0, 0], [1, -1]],
        [[1, 0], [2, 0]],
    ]
    red = [line for line in ax.lines if line.get_color() == "tab:red"]
    assert len(red) == 2  # the result's path: <2de> -> Ein -> EOS
    assert [text.get_text() for text in ax.texts] == [
        "<2de>",
        "Ein\n-0.50",
        "Eine\n-1.20",
        "EOS\n-0.90",
    ]


def test_vae_terms_show_validation_points_and_beta():
    from tmtlib.plot import vae_terms
    from tmtlib.train import History

    history = History(
        [
            {"step": s, "nll": 5.0, "kl": 0.5, "kl_weight": min(1.0, s / 200)}
            for s in range(0, 400, 5)
        ],
        [{"step": s, "val_nll": 4.0, "val_kl": 0.1} for s in (100, 200, 300, 400)],
    )
    reconstruction, kl, beta = vae_terms({"annealing": history})
    points = reconstruction.lines[1]
    assert points.get_linestyle() == "None" and list(points.get_xdata()) == [100, 200, 300, 400]
    assert list(kl.lines[1].get_ydata()) == [0.1] * 4
    assert beta.lines[0].get_ydata()[-1] == 1.0 and beta.lines[0].get_ydata()[20] == 0.5
    assert beta.get_ylabel() == "β (weight of the KL term)"
    _, _, beta = vae_terms({"annealing": history, "annealing + free bits": history})
    assert [line.get_linestyle() for line in beta.lines] == ["-", "--"], "one hides the other"


def test_an_objective_named_in_words_has_its_initialisations_colour():
    from tmtlib.plot import init_color

    assert init_color("denoising autoencoder") == init_color("DAE") == init_color("dae")
    assert init_color("autoencoder") == init_color("ae") != init_color("dae")
    assert init_color("bottleneck") is None
