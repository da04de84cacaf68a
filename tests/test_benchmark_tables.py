"""The benchmark's markdown table must say how many seeds each row is over (a method that ran on fewer seeds than
the others was printed under the others' seed count)."""
import pandas as pd
import pytest


def test_markdown_names_the_seed_count_of_a_method_with_fewer_seeds(bench_debiasing):
    rows = [dict(setting="skin", method=m, augment=True, n_seeds=n, metric="accuracy", mean=0.99, ci_low=0.98,
                 ci_high=1.0) for m, n in (("standard", 5), ("balanced", 2))]
    text = bench_debiasing.markdown(pd.DataFrame(rows), pd.DataFrame())
    lines = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "CI across 5 seeds" in text
    assert "balanced (2 seeds)" in lines  # the row over 2 seeds says so
    assert "standard" in lines            # rows over all 5 need no note
    assert "99.0 [98.0, 100.0]" in lines["standard"]


def test_variant_table_pairs_each_method_by_seed_with_its_base_setting(bench_debiasing):
    """skin -> skin-cos for one method on seeds 0-2 (seed 3 only in the base: not paired): the difference and its
    95% t-interval recomputed by hand with scipy; a method run only in the variant gives no row."""
    from scipy import stats

    bench = bench_debiasing
    base_gap, cos_gap = [0.08, 0.05, 0.07, 0.02], [0.05, 0.04, 0.03]
    rows = [dict(setting="skin", method="standard", seed=s, epochs=24, accuracy=0.98, worst_group_rate=0.9,
                 skin_gap=g, pose_gap=0.05) for s, g in enumerate(base_gap)]
    rows += [dict(setting="skin-cos", method="standard", seed=s, epochs=24, accuracy=0.99, worst_group_rate=0.9,
                  skin_gap=g, pose_gap=0.05) for s, g in enumerate(cos_gap)]
    rows += [dict(setting="skin-cos", method="group-dro", seed=s, epochs=24, accuracy=0.99, worst_group_rate=0.9,
                  skin_gap=0.01, pose_gap=0.05) for s in range(3)]
    rows += [dict(setting="skin-cos", method="standard", seed=s, epochs=6, accuracy=0.5, worst_group_rate=0.5,
                  skin_gap=0.5, pose_gap=0.5) for s in range(3)]  # another length: never compared
    out, text = bench.variant_table(pd.DataFrame(rows), 24)
    assert set(out.method) == {"standard"} and set(out.variant) == {"skin-cos"}
    gap = out[out.metric == "skin_gap"].iloc[0]
    d = [(c - b) * 100 for b, c in zip(base_gap, cos_gap)]  # -3, -1, -4 points
    half = stats.t.ppf(0.975, 2) * stats.tstd(d) / 3 ** 0.5
    assert gap.n_seeds == 3
    assert abs(gap["diff"] - (-8 / 3)) < 1e-9
    # T975 holds the t quantiles to 3 decimals (4.303 for 2 degrees of freedom)
    assert abs(gap.ci_low - (-8 / 3 - half)) < 1e-3 and abs(gap.ci_high - (-8 / 3 + half)) < 1e-3
    assert bool(gap.moved) == (gap.ci_high < 0)
    acc = out[out.metric == "accuracy"].iloc[0]
    assert abs(acc["diff"] - 1.0) < 1e-9 and abs(acc.at_from - 98.0) < 1e-9
    assert "| standard | skin -> skin-cos | 3 |" in text
    assert "6.7 -> 4.0: " in text  # base mean over the paired seeds only, not seed 3


def test_summary_keeps_the_hard_negative_shares_when_the_cache_lacks_a_setting(tmp_path, monkeypatch, capsys, bench_debiasing):
    """The shares are recomputed from the rendered data sets in the cache; with the pose data missing, summary
    used to overwrite the file with the skin rows alone. It must keep the file and say what is missing."""
    import argparse

    bench = bench_debiasing
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    kept = tmp_path / "hard_negative_shares.csv"
    kept.write_text("setting,tone_group,face_share,hard_negative_share\npose,darker,0.3,0.4\n")
    only_skin = pd.DataFrame([dict(setting="skin", seed=s, tone_group="darker", face_share=0.02,
                                   hard_negative_share=0.4) for s in range(5)])
    monkeypatch.setattr(bench, "hard_negative_shares", lambda cache, seeds, n_train: only_skin)
    a = argparse.Namespace(seeds=[0, 1, 2, 3, 4], epochs=6, n_train=20_000, cache=tmp_path)
    bench.summary(a)
    assert kept.read_text() == "setting,tone_group,face_share,hard_negative_share\npose,darker,0.3,0.4\n"
    assert "pose seed 0" in capsys.readouterr().err
    # with every setting and seed present the file is rewritten
    both = pd.concat([only_skin, only_skin.assign(setting="pose")])
    monkeypatch.setattr(bench, "hard_negative_shares", lambda cache, seeds, n_train: both)
    bench.summary(a)
    assert kept.read_text().splitlines()[1:] == ["skin,darker,0.0200,0.4000", "pose,darker,0.0200,0.4000"]


def test_cell_rates_give_each_skin_by_pose_cells_test_rate_and_training_count_by_hand(tmp_path, monkeypatch, bench_debiasing):
    b = bench_debiasing
    test = pd.DataFrame({"skin_group": ["darker"] * 4 + ["lighter"] * 2, "pose": ["profile"] * 3 + ["frontal"] * 3})
    hit = [True, False, False, True, True, False]  # darker/profile 1 of 3, darker/frontal 1 of 1, lighter 1 of 2
    train = pd.DataFrame({"skin_group": ["lighter"] * 5 + ["darker"], "pose": ["frontal"] * 5 + ["profile"]})
    cells = b.cell_rates(test, hit, train).set_index(["skin_group", "pose"])
    assert cells.rate.to_dict() == {("darker", "frontal"): 1.0, ("darker", "profile"): 1 / 3,
                                    ("lighter", "frontal"): 0.5}
    assert cells.n_train_faces.to_dict() == {("darker", "frontal"): 0, ("darker", "profile"): 1,
                                             ("lighter", "frontal"): 5}
    monkeypatch.setattr(b, "CELLS", tmp_path / "cells.csv")
    key = dict(setting="skin", method="standard", seed=3, epochs=24, n_train=20000)
    b._append_cells(key, b.cell_rates(test, hit, train))
    b._append_cells({**key, "seed": 4}, b.cell_rates(test, hit, train))
    written = pd.read_csv(tmp_path / "cells.csv")
    assert list(written.columns) == [*b.KEY, "skin_group", "pose", "n_train_faces", "rate"]
    assert len(written) == 6 and written.seed.tolist() == [3, 3, 3, 4, 4, 4]


def test_option_table_pairs_each_label_with_the_label_it_extends_by_seed(bench_debiasing):
    """'group-dro margin1' extends 'group-dro' (seeds 0-2 in both; seed 3 in the base only), 'group-dro margin1 x'
    extends 'group-dro margin1' (the longer prefix, not 'group-dro'); 'group-drop' extends nothing; another setting
    or length is never paired. Difference and interval by hand with scipy."""
    from scipy import stats

    bench = bench_debiasing

    def rows(method, gaps, setting="skin-cos", epochs=24):
        return [dict(setting=setting, method=method, seed=s, epochs=epochs, accuracy=0.98, worst_group_rate=0.9,
                     skin_gap=g, pose_gap=0.05) for s, g in enumerate(gaps)]

    base, margin = [0.03, 0.05, 0.02, 0.09], [0.02, 0.03, 0.02]
    runs = pd.DataFrame(rows("group-dro", base) + rows("group-dro margin1", margin)
                        + rows("group-dro margin1 x", [0.01, 0.01, 0.01]) + rows("group-drop", [0.5, 0.5, 0.5])
                        + rows("group-dro margin1", [0.9, 0.9, 0.9], setting="skin")
                        + rows("group-dro margin1", [0.9, 0.9, 0.9], epochs=6))
    out, text = bench.option_table(runs, 24)
    pairs = set(zip(out.setting, out.base, out.label))
    assert pairs == {("skin-cos", "group-dro", "group-dro margin1"),
                     ("skin-cos", "group-dro margin1", "group-dro margin1 x")}
    gap = out[(out.label == "group-dro margin1") & (out.metric == "skin_gap")].iloc[0]
    d = [(m - b) * 100 for b, m in zip(base, margin)]  # -1, -2, 0 points
    half = stats.t.ppf(0.975, 2) * stats.tstd(d) / 3 ** 0.5
    assert gap.n_seeds == 3 and abs(gap["diff"] - (-1.0)) < 1e-9
    assert abs(gap.ci_low - (-1.0 - half)) < 1e-3 and abs(gap.ci_high - (-1.0 + half)) < 1e-3
    assert "| skin-cos | group-dro -> group-dro margin1 | 3 |" in text


def test_a_retrained_run_reproduces_its_row_only_to_the_digits_the_csv_keeps(bench_debiasing):
    b = bench_debiasing
    recorded = pd.Series(dict(accuracy=0.98519, skin_gap=0.040278, pose_gap=0.047222, worst_group_rate=0.89583))
    row = dict(accuracy=0.985185185, skin_gap=0.0402777778, pose_gap=0.0472222222, worst_group_rate=0.895833333)
    assert b.reproduces(row, recorded)
    assert not b.reproduces({**row, "skin_gap": 0.0416666667}, recorded)  # one test face more missed


def test_a_finished_run_is_recorded_before_a_slower_run_submitted_earlier_finishes(tmp_path, monkeypatch, bench_debiasing):
    """The docstring promises one row per run as soon as it finishes: a run that finishes while an earlier-submitted
    one is still training must be in the CSV then (rows were appended in submission order, so a killed benchmark lost
    every finished run queued behind a slow one)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    b = bench_debiasing
    monkeypatch.setattr(b, "RUNS", tmp_path / "runs.csv")
    monkeypatch.setattr(b, "CELLS", tmp_path / "cells.csv")
    cells = pd.DataFrame({"skin_group": ["darker"], "pose": ["profile"], "n_train_faces": [3], "rate": [0.5]})
    fast_recorded = threading.Event()

    def train(job):
        if job["method"] == "slow":  # keeps training until the fast run's row is on disk (or gives up after 5 s)
            for _ in range(100):
                if b.RUNS.exists() and "fast" in b.RUNS.read_text():
                    fast_recorded.set()
                    break
                threading.Event().wait(0.05)
        return {**{k: job[k] for k in b.KEY}, "accuracy": 0.9, "worst_group_rate": 0.8, "skin_gap": 0.1,
                "pose_gap": 0.1, "ess": 1.0, "mass_darker": 0.02, "seconds": 1.0, "_cells": cells.copy()}

    jobs = [dict(setting="skin", method=m, seed=0, epochs=6, n_train=20000) for m in ("slow", "fast")]
    with ThreadPoolExecutor(2) as ex:
        b.record_as_done({ex.submit(train, j): j for j in jobs})
    assert fast_recorded.is_set()
    assert pd.read_csv(b.RUNS).method.tolist() == ["fast", "slow"]
    assert pd.read_csv(b.CELLS).method.tolist() == ["fast", "slow"]


def test_a_composition_variant_trains_its_own_data_with_its_parents_options(bench_debiasing):
    """skin-cos-darker6: 6% darker faces rendered under their own cache tag (never the default's folder), trained with
    skin-cos's cosine schedule; its intrinsic run uses the skin setting's balanced composition, as skin's does."""
    b = bench_debiasing
    shares, tag = b._composition("skin-cos-darker6", intrinsic=False)
    assert shares == {"darker_share": 0.06} and tag == "skin-darker_share0.06"
    assert b._composition("skin", intrinsic=False) == ({}, "skin")
    assert b._composition("skin-cos", intrinsic=False) == ({}, "skin")
    assert b._composition("skin-cos-darker6", intrinsic=True) == (b.INTRINSIC["skin"], "skin-balanced")
    assert b._variant("skin-cos-darker6") == ("skin", {"lr_schedule": "cosine"})


def test_cells_appends_a_retrained_runs_cells_only_when_it_reproduces_its_row(tmp_path, monkeypatch, bench_debiasing):
    """`cells` retrains each recorded run that has no cells: seed 0's retrain gives its recorded metrics (cells
    appended), seed 1's misses one more darker face (nothing appended); seed 2 has no row (not retrained)."""
    import argparse
    from concurrent.futures import ThreadPoolExecutor

    b = bench_debiasing
    monkeypatch.setattr(b, "RUNS", tmp_path / "runs.csv")
    monkeypatch.setattr(b, "CELLS", tmp_path / "cells.csv")
    monkeypatch.setattr(b, "ProcessPoolExecutor", ThreadPoolExecutor)
    metrics = dict(accuracy=0.98519, skin_gap=0.040278, pose_gap=0.047222, worst_group_rate=0.89583)
    key = dict(setting="skin-cos", method="standard", epochs=24, n_train=20000)
    pd.DataFrame([{**key, "seed": s, **metrics} for s in (0, 1)]).to_csv(b.RUNS, index=False)
    cells = pd.DataFrame({"skin_group": ["darker"], "pose": ["profile"], "n_train_faces": [3], "rate": [0.5]})
    trained = []

    def retrain(job):
        trained.append(job["seed"])
        got = {**metrics, "skin_gap": 0.041667} if job["seed"] == 1 else metrics
        return {**{k: job[k] for k in b.KEY}, **got, "_cells": cells.copy()}

    monkeypatch.setattr(b, "_one", retrain)
    a = argparse.Namespace(settings=["skin-cos"], seeds=[0, 1, 2], methods=["standard"], epochs=24, n_train=20000,
                           cache=tmp_path, device="cpu", workers=2, render_workers=1)
    b.backfill_cells(a)
    assert sorted(trained) == [0, 1]
    written = pd.read_csv(b.CELLS)
    assert written.seed.tolist() == [0] and written.rate.tolist() == [0.5]


def test_weights_diagnostic_spread_by_hand(load_benchmark):
    """20 faces, 10 of them darker: darker mass 0.6, one darker face holding 0.15 of it, the rest 0.05 each."""
    mod = load_benchmark("weights_diagnostic")
    import numpy as np

    faces = pd.DataFrame({"skin_group": ["darker"] * 10 + ["lighter"] * 10})
    p = np.array([0.15] + [0.05] * 9 + [0.04] * 10)
    s = mod.spread(p, faces)
    assert s["n_darker"] == 10 and s["mass_darker"] == pytest.approx(0.6)
    assert s["ess_within_darker"] == pytest.approx(0.6 ** 2 / (0.15 ** 2 + 9 * 0.05 ** 2) / 10)
    assert s["top10_within_darker"] == pytest.approx(0.15 / 0.6)  # the top 10% of 10 darker faces: one face
    assert s["max_rate_darker"] == pytest.approx(3.0) and s["mean_rate_darker"] == pytest.approx(1.2)
    assert s["ess"] == pytest.approx(1 / (p ** 2).sum() / 20)


def test_closed_difference_is_exact_where_every_resample_closes_the_same_share(bench_debiasing):
    """Gaps proportional across seeds make every bootstrap resample close the same share: before, (s - m) / (s - i)
    = mean(1, 2) / mean(2, 4) = 1/2; after, mean(1.5, 3) / mean(2, 4) = 3/4. The difference is 1/4 with a
    degenerate interval; swapping the two negates it; identical triples give 0."""
    bench = bench_debiasing
    s, i = [2.0, 4.0], [0.0, 0.0]
    before, after = ([1.0, 2.0], s, i), ([0.5, 1.0], s, i)
    est, lo, hi = bench.closed_difference(after, before, n_boot=200)
    assert abs(est - 0.25) < 1e-12 and abs(lo - 0.25) < 1e-12 and abs(hi - 0.25) < 1e-12
    assert abs(bench.closed_difference(before, after, n_boot=200)[0] + 0.25) < 1e-12
    assert bench.closed_difference(before, before, n_boot=200) == (0.0, 0.0, 0.0)


def test_closed_difference_pairs_the_resampled_seeds(bench_debiasing):
    """Three seeds where the share closed varies by seed: the interval must come from resampling the *same* seeds
    in both settings. Recomputed here with a plain loop over the same generator draws."""
    import numpy as np

    bench = bench_debiasing
    after = (np.array([0.5, 2.0, 1.0]), np.array([3.0, 4.0, 2.0]), np.array([0.0, 1.0, 0.5]))
    before = (np.array([2.0, 2.5, 1.5]), np.array([4.0, 3.0, 3.0]), np.array([1.0, 0.5, 0.0]))
    est, lo, hi = bench.closed_difference(after, before, n_boot=500, random_state=3)
    share = lambda m, s, i: (s - m).mean() / (s - i).mean()  # noqa: E731
    assert abs(est - (share(*after) - share(*before))) < 1e-12
    idx = np.random.default_rng(3).integers(0, 3, (500, 3))
    d = [share(*(v[k] for v in after)) - share(*(v[k] for v in before)) for k in idx]
    assert np.allclose([lo, hi], np.percentile(d, [2.5, 97.5]))


def test_composition_table_compares_each_method_on_both_compositions_by_hand(bench_debiasing):
    """skin-cos -> skin-cos-darker6 on seeds 0-1 (seed 2 lacks `intrinsic` on the composition: left out). By hand,
    points: standard left 4, 6 -> 2, 2 (difference -2, -4); group-dro left 2, 2 -> 0.5, 0.5; shares closed
    (2 + 4) / (4 + 6) = 60% -> (1.5 + 1.5) / (2 + 2) = 75%."""
    bench = bench_debiasing
    gaps = {("skin-cos", "standard"): [0.05, 0.07, 0.09], ("skin-cos", "intrinsic"): [0.01, 0.01, 0.01],
            ("skin-cos", "group-dro"): [0.03, 0.03, 0.03], ("skin-cos-darker6", "standard"): [0.03, 0.03, 0.03],
            ("skin-cos-darker6", "intrinsic"): [0.01, 0.01], ("skin-cos-darker6", "group-dro"): [0.015, 0.015, 0.0]}
    rows = [dict(setting=st, method=m, seed=k, epochs=24, skin_gap=g) for (st, m), v in gaps.items()
            for k, g in enumerate(v)]
    out, text = bench.composition_table(pd.DataFrame(rows), 24)
    r = out.set_index("method")
    assert list(r.index) == ["standard", "group-dro"] and set(r.n_seeds) == {2}
    assert abs(r.loc["standard", "left_base"] - 5.0) < 1e-9 and abs(r.loc["standard", "left_diff"] + 3.0) < 1e-9
    assert pd.isna(r.loc["standard", "closed_base"])
    g = r.loc["group-dro"]
    assert abs(g.left_base - 2.0) < 1e-9 and abs(g.left_composition - 0.5) < 1e-9 and abs(g.left_diff + 1.5) < 1e-9
    assert g.left_diff_ci_low == g.left_diff_ci_high == g.left_diff  # the same -1.5 on both seeds
    assert abs(g.closed_base - 60.0) < 1e-9 and abs(g.closed_composition - 75.0) < 1e-9
    assert abs(g.closed_diff - 15.0) < 1e-9
    assert "| skin-cos -> skin-cos-darker6 | group-dro | 2 | 2.0 [2.0, 2.0] | 0.5 [0.5, 0.5] | -1.5 [-1.5, -1.5] |" \
        " 60 [" in text


def test_seeds_for_power_matches_the_one_sample_t_test_tables(bench_debiasing):
    """G*Power's one-sample t-test, two-sided alpha 0.05, power 0.8: d = 0.8 needs 15, d = 0.5 needs 34, d = 0.2
    needs 199 (Cohen 1988, Table 2.4.1, gives the same to within one)."""
    bench = bench_debiasing
    assert bench.seeds_for_power(0.8) == 15
    assert bench.seeds_for_power(0.5) == 34
    assert bench.seeds_for_power(-0.5) == 34
    assert bench.seeds_for_power(0.2) == 199
    assert bench.seeds_for_power(0.0) is None


def test_pair_table_pairs_any_two_labels_by_seed_and_places_each_against_the_two_thirds_line(bench_debiasing):
    """balanced against a label that does not extend it, seeds 0-2 (seed 3 has no intrinsic: metric differences on
    4 seeds, shares on 3); every figure recomputed by hand."""
    from scipy import stats

    bench = bench_debiasing
    gaps = {"standard": [0.08, 0.06, 0.07, 0.05], "intrinsic": [0.02, 0.00, 0.01],
            "balanced": [0.05, 0.03, 0.06, 0.04], "cluster x": [0.04, 0.04, 0.03, 0.01]}
    rows = [dict(setting="skin", method=m, seed=s, epochs=24, accuracy=0.98, worst_group_rate=0.9, skin_gap=g,
                 pose_gap=0.05) for m, gs in gaps.items() for s, g in enumerate(gs)]
    rows += [dict(setting="skin", method="balanced", seed=0, epochs=6, accuracy=0.5, worst_group_rate=0.5,
                  skin_gap=0.5, pose_gap=0.5)]  # another length: never read
    out, text = bench.pair_table(pd.DataFrame(rows), 24, "balanced", "cluster x")
    gap = out[out.metric == "skin_gap"].iloc[0]
    d = [-1, 1, -3, -3]  # cluster x minus balanced, points
    assert gap.n_seeds == 4 and abs(gap["diff"] - (-1.5)) < 1e-9
    half = stats.t.ppf(0.975, 3) * stats.tstd(d) / 2
    assert abs(gap.ci_high - (-1.5 + half)) < 1e-3
    # shares on seeds 0-2: standard 8, 6, 7; intrinsic 2, 0, 1 -> representation gap 6 each (mean 6)
    closed = {r.metric: r for r in out.itertuples()}
    assert abs(closed["closed:balanced"].diff - (3 + 3 + 1) / 3 / 6) < 1e-9
    assert abs(closed["closed:cluster x"].diff - (4 + 2 + 4) / 3 / 6) < 1e-9
    assert abs(closed["closed_difference"].diff - ((10 - 7) / 3 / 6)) < 1e-9
    # the 2/3 line per seed: standard - 4 = 4, 2, 3; balanced sits 1, 1, 3 above it, cluster x 0, 2, 0
    above = closed["above_target:balanced"]
    assert abs(above.diff - 5 / 3) < 1e-9 and abs(above.sd - stats.tstd([1, 1, 3])) < 1e-9
    assert above.seeds_for_power == bench.seeds_for_power((5 / 3) / stats.tstd([1, 1, 3]))
    assert abs(closed["above_target:cluster x"].diff - 2 / 3) < 1e-9
    assert "| balanced | 39% [" in text and "| cluster x | 56% [" in text


def test_pooled_names_the_seeds_it_pooled_when_they_are_not_consecutive(bench_debiasing):
    """pooled over seeds 0-6, 8, 9 printed 'All seeds 0-9 pooled' (min-max), hiding that seed 7 was left out."""
    bench = bench_debiasing
    assert bench.seed_span([0, 1, 2, 3, 4, 5, 6, 8, 9]) == "0, 1, 2, 3, 4, 5, 6, 8, 9"
    assert bench.seed_span(range(10)) == "0-9"
    assert bench.seed_span([5, 6]) == "5, 6"


def test_cluster_diagnostic_reads_clusters_back_as_groups_of_equal_weight(load_benchmark):
    """Three clusters of 4, 3 and 3 faces, each face of a cluster with the cluster's one weight (0.05, 0.1, 0.1/3):
    the darker faces (4: 3 in the first cluster, 1 in the third) counted by hand."""
    mod = load_benchmark("cluster_diagnostic")
    p = [0.05] * 4 + [0.1] * 3 + [0.1 / 3] * 3
    skin = ["darker", "darker", "lighter", "darker", "lighter", "medium", "lighter", "medium", "darker", "lighter"]
    row = mod.composition(pd.Series(p).to_numpy(), pd.DataFrame({"skin_group": skin}))
    assert row["n_clusters"] == 3 and row["n_darker"] == 4
    assert row["top_share"] == pytest.approx(3 / 4)   # the first cluster holds 3 of the 4 darker faces
    assert row["top_purity"] == pytest.approx(3 / 4)  # ... and 3 of its 4 faces are darker
    assert row["top_size"] == 4
    assert row["n_holding"] == 2                      # clusters with >= 10% of the darker faces: the first and third


def test_pair_table_measures_the_share_closed_on_the_gap_of_the_setting(bench_debiasing):
    """On `pose` the share closed is of the frontal-profile gap. pair_table read `skin_gap` for every setting, so on
    `pose` it printed loss-resample closing 84% of the pose gap where it closed -2%."""
    bench = bench_debiasing
    pose = {"standard": 0.10, "intrinsic": 0.01, "x": 0.04}   # pose gap: 9 points of representation gap, x closes 6
    skin = {"standard": 0.02, "intrinsic": 0.00, "x": 0.02}   # skin gap: x closes nothing
    rows = [dict(setting=st, method=m, seed=s, epochs=24, accuracy=0.98, worst_group_rate=0.9,
                 skin_gap=skin[m] + s / 1000, pose_gap=pose[m] + s / 1000)
            for st in ("pose", "skin-swa") for m in pose for s in range(3)]
    out, _ = bench.pair_table(pd.DataFrame(rows), 24, "standard", "x")
    closed = out[out.metric == "closed:x"].set_index("setting")["diff"]
    assert abs(closed["pose"] - 6 / 9) < 1e-9      # the pose gap on `pose`
    assert abs(closed["skin-swa"] - 0.0) < 1e-9    # the skin gap on a variant of `skin`


def test_run_plans_a_named_label_on_pose_even_if_pose_does_not_run_it_by_default(bench_debiasing):
    """`run --settings pose --methods LABEL` with a label outside pose's default list planned nothing ("0 runs to
    do"); a named label now runs where it is asked to, and the defaults are unchanged."""
    import argparse

    bench = bench_debiasing
    label = "dbvae center ess0.1 frozen cluster-dro resample fixed"
    assert label not in bench.POSE_METHODS
    a = argparse.Namespace(settings=["pose"], seeds=[0, 1], methods=[label, "intrinsic"], long_seeds=[],
                           long_methods=[], epochs=24, n_train=20000, cache="c", device="cpu", render_workers=3)
    jobs = bench.plan(a)
    assert [(j["seed"], j["method"]) for j in jobs] == [(0, label), (0, "intrinsic"), (1, label), (1, "intrinsic")]
    assert {j["render_workers"] for j in jobs} == {3}  # --render-workers reaches every run's data rendering
    a.methods = None
    assert [j["method"] for j in bench.plan(a) if j["seed"] == 0] == [*bench.POSE_METHODS, "intrinsic"]


def test_pair_table_measures_shares_against_the_references_given(bench_debiasing):
    """Labels trained with SAM on `skin` against `standard sam` and the `intrinsic` of a variant setting trained with
    SAM: the shares use those references, by hand, not the setting's own `standard` and `intrinsic`."""
    bench = bench_debiasing
    skin = {"standard": [0.08, 0.06, 0.07], "intrinsic": [0.02, 0.00, 0.01],
            "standard sam": [0.05, 0.04, 0.03], "x sam": [0.02, 0.03, 0.01]}
    rows = [dict(setting="skin", method=m, seed=s, epochs=24, accuracy=0.98, worst_group_rate=0.9, skin_gap=g,
                 pose_gap=0.05) for m, gs in skin.items() for s, g in enumerate(gs)]
    ref = pd.DataFrame([dict(setting="skin-sam", method="intrinsic", seed=s, epochs=24, accuracy=0.98,
                             worst_group_rate=0.9, skin_gap=g, pose_gap=0.05) for s, g in enumerate([0.01, 0.01, 0.01])])
    out, text = bench.pair_table(pd.DataFrame(rows), 24, "standard sam", "x sam", standard="standard sam",
                                 intrinsic=ref)
    closed = {r.metric: r.diff for r in out.itertuples()}
    # representation gap 4, 3, 2 (mean 3); x sam closes 3, 1, 2 (mean 2): 2/3; standard sam closes nothing
    assert abs(closed["closed:x sam"] - 2 / 3) < 1e-9 and abs(closed["closed:standard sam"]) < 1e-9
    assert "`standard sam` and `intrinsic` of skin-sam" in text
    # against the setting's own references: standard 8, 6, 7 and intrinsic 2, 0, 1 (6 each); x sam closes 6, 3, 6
    out, _ = bench.pair_table(pd.DataFrame(rows), 24, "standard sam", "x sam")
    assert abs(out.set_index("metric").loc["closed:x sam", "diff"] - 15 / 3 / 6) < 1e-9


def test_pair_references_refuse_a_setting_whose_intrinsic_ran_at_another_length(monkeypatch, capsys, bench_debiasing):
    """`pair --epochs 6 --references X S` where S's `intrinsic` ran only at 24 epochs: exit 2 naming the setting and
    the length (it printed a table saying the references ran on fewer than 2 seeds)."""
    import argparse

    bench = bench_debiasing
    rows = [dict(setting=st, method=m, seed=s, epochs=e, accuracy=0.98, worst_group_rate=0.9, skin_gap=0.05,
                 pose_gap=0.05, n_train=20_000)
            for st, m, e in (("skin", "standard", 6), ("skin", "x", 6), ("skin-sam", "intrinsic", 24))
            for s in range(3)]
    monkeypatch.setattr(bench, "_runs", lambda a: pd.DataFrame(rows))
    a = argparse.Namespace(methods=["standard", "x"], seeds=[0, 1, 2], settings=["skin"], epochs=6,
                           references=["standard", "skin-sam"])
    with pytest.raises(SystemExit) as e:
        bench.pair(a)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "'skin-sam'" in err and "6 epochs" in err


def test_generate_benchmark_pairs_each_arm_with_its_generated_faces_by_hand(load_benchmark):
    gen = load_benchmark("generate")
    # skin gaps (fractions) on three seeds: standard 0.10, intrinsic 0.00; default 0.06 and with faces 0.04
    gaps = {"standard": [0.10, 0.12, 0.08], "intrinsic": [0.0, 0.02, 0.0], "default": [0.06, 0.05, 0.04],
            "default +gen": [0.04, 0.03, 0.05], "standard +gen": [0.10, 0.12, 0.08]}
    rows = [{"method": m, "seed": s, "skin_gap": g, "accuracy": 0.9, "worst_group_rate": 0.8, "pose_gap": 0.01,
             "train_rate_darker": 1.0} for m, gs in gaps.items() for s, g in enumerate(gs)]
    table, md = gen.summary_tables(pd.DataFrame(rows))
    d = table[(table.method == "default") & (table.metric == "skin_gap")].iloc[0]
    assert d["diff"] == pytest.approx(100 * (0.12 - 0.15) / 3)  # -1.0 point, paired by seed
    # shares closed: (std - m) / (std - intrinsic) as a ratio of means: default (0.30-0.15)/(0.30-0.02), +gen 0.18/0.28
    line = next(x for x in md.splitlines() if x.startswith("| default |"))
    assert "| 54% [" in line and "| 64% [" in line and "| 11% [" in line
    assert (table[(table.method == "standard") & (table.metric == "skin_gap")]["diff"] == 0).all()
