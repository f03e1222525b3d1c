"""Regression guard on measured label quality (docs/labels.md): coco128, Lite0, confidence ≥ 55.

The numbers come from ``bench/eval_labels.py``; a change that lowers them must be deliberate.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import fit_temperature as eval_labels  # noqa: E402


def test_label_quality_on_coco128(coco_dir: Path) -> None:
    truth, mapping = eval_labels.load_truth(coco_dir), eval_labels.load_map()
    logits = eval_labels.logits_for(truth.images, "efficientnet-lite0")
    scores = eval_labels.label_scores(logits, "efficientnet-lite0", None)
    q = eval_labels.score(scores, truth, mapping, skip={"person"})
    # measured (T=0.9): recall 37/234, salient recall 26/72, precision 37/43 = 0.860
    assert q.pairs == 234
    assert q.found >= 35, q.per_category
    assert q.salient_found >= 24
    assert q.precision >= 0.82, q.wrong
