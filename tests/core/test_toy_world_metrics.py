"""The toy-world judge's reject option, the video metrics (consistency and motion) and the report's
refusal to merge runs with different settings (benchmarks/toy_world/{world,metrics,report}.py)."""
import json
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.toy_world import metrics as M  # noqa: E402
from benchmarks.toy_world import report as R  # noqa: E402
from benchmarks.toy_world import world as W  # noqa: E402


def _video(cx, colour=None, shape=1):
    f = len(cx)
    colour = torch.zeros(f, dtype=torch.long) if colour is None else colour
    return W.render(colour, torch.full((f,), shape), torch.tensor(cx, dtype=torch.float32), torch.full((f,), 32.0),
                    torch.full((f,), 12.0))


def test_judge_says_no_shape_for_noise_and_blobs_but_not_for_shapes():
    g = torch.Generator().manual_seed(5)
    noise = torch.rand(40, 3, 64, 64, generator=g)
    assert W.judge(noise).reject.all() and (W.judge(noise).labels == -1).all()
    blobs = W.blobs(40, g)
    v = W.judge(blobs)
    assert v.reject.all(), v.score
    # without the reject option the same blobs get a class (what the old judge did)
    assert (W.judge(blobs, reject=False).labels >= 0).all()
    b = W.sample(200, g)
    assert not W.judge(b.images).reject.any()
    blurred = torch.nn.functional.avg_pool2d(b.images, 5, stride=1, padding=2, count_include_pad=False)
    assert float(W.judge(blurred).reject.float().mean()) <= 0.02


def test_video_metrics_tell_motion_from_stillness_and_jitter():
    moving = M.video_row(_video([20, 24, 28, 32, 36, 40, 44, 48]), 1)
    still = M.video_row(_video([20] * 8), 1)
    jitter = M.video_row(_video([20, 30, 20, 30, 20, 30, 20, 30]), 1)
    for r in (moving, still, jitter):
        assert r["acc"] == 1.0 and r["same_class"] == 1.0 and r["reject"] == 0.0
    assert moving["net_disp"] == pytest.approx(28, abs=0.3) and still["net_disp"] == 0.0
    assert moving["smooth"] < 0.3 and jitter["smooth"] == pytest.approx(20, abs=0.5)
    assert jitter["net_disp"] == pytest.approx(10, abs=0.3) and jitter["path"] == pytest.approx(70, abs=1)
    # a rigid translation is explained by the motion: no flicker; a colour change is flicker
    assert moving["flicker"] < 0.005 and still["flicker"] == 0.0
    swap = M.video_row(_video([32] * 8, colour=torch.arange(8) % 2), 1)
    assert swap["same_class"] == 0.0 and swap["acc"] == 0.5 and swap["flicker"] > 0.05
    assert swap["colour_drift"] > 0.5
    # rejected frames are never consistent
    noisy = _video([32] * 8)
    noisy[3] = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))
    r = M.video_row(noisy, 1)
    assert r["reject"] == pytest.approx(1 / 8) and r["same_class"] == pytest.approx(5 / 7, abs=1e-4)
    assert r["same_shapes"] == 1.0  # over the pairs where both frames hold a shape (issue 24)
    assert r["net_disp"] == pytest.approx(0.0, abs=0.3)  # the video with a gap is kept (7 shape frames)
    # roughness per unit step: 0 for constant velocity, 2 for a back-and-forth jitter (|2nd diff| = 2 |step|)
    assert moving["rough_step"] < 0.05 and jitter["rough_step"] == pytest.approx(2.0, abs=0.05)
    assert math.isnan(still["rough_step"])  # no motion: no roughness per unit motion


def test_same_shapes_and_roughness_per_step_from_csv_columns():
    assert M.same_shapes("0|0|-1|0|-1|-1|0|0") == 1.0  # pairs (0,0) and (0,0): both consistent
    assert M.same_shapes("0|1|-1|-1") == 0.0 and math.isnan(M.same_shapes("-1|0|-1|2"))
    assert M.same_shapes([3, 3, 4, 4]) == pytest.approx(2 / 3, abs=1e-4)
    assert M.roughness_per_step(3.4, 2.0) == pytest.approx(1.7)
    assert math.isnan(M.roughness_per_step(float("nan"), 1.0)) and math.isnan(M.roughness_per_step(0.0, 0.0))
    # independent random positions: about sqrt(3)
    import numpy as np
    pos = np.random.default_rng(0).normal(size=(20000, 2))
    step = np.linalg.norm(np.diff(pos, axis=0), axis=1).mean()
    second = np.linalg.norm(pos[2:] - 2 * pos[1:-1] + pos[:-2], axis=1).mean()
    assert M.roughness_per_step(second, step) == pytest.approx(math.sqrt(3), abs=0.03)


def test_diversity_is_the_spread_of_a_prompts_videos():
    rows = [{"prompt": 0, "mean_cx": 10.0, "mean_cy": 10.0}, {"prompt": 0, "mean_cx": 20.0, "mean_cy": 10.0},
            {"prompt": 1, "mean_cx": 5.0, "mean_cy": 5.0}, {"prompt": 1, "mean_cx": 5.0, "mean_cy": 5.0}]
    assert M.diversity(rows) == pytest.approx(2.5)


def _part(d: Path, stem: str, settings: dict, rows: list):
    import csv
    with open(d / f"{stem}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (d / f"{stem}.json").write_text(json.dumps({"settings": settings, "row": rows[0]["method"], "part": stem,
                                                "items": len(rows), "wall_s": 1.0}))


def test_report_refuses_to_merge_runs_with_different_settings(tmp_path):
    s = {"table": "smoothinit", "steps": 10, "batch": 60}
    row = {"method": "plain", "cfg": 7.5, "seed": 0, "index": 0, "correct": 1}
    _part(tmp_path, "a", s, [row])
    _part(tmp_path, "b", s, [dict(row, seed=1)])
    t = R.load(tmp_path)
    assert len(t["smoothinit"]["rows"]) == 2
    _part(tmp_path, "c", dict(s, steps=20), [dict(row, seed=2)])
    with pytest.raises(SystemExit, match="steps"):
        R.load(tmp_path)
    (tmp_path / "c.csv").unlink()
    (tmp_path / "c.json").unlink()
    _part(tmp_path, "d", s, [row])  # the same item twice
    with pytest.raises(SystemExit, match="twice"):
        R.load(tmp_path)


def test_report_from_the_committed_results_states_what_the_code_does():
    """Issue 24 item 4: the regenerated text has no hand-typed n range, no "0.050" next to a verdict, no
    unfilled slot; every claim is Holm-adjusted within its paper's family and its interval matches its test."""
    tables = R.load()
    md, block = R.build(tables)
    assert "37-38" not in md and "@@" not in md and "@@" not in block
    assert "| 0.050 |" not in md and "p 0.050 " not in md
    assert "fewer than 2 shape frames" in md and "Holm" in block
