"""Figures: the error bars are the sample standard deviation the result tables report."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from tmtlib.plot import score_curves  # noqa: E402


def test_score_curves_error_bars_are_sample_standard_deviations():
    ax = score_curves({"dae": {1000: [18.0, 19.0, 20.0], 3000: [24.0]}})
    bars = ax.containers[0]  # ErrorbarContainer: (line, caps, (vertical segments,))
    segments = bars.lines[2][0].get_segments()
    half_widths = [abs(segment[1][1] - segment[0][1]) / 2 for segment in segments]
    assert np.allclose(half_widths, [np.std([18.0, 19.0, 20.0], ddof=1), 0.0])


def test_vae_terms_show_validation_points_and_beta():
    from tmtlib.plot import vae_terms
    from tmtlib.train import History

    history = History([{"step": s, "nll": 5.0, "kl": 0.5, "kl_weight": min(1.0, s / 200)} for s in range(0, 400, 5)],
                      [{"step": s, "val_nll": 4.0, "val_kl": 0.1} for s in (100, 200, 300, 400)])
    reconstruction, kl, beta = vae_terms({"annealing": history})
    points = reconstruction.lines[1]
    assert points.get_linestyle() == "None" and list(points.get_xdata()) == [100, 200, 300, 400]
    assert list(kl.lines[1].get_ydata()) == [0.1] * 4
    assert beta.lines[0].get_ydata()[-1] == 1.0 and beta.lines[0].get_ydata()[20] == 0.5
