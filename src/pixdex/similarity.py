"""Similar photos ("more like this") and duplicates, from the classifier's one run. Pure numpy.

Per photo the classifier's run gives (``Classifier.predict_with_features``) the head's max-pooled
1280-d features and an 8x8 thumbnail of its input view. From those:

- the **embedding**: the features L2-normalised, centred and projected to 256-d by a fixed linear
  map fitted once on fitting photos (``calibration/<model>-projection.json``: a "learned
  whitening": the covariance of edited-copy/original differences whitened, then the main
  directions of the photos kept), then L2-normalised again. Cosine = dot product. Stored as 256
  int8 (``encode_embedding``; 256 bytes, scale-free because rows are re-normalised on decoding).
- the **thumbnail**: 8x8 RGB, 192 bytes (``encode_thumbnail``), a second, independent look used
  only to confirm duplicate candidates the embedding alone is unsure of.

"More like this" is ``top_k`` over the decoded embedding matrix (brute force, one matrix-vector
product). Duplicates are ``duplicate_groups``: each photo's nearest neighbours (exact under
``EXACT_LIMIT`` photos, bucketed above it, never all pairs), a pair kept when its similarity
stands far enough above both photos' background (their 5th-20th neighbours), or less far and
the thumbnails agree (mirror-aware); kept pairs joined into groups (``DuplicateRule``).
``keep_order`` sorts a group: the copy to keep first, with the reason.

Every threshold here was fitted on the fitting photos by ``bench/eval_similar.py --fit`` and
measured on other photos (docs/similar-quality.md).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

CALIBRATION_DIR = Path(__file__).parent / "models" / "calibration"
#: the embedding's dimension
EMBEDDING_DIM = 256
#: side of the thumbnail (``pixdex.models.classifier.THUMB_SIDE``)
THUMB_SIDE = 8
THUMB_BYTES = THUMB_SIDE * THUMB_SIDE * 3
#: collections up to this size get exact nearest neighbours; larger ones, bucketed ones
EXACT_LIMIT = 20_000


class ProjectionUnavailable(RuntimeError):
    """No projection shipped for this model, or one made for other weights / graph builder."""


# --- the embedding ---------------------------------------------------------------------------


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    x = np.asarray(x, np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


@dataclass(frozen=True)
class Projection:
    """The fixed map from the classifier's max-pooled features to the embedding."""

    model: str
    weights_sha256: str
    builder_version: int
    version: str  # in every stored embedding's version string
    mean: np.ndarray  # (F,) float32, subtracted after the first normalisation
    matrix: np.ndarray  # (F, EMBEDDING_DIM) float32

    def __call__(self, features_max: np.ndarray) -> np.ndarray:
        """(N, F) max-pooled features -> (N, EMBEDDING_DIM) unit float32 embeddings."""
        x = normalize(np.atleast_2d(features_max)) - self.mean
        # In products of at most 16 x 32 x 256 OpenBLAS stays on the calling thread; one
        # (16 x 1280) @ (1280 x 256) product would wake its thread pool, whose spinning cost
        # ~6x the CPU of the product itself during pixdex index (bench/bench_similar.py).
        out = np.zeros((len(x), self.matrix.shape[1]), np.float32)
        for r in range(0, len(x), 16):
            for c in range(0, x.shape[1], 32):
                out[r : r + 16] += x[r : r + 16, c : c + 32] @ self.matrix[c : c + 32]
        return normalize(out)

    def to_json(self) -> dict:
        """The calibration file's content: arrays as base64 little-endian float16."""

        def b64(a: np.ndarray) -> str:
            return base64.b64encode(a.astype("<f2").tobytes()).decode("ascii")

        return {
            "model": self.model,
            "weights_sha256": self.weights_sha256,
            "builder_version": self.builder_version,
            "version": self.version,
            "shape": list(self.matrix.shape),
            "mean": b64(self.mean),
            "matrix": b64(self.matrix),
        }

    @classmethod
    def from_json(cls, data: dict) -> Projection:
        rows, cols = data["shape"]

        def arr(s: str, shape: tuple[int, ...]) -> np.ndarray:
            raw = np.frombuffer(base64.b64decode(s), "<f2")
            return raw.astype(np.float32).reshape(shape)

        return cls(
            model=data["model"],
            weights_sha256=data["weights_sha256"],
            builder_version=int(data["builder_version"]),
            version=data["version"],
            mean=arr(data["mean"], (rows,)),
            matrix=arr(data["matrix"], (rows, cols)),
        )


def projection_file(model: str) -> Path:
    return CALIBRATION_DIR / f"{model}-projection.json"


def load_projection(
    model: str, weights_sha256: str | None = None, builder_version: int | None = None
) -> Projection:
    """The shipped projection for ``model``; with ``weights_sha256``/``builder_version`` given,
    one made for other weights or another graph is refused (its embeddings would not compare)."""
    path = projection_file(model.removesuffix("-int8"))
    if not path.is_file():
        raise ProjectionUnavailable(f"no similarity projection for {model}")
    proj = Projection.from_json(json.loads(path.read_text()))
    if weights_sha256 is not None and proj.weights_sha256 != weights_sha256:
        raise ProjectionUnavailable(f"the projection for {model} was made for other weights")
    if builder_version is not None and proj.builder_version != builder_version:
        raise ProjectionUnavailable(f"the projection for {model} was made for another graph")
    return proj


# --- compact storage ---------------------------------------------------------------------------


def encode_embedding(vector: np.ndarray) -> bytes:
    """One embedding -> EMBEDDING_DIM int8 bytes (largest component at ±127)."""
    v = np.asarray(vector, np.float32).ravel()
    peak = float(np.abs(v).max())
    q = np.rint(v * (127.0 / peak)) if peak > 0 else np.zeros_like(v)
    return np.clip(q, -127, 127).astype(np.int8).tobytes()


def decode_embeddings(blobs: Sequence[bytes]) -> np.ndarray:
    """Stored embeddings -> (N, D) unit float32 rows, the matrix ``top_k`` searches fastest."""
    if not blobs:
        return np.zeros((0, EMBEDDING_DIM), np.float32)
    return normalize(int8_matrix(blobs))


def int8_matrix(blobs: Sequence[bytes]) -> np.ndarray:
    """Stored embeddings as they are: (N, D) int8, a quarter of the float32 matrix's memory;
    ``top_k`` searches it too (pass ``norms=row_norms(matrix)``), ~1.5x slower."""
    if not blobs:
        return np.zeros((0, EMBEDDING_DIM), np.int8)
    return np.frombuffer(b"".join(blobs), np.int8).reshape(len(blobs), -1)


def row_norms(matrix: np.ndarray) -> np.ndarray:
    """The Euclidean length of each row (float32): what turns int8 dot products into cosines."""
    return np.sqrt(np.einsum("ij,ij->i", matrix, matrix, dtype=np.int64)).astype(np.float32)


def encode_thumbnail(thumb: np.ndarray) -> bytes:
    """(THUMB_SIDE, THUMB_SIDE, 3) uint8 -> THUMB_BYTES bytes."""
    t = np.asarray(thumb)
    if t.shape != (THUMB_SIDE, THUMB_SIDE, 3) or t.dtype != np.uint8:
        raise ValueError(f"expected a ({THUMB_SIDE},{THUMB_SIDE},3) uint8 thumbnail")
    return t.tobytes()


def decode_thumbnails(blobs: Sequence[bytes]) -> np.ndarray:
    """Stored thumbnails -> (N, THUMB_SIDE, THUMB_SIDE, 3) uint8."""
    raw = np.frombuffer(b"".join(blobs), np.uint8)
    return raw.reshape(len(blobs), THUMB_SIDE, THUMB_SIDE, 3)


# --- "more like this" --------------------------------------------------------------------------


def top_k(
    matrix: np.ndarray,
    query: np.ndarray,
    k: int = 10,
    exclude: int | None = None,
    *,
    norms: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``matrix`` most similar to ``query``, best first: (indices, cosines).
    Brute force, one matrix-vector product. ``matrix``: unit float32 rows (``decode_embeddings``)
    or raw int8 rows (``int8_matrix``, with ``norms``); ``query``: a unit float32 vector.
    ``exclude``: a row to leave out (the query photo itself)."""
    if matrix.dtype == np.int8:
        q = np.frombuffer(encode_embedding(query), np.int8)
        dots = np.einsum("ij,j->i", matrix, q, dtype=np.int32)  # exact; BLAS has no int8
        norms = row_norms(matrix) if norms is None else norms
        scores = dots / np.maximum(norms * np.sqrt(float(q.astype(np.int32) @ q)), 1e-12)
    else:
        scores = matrix @ np.asarray(query, matrix.dtype)
    scores = scores.astype(np.float32, copy=False)
    if exclude is not None:
        scores[exclude] = -np.inf
    k = min(k, len(scores) - (exclude is not None))
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    best = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    best = best[np.argsort(-scores[best], kind="stable")]
    return best, scores[best]


def find_copies(
    matrix: np.ndarray,
    thumbs: np.ndarray,
    query: np.ndarray,
    query_thumb: np.ndarray,
    k: int = 10,
    exclude: int | None = None,
    rule: DuplicateRule | None = None,
    *,
    norms: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The photos most likely to be copies of the query, best first: the embedding's ``k``
    nearest, re-ordered by cosine + ``rule.thumb_weight`` x thumbnail similarity (the score
    returned). On the report photos this takes the original of a copy edited five ways at once
    from 2nd-10th place to 1st for ~3/4 of those it missed (docs/similar-quality.md)."""
    rule = rule or DEFAULT_RULE
    idx, scores = top_k(matrix, query, k, exclude, norms=norms)
    if len(idx) == 0:
        return idx, scores
    t = thumbnail_similarity(np.repeat(np.asarray(query_thumb)[None], len(idx), 0), thumbs[idx])
    combined = scores + rule.thumb_weight * t
    order = np.argsort(-combined, kind="stable")
    return idx[order], combined[order].astype(np.float32)


# --- nearest neighbours of every photo ---------------------------------------------------------


def neighbours(
    matrix: np.ndarray, k: int = 20, *, exact_limit: int = EXACT_LIMIT, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows: (indices (N,k) int64, cosines (N,k) float32), best
    first; rows with fewer than ``k`` candidates are padded with index -1 and cosine -inf.

    Up to ``exact_limit`` rows: exact, by blocks of a matrix product. Above: bucketed (an
    inverted file): ~sqrt(N) spherical k-means centroids, each row filed under its 3 nearest,
    exact neighbours within each bucket. Cost ~ N^1.5 instead of N^2; near-duplicates share a
    bucket (both are filed under the centroids nearest to them), far neighbours may be missed."""
    x = np.ascontiguousarray(matrix, np.float32)
    n = len(x)
    k = max(0, min(k, n - 1))
    if n <= exact_limit:
        return _exact(x, k)
    return _bucketed(x, k, seed=seed)


def _top_rows(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    part = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < s.shape[1] else np.argsort(-s, 1)
    ps = np.take_along_axis(s, part, 1)
    order = np.argsort(-ps, axis=1, kind="stable")
    return np.take_along_axis(part, order, 1), np.take_along_axis(ps, order, 1)


def _exact(x: np.ndarray, k: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    n = len(x)
    idx = np.full((n, k), -1, np.int64)
    sims = np.full((n, k), -np.inf, np.float32)
    if k == 0:
        return idx, sims
    for s in range(0, n, block):
        part = x[s : s + block] @ x.T
        rows = np.arange(part.shape[0])
        part[rows, s + rows] = -np.inf
        idx[s : s + block], sims[s : s + block] = _top_rows(part, k)
    return idx, sims


def _kmeans(x: np.ndarray, c: int, rng: np.random.Generator, iters: int = 8) -> np.ndarray:
    sample = x[rng.choice(len(x), min(len(x), 64 * c), replace=False)]
    cent = sample[rng.choice(len(sample), c, replace=False)].copy()
    for _ in range(iters):
        assign = np.argmax(sample @ cent.T, axis=1)
        sums = np.zeros_like(cent)
        np.add.at(sums, assign, sample)
        empty = np.flatnonzero(~sums.any(axis=1))
        sums[empty] = sample[rng.choice(len(sample), len(empty), replace=False)]
        cent = normalize(sums)
    return cent


def _bucketed(
    x: np.ndarray, k: int, *, seed: int, probes: int = 3, block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    n = len(x)
    rng = np.random.default_rng(seed)
    cent = _kmeans(x, max(8, round(np.sqrt(n))), rng)
    near = np.empty((n, probes), np.int64)
    for s in range(0, n, 8192):
        near[s : s + 8192] = _top_rows(x[s : s + 8192] @ cent.T, probes)[0]
    members = np.repeat(np.arange(n), probes)
    bucket = near.ravel()
    order = np.argsort(bucket, kind="stable")
    members, bucket = members[order], bucket[order]
    bounds = np.flatnonzero(np.diff(bucket)) + 1
    rows_l, cols_l, sims_l = [], [], []
    for m in np.split(members, bounds):
        if len(m) < 2:
            continue
        xm = x[m]
        kk = min(k, len(m) - 1)
        for s in range(0, len(m), block):
            part = xm[s : s + block] @ xm.T
            r = np.arange(part.shape[0])
            part[r, s + r] = -np.inf
            pi, ps = _top_rows(part, kk)
            rows_l.append(np.repeat(m[s : s + block], kk))
            cols_l.append(m[pi].ravel())
            sims_l.append(ps.ravel())
    idx = np.full((n, k), -1, np.int64)
    sims = np.full((n, k), -np.inf, np.float32)
    if not rows_l:
        return idx, sims
    rows, cols, vals = np.concatenate(rows_l), np.concatenate(cols_l), np.concatenate(sims_l)
    order = np.lexsort((cols, -vals, rows))  # by row, best first, ties by column
    rows, cols, vals = rows[order], cols[order], vals[order]
    keep = np.ones(len(rows), bool)  # a pair found in several buckets: once
    keep[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    first = np.searchsorted(rows, rows)  # each row's first position
    rank = np.arange(len(rows)) - first
    ok = rank < k
    idx[rows[ok], rank[ok]] = cols[ok]
    sims[rows[ok], rank[ok]] = vals[ok]
    return idx, sims


# --- duplicates ---------------------------------------------------------------------------------


def thumbnail_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mirror-aware correlation of thumbnail pairs: (P,S,S,3) x (P,S,S,3) -> (P,) in [-1, 1].

    Each channel is standardised (so a brightness or white-balance change does not count), then
    the mean product is taken as is and with ``b`` mirrored left-right; the larger counts."""

    def std(t: np.ndarray) -> np.ndarray:
        t = t.astype(np.float32)
        t -= t.mean(axis=(1, 2), keepdims=True)
        t /= np.maximum(t.std(axis=(1, 2), keepdims=True), 1.0)
        return t

    sa, sb = std(a), std(b)
    same = (sa * sb).mean(axis=(1, 2, 3))
    mirrored = (sa * sb[:, :, ::-1]).mean(axis=(1, 2, 3))
    return np.maximum(same, mirrored)


@dataclass(frozen=True, slots=True)
class DuplicateRule:
    """When two photos are copies of each other.

    A candidate pair (one is among the other's ``k`` nearest) has a *margin*: its similarity
    minus the higher of the two photos' backgrounds (the mean similarity of their neighbours
    ranked ``background``, never under ``background_floor``). The pair is a duplicate when the
    margin is at least ``sure``, or when it is at least ``low`` and margin + ``thumb_weight`` x
    thumbnail similarity reaches ``combined``. The background makes the test relative: among
    many photos of cats, two cat photos are alike and need more; the floor keeps it from being
    lenient in a small or varied collection (two zebra photos at 0.84 with nothing else like
    them). Thresholds from ``bench/eval_similar.py --fit`` (docs/similar-quality.md)."""

    #: neighbours looked at per photo
    k: int = 20
    #: a photo's background similarity: the mean of its neighbours ranked [lo, hi) (0-based)
    background: tuple[int, int] = (4, 20)
    background_floor: float = 0.5
    sure: float = 0.42
    low: float = 0.0
    thumb_weight: float = 0.5
    combined: float = 0.5
    #: the guard against chaining: a pair that would join two groups, one of several photos,
    #: joins them only if at least this share of all the pairs across them pass the rule too
    #: (0: plain connected components). Fitted photos: no recall lost at 0.5, while a chain
    #: A~B~C of photos that are merely alike needs A~C as well.
    guard: float = 0.5


DEFAULT_RULE = DuplicateRule()


@dataclass(frozen=True, slots=True)
class Pair:
    a: int
    b: int
    similarity: float
    margin: float  # similarity - max(background of a, background of b)
    thumb: float  # thumbnail similarity (nan where the margin alone decided)


def background(sims: np.ndarray, rule: DuplicateRule = DEFAULT_RULE) -> np.ndarray:
    """(N,k) neighbour cosines -> (N,) background level (see ``DuplicateRule``)."""
    lo, hi = rule.background
    window = sims[:, lo:hi]
    finite = np.isfinite(window)
    total = np.where(finite, window, 0.0).sum(axis=1)
    count = finite.sum(axis=1)
    mean = np.divide(total, count, out=np.full(len(sims), -np.inf), where=count > 0)
    return np.maximum(mean, rule.background_floor).astype(np.float32)


def candidate_pairs(
    matrix: np.ndarray, rule: DuplicateRule = DEFAULT_RULE, *, knn=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each unordered neighbour pair once: (a, b, similarity, max background of a and b)."""
    idx, sims = knn if knn is not None else neighbours(matrix, rule.k)
    bg = background(sims, rule)
    n, k = idx.shape
    rows = np.repeat(np.arange(n), k)
    cols, vals = idx.ravel(), sims.ravel()
    ok = cols >= 0
    rows, cols, vals = rows[ok], cols[ok], vals[ok]
    a, b = np.minimum(rows, cols), np.maximum(rows, cols)
    _, first = np.unique(a * n + b, return_index=True)
    a, b, vals = a[first], b[first], vals[first]
    return a, b, vals, np.maximum(bg[a], bg[b])


def duplicate_pairs(
    matrix: np.ndarray,
    thumbs: np.ndarray,
    rule: DuplicateRule = DEFAULT_RULE,
    *,
    knn: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[Pair]:
    """The pairs of photos ``rule`` calls copies of each other, best first. ``matrix``: (N,D)
    unit embeddings; ``thumbs``: (N,S,S,3) uint8; ``knn``: ``neighbours(matrix, rule.k)`` when
    already computed."""
    a, b, vals, bg = candidate_pairs(matrix, rule, knn=knn)
    return _decide(a, b, vals, bg, thumbs, rule)


def _decide(a, b, vals, bg, thumbs, rule: DuplicateRule) -> list[Pair]:
    margin = vals - bg
    keep = margin >= min(rule.low, rule.sure)
    a, b, vals, margin = a[keep], b[keep], vals[keep], margin[keep]
    thumb = np.full(len(a), np.nan, np.float32)
    unsure = margin < rule.sure
    if unsure.any():
        thumb[unsure] = thumbnail_similarity(thumbs[a[unsure]], thumbs[b[unsure]])
    keep = ~unsure | ((margin >= rule.low) & (margin + rule.thumb_weight * thumb >= rule.combined))
    order = np.argsort(-margin[keep], kind="stable")
    a, b, vals, margin, thumb = (v[keep][order] for v in (a, b, vals, margin, thumb))
    return [
        Pair(int(i), int(j), float(s), float(m), float(t))
        for i, j, s, m, t in zip(a, b, vals, margin, thumb, strict=True)
    ]


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of the edges a[i]-b[i] over n nodes: each node's smallest member."""
    label = np.arange(n)
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    while True:
        before = label.copy()
        low = np.minimum(label[a], label[b])
        np.minimum.at(label, a, low)
        np.minimum.at(label, b, low)
        label = label[label]
        if (label == before).all():
            return label


def group_pairs(n: int, pairs: Sequence[Pair]) -> list[list[int]]:
    """Connected components of ``pairs`` over ``n`` photos: the groups of two or more, each
    sorted, largest group first."""
    if not pairs:
        return []
    a = np.array([p.a for p in pairs])
    b = np.array([p.b for p in pairs])
    label = components(n, a, b)
    members = np.unique(np.concatenate([a, b]))
    groups: dict[int, list[int]] = {}
    for i in members.tolist():
        groups.setdefault(int(label[i]), []).append(i)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def duplicate_groups(
    matrix: np.ndarray,
    thumbs: np.ndarray,
    rule: DuplicateRule = DEFAULT_RULE,
    *,
    knn: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[list[int]]:
    """Groups of photos that are copies of one another (row indices, each group sorted, groups
    of two or more, largest first): the rule's pairs joined best first, with its guard."""
    knn = knn if knn is not None else neighbours(matrix, rule.k)
    pairs = duplicate_pairs(matrix, thumbs, rule, knn=knn)
    if rule.guard <= 0:
        return group_pairs(len(matrix), pairs)
    bg = background(knn[1], rule)
    label = np.arange(len(matrix))
    members: dict[int, list[int]] = {}
    for p in pairs:
        la, lb = int(label[p.a]), int(label[p.b])
        if la == lb:
            continue
        ga, gb = members.get(la, [la]), members.get(lb, [lb])
        if len(ga) > 1 or len(gb) > 1:
            xa, xb = np.repeat(ga, len(gb)), np.tile(gb, len(ga))
            vals = np.einsum("ij,ij->i", matrix[xa], matrix[xb])
            ok = _decide(xa, xb, vals, np.maximum(bg[xa], bg[xb]), thumbs, rule)
            if len(ok) < rule.guard * len(xa):
                continue
        if len(ga) < len(gb):
            la, lb, ga, gb = lb, la, gb, ga
        members[la] = ga + gb
        label[gb] = la
        members.pop(lb, None)
    groups = [sorted(g) for g in members.values() if len(g) > 1]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


# --- which copy to keep -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Copy:
    """What decides which copy of a photo to keep."""

    width: int
    height: int
    size: int  # file bytes
    timestamp: datetime | float | None = None  # when taken/created; None: unknown (last)


def _ts(c: Copy) -> float:
    if c.timestamp is None:
        return float("inf")
    return c.timestamp.timestamp() if isinstance(c.timestamp, datetime) else float(c.timestamp)


def keep_order(copies: Sequence[Copy]) -> tuple[list[int], str]:
    """Indices of a group's copies, the one to keep first: most pixels, then largest file, then
    oldest (then the lower index). And why the first comes first, in words."""
    order = sorted(
        range(len(copies)),
        key=lambda i: (-copies[i].width * copies[i].height, -copies[i].size, _ts(copies[i]), i),
    )
    if len(order) < 2:
        return order, "the only copy"
    best, runner = copies[order[0]], copies[order[1]]
    px, rpx = best.width * best.height, runner.width * runner.height
    if px > rpx:
        why = (
            f"most pixels: {best.width}x{best.height} ({px / 1e6:.2f} MP) vs at most "
            f"{runner.width}x{runner.height} ({rpx / 1e6:.2f} MP)"
        )
    elif best.size > runner.size:
        why = f"same pixels, largest file: {best.size:,} bytes vs at most {runner.size:,}"
    elif _ts(best) < _ts(runner):
        when = best.timestamp
        shown = when.isoformat() if isinstance(when, datetime) else f"{when:g}"
        why = f"same pixels and file size, oldest ({shown})"
    else:
        why = "same pixels, file size and date: the first listed"
    return order, why
