"""The report's words and figures, checked by hand."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from debias.audit.engine import AuditResult  # noqa: E402
from debias.report.text import headline, pct, verdicts  # noqa: E402


def test_calibration_plot_uses_the_ece_bins():
    from debias.report.plots import calibration_by_group

    # 0.3 is bin 3 for the ECE (floor(10 p)); sklearn's linspace edges would put it in bin 2
    pred = pd.DataFrame({"model": "m", "y_true": [1, 1, 0, 0], "y_score": [0.3, 0.35, 0.05, 0.3],
                         "skin_group": ["darker", "darker", None, None]})
    fig = calibration_by_group(pred, "m", "skin_group")
    line = [ln for ln in fig.axes[0].lines if ln.get_label() == "darker"][0]
    np.testing.assert_allclose(line.get_xdata(), [0.05, (0.3 + 0.35 + 0.3) / 3])
    np.testing.assert_allclose(line.get_ydata(), [0.0, 2 / 3])


def test_pct():
    assert pct(0.1234) == "12.3" and pct(0.5, "%") == "50.0%"
    assert pct(None) == pct(float("nan")) == pct(np.float64("nan")) == "n/a"


def _result(paired: pd.DataFrame) -> AuditResult:
    disp = pd.DataFrame([
        dict(model="m", grouping="skin_group", group="lighter", reference="lighter", n=100, detection_rate=0.9, gap=0.0,
             gap_ci_low=np.nan, gap_ci_high=np.nan, p_holm=np.nan, significant=False),
        dict(model="m", grouping="skin_group", group="darker", reference="lighter", n=50, detection_rate=0.7, gap=0.2,
             gap_ci_low=0.05, gap_ci_high=0.35, p_holm=0.0123, significant=True)])
    summary = {"models": {"m": {"skin_group": {"worst_group": "darker", "reference": "lighter"}}}}
    return AuditResult(pd.DataFrame(), pd.DataFrame(), disp, paired, summary, by=("skin_group",))


def test_headline_sentences_by_hand():
    lines = headline(_result(pd.DataFrame()))
    assert lines == ["m: by skin_group, darker faces are detected least: 70.0% against 90.0% for lighter, a gap of "
                     "20.0 points (95% CI 5.0 to 35.0; Fisher exact, Holm-adjusted p = 0.012, significant)."]


@pytest.mark.parametrize("lo,hi,verb", [(-0.09, -0.01, "narrowed"), (0.01, 0.09, "widened"),
                                        (-0.03, 0.05, "did not measurably change")])
def test_verdict_follows_the_interval(lo, hi, verb):
    paired = pd.DataFrame([dict(statistic="max_min_gap", model="dbvae", baseline="standard", grouping="skin_group",
                                model_value=0.30, baseline_value=0.35, difference=-0.05, ci_low=lo, ci_high=hi)])
    assert verdicts(paired) == [f"dbvae {verb} the skin_group gap compared with standard: 30.0 vs 35.0 points "
                                f"(difference -5.0, 95% CI {100 * lo:+.1f} to {100 * hi:+.1f})."]
    assert headline(_result(paired))[-1].startswith("dbvae narrows the skin_group gap from 35.0 to 30.0 points")


def test_verdict_prints_an_interval_that_excludes_0_without_a_0_bound():
    """The demo's report said "narrowed ... (difference -3, 95% CI -5 to -0)": whole points rounded -0.3 to -0."""
    paired = pd.DataFrame([dict(statistic="max_min_gap", model="dbvae", baseline="standard", grouping="gender",
                                model_value=0.017, baseline_value=0.044, difference=-0.027, ci_low=-0.051,
                                ci_high=-0.003)])
    assert verdicts(paired) == ["dbvae narrowed the gender gap compared with standard: 1.7 vs 4.4 points "
                                "(difference -2.7, 95% CI -5.1 to -0.3)."]


def test_lead_verdict_comes_first():
    rows = [dict(statistic="max_min_gap", model=m, baseline="standard", grouping=g, model_value=0.3,
                 baseline_value=0.35, difference=-0.05, ci_low=-0.09, ci_high=-0.01)
            for m in ("balanced", "dbvae") for g in ("pose", "skin_group")]
    paired = pd.DataFrame(rows)
    assert verdicts(paired)[0].startswith("balanced narrowed the pose gap")
    lines = verdicts(paired, lead=("dbvae", "skin_group"))
    assert lines[0].startswith("dbvae narrowed the skin_group gap") and len(lines) == 4
