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
