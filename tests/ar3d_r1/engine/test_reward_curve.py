"""The reward curve (issue 25): raw steps plus a moving average, for a run and its control."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from ar3d_r1.engine.reward_curve import moving_average, plot_reward_curves  # noqa: E402


def test_the_moving_average_is_the_trailing_mean_and_skips_gaps():
    assert moving_average([1.0, 2.0, 3.0, 4.0], 2) == pytest.approx([1.0, 1.5, 2.5, 3.5])
    got = moving_average([1.0, float("nan"), 3.0], 2)
    assert got == pytest.approx([1.0, 1.0, 3.0])
    assert np.isnan(moving_average([float("nan")], 3)[0])


def test_the_plot_draws_each_run_raw_and_averaged(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    drawn = {}
    save = plt.Figure.savefig

    def keep(fig, path, *a, **k):  # look at the axes the function drew before it closes the figure
        drawn["lines"] = [(ln.get_label(), len(ln.get_xdata())) for ln in fig.axes[0].get_lines()]
        return save(fig, path, *a, **k)

    monkeypatch.setattr(plt.Figure, "savefig", keep)
    run = [{"step": i, "reward/total": float(i % 3)} for i in range(1, 31)]
    control = [{"step": i, "reward/total": None if i == 5 else 1.0} for i in range(1, 31)]
    path = plot_reward_curves({"run": run, "control": control}, tmp_path / "curve.png")
    assert path.stat().st_size > 1000
    labels = [label for label, n in drawn["lines"] if not label.startswith("_")]
    assert labels == ["run (10-step mean)", "control (10-step mean)"] and len(drawn["lines"]) == 4
