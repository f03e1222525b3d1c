"""Regression guard on measured label quality (docs/labels.md): coco128, Lite0, confidence ≥ 55.

The numbers come from ``bench/eval_labels.py``; a change that lowers them must be deliberate.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import eval_labels  # noqa: E402


def test_label_quality_on_coco128(coco_dir: Path) -> None:
    truth, mapping = eval_labels.load_truth(coco_dir), eval_labels.load_map()
    logits = eval_labels.logits_for(truth.images, "efficientnet-lite0")
    scores = eval_labels.label_scores(logits, "efficientnet-lite0", None)
    q = eval_labels.score(scores, truth, mapping, skip={"person"})
    # measured: recall 33/234, salient recall 23/72, precision 33/37
    assert q.pairs == 234
    assert q.found >= 31, q.per_category
    assert q.salient_found >= 21
    assert q.precision >= 0.85, q.wrong
