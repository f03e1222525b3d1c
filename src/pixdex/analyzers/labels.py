"""Labels from the local ImageNet classifier, in Rekognition's shape, with parent labels — and,
from the same run, the photo's embedding for "more like this" and duplicates (``similarity``).

Confidence: the classifier's logits are divided by a temperature before the softmax, so that a
label's Confidence approximates the chance the thing is really in the photo (fitted on coco128 by
``bench/eval_labels.py --fit-temperature``; see docs/labels.md). A parent label (Dog, Vehicle,
Food…) gets the summed probability of all the classes below it, so a photo the model cannot place
among 120 dog breeds is still confidently a Dog.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pixdex.imaging import DecodedImage
from pixdex.models.classifier import Classifier, Prediction
from pixdex.records import Embedding, Label, Named
from pixdex.similarity import (
    Projection,
    ProjectionUnavailable,
    encode_embedding,
    encode_thumbnail,
    load_projection,
)
from pixdex.taxonomy import LabelInfo, Taxonomy, imagenet

if TYPE_CHECKING:
    from pixdex.config import Settings

#: per model, by bench/eval_labels.py --fit-temperature on coco128: the best recall at confidence
#: 55 while precision there stays ≥ 0.85 (docs/labels.md); 1.0 would be the raw softmax
TEMPERATURES: dict[str, float] = {
    "efficientnet-lite0": 0.9,
    "efficientnet-lite2": 0.6,
}
CALIBRATION_VERSION = "1"
#: Every image keeps at least its best few guesses, when they are at least GUESS_FLOOR, even under
#: the analyzer's floor (``min_confidence``; ``store_min_confidence`` from the settings): on coco128
#: a third of the photos have no label ≥ 55, and a photo that no search can find is worse than one
#: found at an honestly low confidence. DetectLabels applies its own floor (``LabelDetector``).
MIN_LABELS = 3
GUESS_FLOOR = 10.0


class LabelAnalyzer:
    """ImageNet classifier → Rekognition-style labels (classes and their parent labels)."""

    name = "labels"

    def __init__(
        self,
        classifier: Classifier,
        *,
        taxonomy: Taxonomy | None = None,
        temperature: float | None = None,
        min_confidence: float = 55.0,
        max_labels: int = 50,
    ) -> None:
        self.classifier = classifier
        self.taxonomy = taxonomy or imagenet()
        base = classifier.name.removesuffix("-int8")
        self.temperature = temperature or TEMPERATURES.get(base, 1.0)
        self.min_confidence = min_confidence
        self.max_labels = max_labels
        self.min_side = classifier.min_side
        self.projection = _projection(classifier)
        #: what the stored embeddings are comparable with (None: this model has none)
        self.embedding_version = (
            f"{classifier.version}+{self.projection.version}" if self.projection else None
        )
        # the floor and cap are in the version: changing them changes what is stored, so a
        # re-run of pixdex index re-analyzes; so does a new projection (re-embeds)
        self.version = (
            f"{classifier.version}+tax.{self.taxonomy.digest}"
            f"+T{self.temperature:g}.c{CALIBRATION_VERSION}"
            f"+min{min_confidence:g}.max{max_labels}.top{MIN_LABELS}"
            + (f"+emb.{self.projection.version}" if self.projection else "")
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> LabelAnalyzer:
        classifier = Classifier(
            settings.model,
            cache_dir=Path(settings.cache_dir) if settings.cache_dir else None,
            threads=settings.session_threads,
            quantized=settings.quantized,
        )
        # What is stored: every label down to store_min_confidence (so a search, or a
        # DetectLabels request, with a floor under min_confidence finds them), at most MaxLabels,
        # plus each image's best guesses (MIN_LABELS). DetectLabels applies its own MinConfidence
        # (LabelDetector) and search defaults to min_confidence.
        return cls(
            classifier,
            min_confidence=settings.store_min_confidence,
            max_labels=settings.max_labels,
        )

    # --- the Analyzer contract -------------------------------------------------------------------
    def analyze(self, images: Sequence[DecodedImage]) -> list[dict[str, Any]]:
        if not images:
            return []
        batch = np.stack([self.classifier.preprocess(img.image) for img in images])
        version = self.classifier.version
        if self.projection is None:
            probs = self.probabilities(self.classifier.predict(batch))
            return [{"Labels": self.labels(p), "LabelModelVersion": version} for p in probs]
        run = self.classifier.predict_with_features(batch)
        probs = self.probabilities(run.logits)
        embeddings = self.embeddings(run)
        return [
            {"Labels": self.labels(p), "LabelModelVersion": version, "embedding": e}
            for p, e in zip(probs, embeddings, strict=True)
        ]

    def embeddings(self, run: Prediction) -> list[Embedding]:
        """The stored embedding of each image of a classifier run (``similarity``)."""
        assert self.projection is not None and self.embedding_version is not None
        vectors = self.projection(run.features_max)
        return [
            Embedding.of(self.embedding_version, encode_embedding(v), encode_thumbnail(t))
            for v, t in zip(vectors, run.thumbnails, strict=True)
        ]

    # --- pieces, public for the evaluation script and tests ---------------------------------------
    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Temperature-scaled softmax, (N, 1000)."""
        z = logits.astype(np.float64) / self.temperature
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def scores(self, probs: np.ndarray) -> dict[str, float]:
        """Every label's confidence (0–100) for one image, by name: classes and parents."""
        conf = self.taxonomy.confidences(probs)
        return {info.name: float(c) for info, c in zip(self.taxonomy.labels, conf, strict=True)}

    def labels(self, probs: np.ndarray) -> list[Label]:
        labels = self.taxonomy.labels
        conf = self.taxonomy.confidences(probs)
        # only the few labels that can be kept are sorted (there are ~1,160 in all)
        keepable = np.flatnonzero(conf >= min(GUESS_FLOOR, self.min_confidence))
        ranked = sorted(
            ((float(conf[i]), labels[i].name, labels[i]) for i in keepable),
            key=lambda t: (-t[0], t[1]),
        )
        return [
            _label(info, round(c, 3))
            for i, (c, _, info) in enumerate(ranked[: self.max_labels])
            if c >= self.min_confidence or i < MIN_LABELS
        ]


def _projection(classifier: Classifier) -> Projection | None:
    """The similarity projection made for this classifier's weights and graph; None for a model
    that has none (efficientnet-lite2): its photos get labels, but no embedding."""
    try:
        return load_projection(
            classifier.name, classifier.weights_sha256, classifier.builder_version
        )
    except ProjectionUnavailable:
        return None


def _label(info: LabelInfo, confidence: float) -> Label:
    return Label(
        Name=info.name,
        Confidence=min(confidence, 100.0),
        Parents=[Named(Name=p) for p in info.parents],
        Aliases=[Named(Name=a) for a in info.aliases],
        Categories=[Named(Name=c) for c in info.categories],
    )
