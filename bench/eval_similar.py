#!/usr/bin/env python3
""" "More like this" and duplicates, measured on photos the projection and rule were not fitted on.

    PYTHONPATH=src python bench/eval_similar.py --fit      # fit: projection file + rule (fit pool)
    PYTHONPATH=src python bench/eval_similar.py            # report (report pool)

Photos (paths are arguments; the defaults are where docs/similar-quality.md put them):

- ``--pets``: the 2 x 1,000 + 2 x 1,000 cat/dog photos of Kaggle's "Dogs vs. Cats" in the
  SuperDataScience layout (``training_set/{cats,dogs}``, ``test_set/{cats,dogs}``), from
  github.com/chanakya2734/Image-classification-using-CNN. Its ``breed_dataset`` folders are not
  used: a web scrape where many photos are crops of one another (pairs at cosine 0.87-0.999 are
  the same picture), which would count as false duplicate groups.
- ``--voc``: ``VOCdevkit/VOC2007`` with all 9,963 annotation XMLs and 1,165 JPEGs, from
  github.com/itsmeknt/cs231p1 (the source of the shared voc2007 set).
- coco128 (the shared set, ``PIXDEX_SHARED``).

Pools: **fit** = pets ``training_set`` + the VOC photos at even positions (the shared 300 keep
their voc-fit/voc-report split, the other 865 alternate by file name); **report** = pets
``test_set`` + the VOC photos at odd positions + coco128. Photos with the same bytes as an
earlier one are dropped. Nothing about the report pool is used when fitting.

Edited copies are made from each original here (PIL, seeded by the photo's position and the
kind): ``crop`` (keep 85-95 % of each side, random place), ``jpeg`` (quality 30-50),
``brightness`` (x0.75-1.25), ``mirror``, ``resize`` (40-60 % of each side), ``combo2`` (two of
those five), ``combo`` (all five at once), ``burst`` (the next frame of a burst, simulated: the
camera turned by up to 1.5 degrees and moved, framing 88-93 %, exposure x0.92-1.08, JPEG 80-92).
Copies other than ``jpeg`` are saved as JPEG quality 90. Every photo then goes through what
``pixdex index`` does: decode (draft mode), the classifier's preprocessing and one run of
``Classifier.predict_with_features``.

``--fit`` (fit pool, two copies per original, kinds in turn):
1. the rule's thresholds are chosen on a random half of the originals (and their copies) with
   the projection fitted on the other half, so they see embeddings of unseen photos;
2. the projection shipped (``calibration/<model>-projection.json``) is fitted on all of it.

Report: top hit per edit kind, grouping (recall per kind, false groups), more-like-this
precision on VOC and coco128, what int8 storage costs, exact vs bucketed neighbours.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import itertools
import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pixdex import similarity as sim  # noqa: E402

SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared")) / "data"
DEV = Path.home() / ".cache" / "pixdex-dev"
KINDS = ("crop", "jpeg", "brightness", "mirror", "resize", "combo2", "combo", "burst")
SINGLE = ("crop", "jpeg", "brightness", "mirror", "resize")
#: bump when the edits change (names the feature cache)
EDITS_VERSION = 1
#: grouping rounds on the report pool: each adds one copy of each of these kinds per original
ROUNDS = (("crop", "jpeg"), ("brightness", "mirror"), ("resize", "combo2"), ("combo", "burst"))
#: the rule is fitted for at most this share of false groups (the issue allows 1 %)
FIT_FALSE_GROUPS = 0.005


# --- photos -----------------------------------------------------------------------------------


@dataclass
class Photo:
    path: Path
    pool: str  # fit | report
    source: str  # pets | voc | coco128
    boxes: list[tuple[str, float]] = field(default_factory=list)  # (category, area)

    @property
    def main_subject(self) -> str | None:
        """Category of the largest annotated box (VOC: difficult boxes left out)."""
        return max(self.boxes, key=lambda b: b[1])[0] if self.boxes else None


def load_photos(pets: Path, voc: Path, coco: Path) -> list[Photo]:
    photos: list[Photo] = []
    data = json.loads((coco / "annotations" / "instances.json").read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    coco_boxes: dict[int, list] = {}
    for a in data["annotations"]:
        area = a["bbox"][2] * a["bbox"][3]
        coco_boxes.setdefault(a["image_id"], []).append((names[a["category_id"]], area))
    for im in sorted(data["images"], key=lambda im: im["file_name"]):
        path = coco / "images" / im["file_name"]
        photos.append(Photo(path, "report", "coco128", coco_boxes.get(im["id"], [])))
    # VOC: the shared set's split kept, the other photos alternate
    shared = json.loads((SHARED / "voc2007" / "annotations.json").read_text())["images"]
    shared_names = sorted(im["file_name"] for im in shared)
    pool = {name: ("fit", "report")[i % 2] for i, name in enumerate(shared_names)}
    rest = sorted(p.name for p in (voc / "JPEGImages").glob("*.jpg") if p.name not in pool)
    pool |= {name: ("fit", "report")[i % 2] for i, name in enumerate(rest)}
    for name in sorted(pool):
        root = ET.parse(voc / "Annotations" / name.replace(".jpg", ".xml")).getroot()
        boxes = []
        for obj in root.iter("object"):
            if obj.findtext("difficult", "0") == "1":
                continue
            bb = obj.find("bndbox")
            w = float(bb.findtext("xmax")) - float(bb.findtext("xmin")) + 1
            h = float(bb.findtext("ymax")) - float(bb.findtext("ymin")) + 1
            boxes.append((obj.findtext("name"), w * h))
        photos.append(Photo(voc / "JPEGImages" / name, pool[name], "voc", boxes))
    for split, which in (("training_set", "fit"), ("test_set", "report")):
        for p in sorted((pets / split).rglob("*.jpg")):
            animal = "cat" if p.parent.name == "cats" else "dog"
            photos.append(Photo(p, which, "pets", [(animal, 1.0)]))
    seen: set[str] = set()
    unique = []
    for ph in photos:
        digest = hashlib.sha256(ph.path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            unique.append(ph)
    return unique


# --- edits --------------------------------------------------------------------------------------


def _edit(img: Image.Image, kind: str, rng: np.random.Generator) -> tuple[Image.Image, int]:
    w, h = img.size
    quality = 90
    if kind == "crop":
        fx, fy = rng.uniform(0.85, 0.95, 2)
        cw, ch = round(w * fx), round(h * fy)
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = img.crop((x0, y0, x0 + cw, y0 + ch))
    elif kind == "jpeg":
        quality = int(rng.integers(30, 51))
    elif kind == "brightness":
        img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.75, 1.25)))
    elif kind == "mirror":
        img = ImageOps.mirror(img)
    elif kind == "resize":
        s = float(rng.uniform(0.4, 0.6))
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
    else:
        raise ValueError(kind)
    return img, quality


def edited(data: bytes, kind: str, seed: int) -> bytes:
    """An edited copy's JPEG bytes, the same for the same ``seed``."""
    rng = np.random.default_rng(seed)
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    quality = 90
    if kind in SINGLE:
        img, quality = _edit(img, kind, rng)
    elif kind in ("combo2", "combo"):
        steps = (
            [str(k) for k in rng.choice(SINGLE, 2, replace=False)]
            if kind == "combo2"
            else ["crop", "mirror", "brightness", "resize", "jpeg"]
        )
        for k in steps:
            img, q = _edit(img, k, rng)
            quality = min(quality, q)
    elif kind == "burst":
        w, h = img.size
        img = img.rotate(float(rng.uniform(-1.5, 1.5)), Image.Resampling.BICUBIC)
        f = float(rng.uniform(0.88, 0.93))
        cw, ch = round(w * f), round(h * f)
        dx, dy = rng.uniform(-0.5, 0.5, 2)
        x0 = int((w - cw) / 2 + dx * (w - cw) / 2)
        y0 = int((h - ch) / 2 + dy * (h - ch) / 2)
        img = img.crop((x0, y0, x0 + cw, y0 + ch))
        img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.92, 1.08)))
        quality = int(rng.integers(80, 93))
    else:
        raise ValueError(kind)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def seed_of(index: int, kind: str, copy: int = 0) -> int:
    return 1_000_003 * index + 7919 * KINDS.index(kind) + 104_729 * copy


# --- features (what pixdex index computes), cached ----------------------------------------------


@dataclass
class Features:
    features: np.ndarray  # (N, 1280) average-pooled
    features_max: np.ndarray  # (N, 1280) max-pooled
    thumbs: np.ndarray  # (N, 8, 8, 3) uint8
    meta: np.ndarray  # (N, 3): width, height, bytes

    def take(self, rows: np.ndarray) -> Features:
        return Features(
            *(a[rows] for a in (self.features, self.features_max, self.thumbs, self.meta))
        )


def extract(items: Sequence[Callable[[], bytes]], cache: Path, label: str) -> Features:
    if cache.is_file():
        z = np.load(cache)
        return Features(z["features"], z["features_max"], z["thumbs"], z["meta"])
    from pixdex.imaging import decode
    from pixdex.models.classifier import Classifier

    clf = Classifier(threads=2)
    n = len(items)
    out = Features(
        np.zeros((n, 1280), np.float32),
        np.zeros((n, 1280), np.float32),
        np.zeros((n, 8, 8, 3), np.uint8),
        np.zeros((n, 3), np.int64),
    )
    t0 = time.perf_counter()
    for s in range(0, n, 16):
        xs = []
        for i in range(s, min(n, s + 16)):
            data = items[i]()
            img = decode(data, min_side=clf.min_side)
            out.meta[i] = (img.width, img.height, len(data))
            xs.append(clf.preprocess(img.image))
        p = clf.predict_with_features(np.stack(xs))
        e = s + len(xs)
        out.features[s:e], out.features_max[s:e], out.thumbs[s:e] = (
            p.features,
            p.features_max,
            p.thumbnails,
        )
        if s % 1600 == 0:
            print(f"  {label}: {s}/{n} ({time.perf_counter() - t0:.0f} s)", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out.__dict__)
    return out


def cache_key(photos: Sequence[Photo], extra: str) -> str:
    from pixdex.models.classifier import onnx_model_path

    _, digest = onnx_model_path("efficientnet-lite0")
    from pixdex.models.efficientnet import BUILDER_VERSION

    h = hashlib.sha256(f"{digest}:{BUILDER_VERSION}:{EDITS_VERSION}:{extra}".encode())
    for p in photos:
        h.update(str(p.path).encode())
    return h.hexdigest()[:16]


# --- the projection ------------------------------------------------------------------------------


def fit_projection(
    originals: np.ndarray, copies: np.ndarray, copy_of: np.ndarray, dim: int, reg: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Learned whitening: whiten the covariance of (copy - original) differences, then keep the
    ``dim`` directions along which the originals vary most. Inputs are L2-normalised features."""
    mean = originals.mean(axis=0)
    diff = copies - originals[copy_of]
    w, v = np.linalg.eigh(diff.T @ diff / len(diff))
    w = np.maximum(w, 0) + reg * w.max()
    whiten = v / np.sqrt(w)
    z = (originals - mean) @ whiten
    w2, v2 = np.linalg.eigh(z.T @ z / len(z))
    return mean.astype(np.float32), (whiten @ v2[:, np.argsort(-w2)[:dim]]).astype(np.float32)


def projection_for(mean: np.ndarray, matrix: np.ndarray) -> sim.Projection:
    from pixdex.models.classifier import onnx_model_path
    from pixdex.models.efficientnet import BUILDER_VERSION

    _, digest = onnx_model_path("efficientnet-lite0")
    version = f"lw{matrix.shape[1]}.{digest[:8]}"
    return sim.Projection("efficientnet-lite0", digest, BUILDER_VERSION, version, mean, matrix)


def f16(p: sim.Projection) -> sim.Projection:
    """The projection as shipped (float16 arrays)."""
    return sim.Projection.from_json(p.to_json())


# --- measures ----------------------------------------------------------------------------------


def grouping_score(
    groups: list[list[int]], origin: np.ndarray, copies: np.ndarray
) -> tuple[int, int, np.ndarray]:
    """(groups, false groups, per copy: grouped with its original)."""
    label = np.arange(len(origin))
    false = 0
    for g in groups:
        label[g] = g[0]
        false += len(set(origin[g].tolist())) > 1
    return len(groups), false, label[copies] == label[origin[copies]]


def false_group_details(groups, origin, names) -> list[list[str]]:
    return [[names[i] for i in g] for g in groups if len(set(origin[g].tolist())) > 1]


@dataclass
class _Corpus:
    """A fitting corpus' candidate pairs, with what the rule reads, computed once."""

    n: int
    a: np.ndarray
    b: np.ndarray
    sim: np.ndarray
    bg: np.ndarray  # max of the two raw backgrounds (no floor)
    thumb: np.ndarray
    origin: np.ndarray
    copies: np.ndarray
    kind: np.ndarray  # per copy

    @classmethod
    def of(cls, emb, thumbs, origin, copies, kind) -> _Corpus:
        raw = sim.DuplicateRule(background_floor=-np.inf)
        a, b, s, bg = sim.candidate_pairs(emb, raw)
        t = sim.thumbnail_similarity(thumbs[a], thumbs[b])
        return cls(len(emb), a, b, s, bg, t, origin, copies, kind)

    def score(self, rule: sim.DuplicateRule) -> tuple[int, int, np.ndarray]:
        m = self.sim - np.maximum(self.bg, rule.background_floor)
        ok = (m >= rule.sure) | (
            (m >= rule.low) & (m + rule.thumb_weight * self.thumb >= rule.combined)
        )
        return self.score_mask(ok)

    def score_mask(self, ok: np.ndarray) -> tuple[int, int, np.ndarray]:
        """Groups, false groups and per-copy success when the pairs ``ok`` are joined."""
        label = sim.components(self.n, self.a[ok], self.b[ok])
        ids, count = np.unique(label, return_counts=True)
        multi = ids[count >= 2]
        lo = np.full(self.n, np.iinfo(np.int64).max)
        hi = np.full(self.n, -1)
        np.minimum.at(lo, label, self.origin)
        np.maximum.at(hi, label, self.origin)
        false = int((lo[multi] != hi[multi]).sum())
        return len(multi), false, label[self.copies] == label[self.origin[self.copies]]


def fit_rule(dense: _Corpus, sparse: list[_Corpus]) -> tuple[sim.DuplicateRule, dict]:
    """The rule with the best copy recall on ``dense`` at <= FIT_FALSE_GROUPS false groups there
    and over the ``sparse`` corpora together (small or varied collections, where the background
    is low and only the floor guards)."""
    best = None
    grid = itertools.product(
        (0.4, 0.45, 0.5, 0.55),  # background_floor
        (0.27, 0.3, 0.36, 0.42),  # sure
        (0.0, 0.04, 0.08, 0.12),  # low
        (0.3, 0.5, 0.7),  # thumb_weight
        np.arange(0.3, 0.71, 0.025),  # combined
    )
    for floor, sure, low, weight, combined in grid:
        rule = sim.DuplicateRule(
            background_floor=floor,
            sure=sure,
            low=low,
            thumb_weight=weight,
            combined=round(float(combined), 3),
        )
        g, f, ok = dense.score(rule)
        if f > FIT_FALSE_GROUPS * g:
            continue
        sg = sf = 0
        for c in sparse:
            g2, f2, _ = c.score(rule)
            sg, sf = sg + g2, sf + f2
        if sf > FIT_FALSE_GROUPS * sg:
            continue
        # ties: the stricter rule (higher floor, sure, combined)
        key = (round(float(ok.mean()), 4), floor, sure, combined)
        if best is None or key > best[0]:
            best = (key, rule, g, f, sg, sf, ok)
    _, rule, g, f, sg, sf, ok = best
    kinds = {
        k: round(float(ok[dense.kind == k].mean()), 4) for k in KINDS if (dense.kind == k).any()
    }
    return rule, {"recall": round(float(ok.mean()), 4), "per_kind": kinds, "groups": g,
                  "false": f, "sparse_groups": sg, "sparse_false": sf}  # fmt: skip


def more_like_this(emb: np.ndarray, subjects: Sequence[str | None], k: int = 10) -> dict:
    keep = np.array([s is not None for s in subjects])
    e = sim.normalize(emb[keep])
    subj = np.array([s for s in subjects if s is not None])
    s = e @ e.T
    np.fill_diagonal(s, -np.inf)
    nb = np.argsort(-s, axis=1)[:, :k]
    same = (subj[nb] == subj[:, None]).mean(axis=1)
    nonperson = subj != "person"
    # the best any ranking could do: a subject with fewer than k other photos caps precision
    count = {c: int((subj == c).sum()) for c in set(subj.tolist())}
    ceiling = np.array([min(k, count[c] - 1) / k for c in subj])
    return {
        "all": float(same.mean()),
        "nonperson": float(same[nonperson].mean()),
        "ceiling_all": float(ceiling.mean()),
        "ceiling_nonperson": float(ceiling[nonperson].mean()),
        "n": int(len(subj)),
        "n_nonperson": int(nonperson.sum()),
    }


def topk_overlap(a: np.ndarray, b: np.ndarray, k: int = 10) -> float:
    na = np.argsort(-(a @ a.T - 9 * np.eye(len(a))), axis=1)[:, :k]
    nb = np.argsort(-(b @ b.T - 9 * np.eye(len(b))), axis=1)[:, :k]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(na, nb, strict=True)]))


# --- main ----------------------------------------------------------------------------------------


def fit(args: argparse.Namespace, photos: list[Photo]) -> None:
    orig = [p for p in photos if p.pool == "fit"]
    kinds = [(i, KINDS[(2 * i + j) % len(KINDS)], j) for i in range(len(orig)) for j in range(2)]
    print(f"fit pool: {len(orig)} originals ({_count(orig)}), {len(kinds)} copies", flush=True)
    key = cache_key(orig, "fit2")
    fo = extract([lambda p=p: p.path.read_bytes() for p in orig], args.cache / f"fit-o-{key}.npz",
                 "originals")  # fmt: skip
    items = [
        lambda p=orig[i], k=k, j=j, i=i: edited(p.path.read_bytes(), k, seed_of(i, k, j))
        for i, k, j in kinds
    ]
    fc = extract(items, args.cache / f"fit-c-{key}.npz", "copies")
    copy_of = np.array([i for i, _, _ in kinds])
    xo, xc = sim.normalize(fo.features_max), sim.normalize(fc.features_max)
    np.save(args.cache / "fit-avg-mean.npy", sim.normalize(fo.features).mean(axis=0))
    # 1. the rule, on half B with the projection fitted on half A
    in_a = np.random.default_rng(0).random(len(orig)) < 0.5
    ca = in_a[copy_of]
    remap = np.cumsum(in_a) - 1
    mean, matrix = fit_projection(xo[in_a], xc[ca], remap[copy_of[ca]], sim.EMBEDDING_DIM)
    proj = f16(projection_for(mean, matrix))
    b_o, b_c = np.flatnonzero(~in_a), np.flatnonzero(~ca)
    remap_b = np.cumsum(~in_a) - 1
    emb = proj(np.concatenate([fo.features_max[b_o], fc.features_max[b_c]]))
    thumbs = np.concatenate([fo.thumbs[b_o], fc.thumbs[b_c]])
    origin = np.concatenate([np.arange(len(b_o)), remap_b[copy_of[b_c]]])
    kind_of = np.array([k for _, k, _ in kinds])[b_c]
    t0 = time.perf_counter()

    def corpus(rows: np.ndarray) -> _Corpus:  # originals ``rows`` of half B and their copies
        keep = np.isin(origin, rows)
        sub = np.flatnonzero(keep)
        new = -np.ones(len(origin), np.int64)
        new[rows] = np.arange(len(rows))
        o = new[origin[sub]]
        return _Corpus.of(emb[sub], thumbs[sub], o, np.arange(len(rows), len(sub)),
                          kind_of[sub[len(rows):] - len(b_o)])  # fmt: skip

    dense = corpus(np.arange(len(b_o)))
    voc = np.flatnonzero([orig[i].source == "voc" for i in b_o])
    rng = np.random.default_rng(5)
    small = [np.sort(rng.choice(len(b_o), 60, replace=False)) for _ in range(10)]
    rule, info = fit_rule(dense, [corpus(voc)] + [corpus(r) for r in small])
    print(f"rule (fitted on {len(b_o)} originals + {len(b_c)} copies, half B; sparse: its "
          f"{len(voc)} VOC originals + copies, 10 x 60 random originals + copies; "
          f"{time.perf_counter() - t0:.0f} s): {rule}\n  {info}", flush=True)  # fmt: skip
    for guard in (0.0, 0.5, 0.75, 1.0):  # the guard against chaining, on the same photos
        g_rule = dataclasses.replace(rule, guard=guard)
        g, f, ok = grouping_score(sim.duplicate_groups(emb, thumbs, g_rule), origin,
                                  np.arange(len(b_o), len(origin)))  # fmt: skip
        combo = ok[kind_of == "combo"].mean()
        print(f"  guard {guard}: {g} groups, {f} false, recall {ok.mean():.4f} (combo {combo:.4f})")
    # 2. the projection shipped: fitted on all the fit pool
    mean, matrix = fit_projection(xo, xc, copy_of, sim.EMBEDDING_DIM)
    path = sim.projection_file("efficientnet-lite0")
    data = projection_for(mean, matrix).to_json()
    data["fitted_on"] = (
        f"{len(orig)} fit-pool photos ({_count(orig)}) and {len(kinds)} edited copies "
        f"(bench/eval_similar.py --fit, edits v{EDITS_VERSION})"
    )
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


def _count(photos: Sequence[Photo]) -> str:
    counts: dict[str, int] = {}
    for p in photos:
        counts[p.source] = counts.get(p.source, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))


def report(args: argparse.Namespace, photos: list[Photo]) -> dict:
    orig = [p for p in photos if p.pool == "report"]
    n = len(orig)
    print(f"report pool: {n} originals ({_count(orig)})", flush=True)
    key = cache_key(orig, "report")
    fo = extract([lambda p=p: p.path.read_bytes() for p in orig], args.cache / f"rep-o-{key}.npz",
                 "originals")  # fmt: skip
    fc: dict[str, Features] = {}
    for kind in KINDS:
        items = [lambda p=p, i=i, k=kind: edited(p.path.read_bytes(), k, seed_of(i, k))
                 for i, p in enumerate(orig)]  # fmt: skip
        fc[kind] = extract(items, args.cache / f"rep-{kind}-{key}.npz", kind)
    bursts = [
        extract([lambda p=p, i=i, c=c: edited(p.path.read_bytes(), "burst", seed_of(i, "burst", c))
                 for i, p in enumerate(orig)], args.cache / f"rep-burst{c}-{key}.npz", f"burst{c}")
        for c in (1, 2)
    ]  # fmt: skip
    proj = sim.load_projection("efficientnet-lite0")
    out: dict = {"pool": _count(orig), "originals": n, "projection": proj.version}

    def stored(x: np.ndarray) -> np.ndarray:  # through int8 storage, as the index will hold it
        return sim.decode_embeddings([sim.encode_embedding(v) for v in proj(x)])

    eo = stored(fo.features_max)
    ec = {k: stored(f.features_max) for k, f in fc.items()}
    # 1. top hit: each copy among the originals and the other copies of its kind
    top = {}
    for kind in KINDS:
        corpus = np.concatenate([eo, ec[kind]])
        s = ec[kind] @ corpus.T
        s[np.arange(n), n + np.arange(n)] = -np.inf
        top[kind] = float((s.argmax(axis=1) == np.arange(n)).mean())
    out["top_hit"] = top
    print("top hit (int8 embeddings):", _fmt(top), flush=True)
    # find_copies: the top 10 re-ordered with the thumbnails
    top, misses = {}, {}
    for kind in KINDS:
        corpus = np.concatenate([eo, ec[kind]])
        thumbs = np.concatenate([fo.thumbs, fc[kind].thumbs])
        hits = []
        for i in range(n):
            idx, _ = sim.find_copies(corpus, thumbs, ec[kind][i], fc[kind].thumbs[i], 10, n + i)
            hits.append(idx[0] == i)
            if idx[0] != i:
                misses.setdefault(kind, []).append((orig[i].path.name, _name(orig, idx[0], n)))
        top[kind] = float(np.mean(hits))
    out["top_hit_find_copies"] = top
    out["top_hit_find_copies_misses"] = misses
    print("top hit (find_copies, int8):", _fmt(top), flush=True)
    # the same through float32 embeddings and from the raw pooled features, for comparison
    for label, f in (
        ("float32 embeddings", proj),
        ("raw avg features", lambda x: sim.normalize(x)),
    ):
        src = (lambda F: F.features) if label.startswith("raw") else (lambda F: F.features_max)
        a = f(src(fo))
        t = {}
        for kind in KINDS:
            b = f(src(fc[kind]))
            s = b @ np.concatenate([a, b]).T
            s[np.arange(n), n + np.arange(n)] = -np.inf
            t[kind] = float((s.argmax(axis=1) == np.arange(n)).mean())
        out[f"top_hit_{label}"] = t
        print(f"top hit ({label}):", _fmt(t), flush=True)
    # 2. grouping: rounds of originals + one copy of each of two kinds per original
    thumbs_o = fo.thumbs
    rounds = {}
    names = [str(p.path.relative_to(p.path.parents[1])) for p in orig]
    details = {}
    for kinds in (*ROUNDS, ("burst", "burst1", "burst2")):
        feats = [fc.get(k) or bursts[int(k[-1]) - 1] for k in kinds]
        emb = np.concatenate([eo] + [ec[k] if k in ec else stored(f.features_max)
                                     for k, f in zip(kinds, feats, strict=True)])  # fmt: skip
        thumbs = np.concatenate([thumbs_o] + [f.thumbs for f in feats])
        origin = np.tile(np.arange(n), len(kinds) + 1)
        copies = np.arange(n, len(origin))
        t0 = time.perf_counter()
        groups = sim.duplicate_groups(emb, thumbs)
        secs = time.perf_counter() - t0
        g, f, ok = grouping_score(groups, origin, copies)
        per = {k: float(ok[j * n : (j + 1) * n].mean()) for j, k in enumerate(kinds)}
        sizes = np.bincount([len(x) for x in groups])
        label = "+".join(kinds)
        rounds[label] = {"photos": len(emb), "groups": g, "false_groups": f,
                         "false_share": f / max(g, 1), "recall": per, "seconds": secs,
                         "largest_group": int(len(sizes) - 1)}  # fmt: skip
        details[label] = false_group_details(groups, np.array(origin), names + names * len(kinds))
        print(f"grouping {label}: {len(emb)} photos, {g} groups, {f} false ({f / g:.2%}), "
              f"recall {_fmt(per)}, largest {len(sizes) - 1}, {secs:.1f} s")  # fmt: skip
    out["grouping"] = rounds
    # what each piece brings, on the hardest round: the best recall at <= 1 % false groups of a
    # plain cosine threshold (raw average-pooled features, the embedding), of the margin alone
    # (no thumbnail), and the rule (connected components, no guard)
    kinds = ("combo", "burst")
    e_all = np.concatenate([eo, ec["combo"], ec["burst"]])
    t_all = np.concatenate([thumbs_o, fc["combo"].thumbs, fc["burst"].thumbs])
    raw = sim.normalize(np.concatenate([fo.features, fc["combo"].features, fc["burst"].features]))
    origin = np.tile(np.arange(n), 3)
    ablation = {}
    variants = (
        ("raw avg features, cosine", raw),
        ("embedding, cosine", e_all),
        ("embedding, margin", e_all),
        ("embedding, margin + thumbnail", e_all),
    )
    for label, emb in variants:
        c = _Corpus.of(emb, t_all, origin, np.arange(n, 3 * n), np.repeat(kinds, n))
        if label.endswith("cosine"):
            masks = [c.sim >= t for t in np.arange(0.5, 1.0, 0.005)]
        elif label.endswith("margin"):
            floor = sim.DEFAULT_RULE.background_floor
            masks = [c.sim - np.maximum(c.bg, floor) >= t for t in np.arange(0.0, 0.6, 0.005)]
        else:
            r = sim.DEFAULT_RULE
            m = c.sim - np.maximum(c.bg, r.background_floor)
            masks = [(m >= r.sure) | ((m >= r.low) & (m + r.thumb_weight * c.thumb >= r.combined))]
        best = (0.0, 0.0, 0, 0)
        for ok in masks:
            g, f, hit = c.score_mask(ok)
            if g and f <= 0.01 * g and hit[:n].mean() + hit[n:].mean() > best[0] + best[1]:
                best = (float(hit[:n].mean()), float(hit[n:].mean()), g, f)
        ablation[label] = {"combo": best[0], "burst": best[1], "groups": best[2], "false": best[3]}
        print(f"ablation (combo+burst round, <= 1 % false groups) {label}: combo {best[0]:.4f} "
              f"burst {best[1]:.4f} ({best[2]} groups, {best[3]} false)", flush=True)  # fmt: skip
    out["ablation"] = ablation
    # the originals alone: any group is two different photos of the pool (or a copy it held)
    groups = sim.duplicate_groups(eo, thumbs_o)
    out["originals_alone_groups"] = [[names[i] for i in g] for g in groups]
    print(f"originals alone: {len(groups)} groups: {out['originals_alone_groups'][:10]}")
    # 3. more like this (float and int8 embeddings, and the alternatives)
    mlt = {}
    rng = np.random.default_rng(0)
    for source in ("voc", "coco128"):
        rows = np.array([i for i, p in enumerate(orig) if p.source == source])
        subj = [orig[i].main_subject for i in rows]
        cands = {
            "random": rng.normal(size=(len(rows), 64)),
            "raw avg features": fo.features[rows],
            "raw max features": fo.features_max[rows],
            "embedding float32": proj(fo.features_max[rows]),
            "embedding int8": eo[rows],
        }
        if (args.cache / "fit-avg-mean.npy").is_file():  # written by --fit
            centre = np.load(args.cache / "fit-avg-mean.npy")
            cands["avg features centred (fit-pool mean)"] = (
                sim.normalize(fo.features[rows]) - centre
            )
        mlt[source] = {k: more_like_this(v, subj) for k, v in cands.items()}
        for k, v in mlt[source].items():
            print(f"more like this {source} {k}: all {v['all']:.3f} "
                  f"non-person {v['nonperson']:.3f} (n {v['n']}, {v['n_nonperson']}; ceiling "
                  f"{v['ceiling_all']:.3f} / {v['ceiling_nonperson']:.3f})")  # fmt: skip
    out["more_like_this"] = mlt
    # 4. what storage costs: top-10 overlap vs float32 embeddings, over the originals
    f32 = proj(fo.features_max)
    out["top10_overlap_int8_vs_float32"] = topk_overlap(f32, eo)
    f16m = sim.normalize(f32.astype(np.float16).astype(np.float32))
    out["top10_overlap_float16_vs_float32"] = topk_overlap(f32, f16m)
    print(f"top-10 overlap vs float32: int8 {out['top10_overlap_int8_vs_float32']:.4f}, "
          f"float16 {out['top10_overlap_float16_vs_float32']:.4f}", flush=True)  # fmt: skip
    # 5. bucketed vs exact neighbours on the largest real corpus here
    emb = np.concatenate([eo, *ec.values()])
    t0 = time.perf_counter()
    ex = sim.neighbours(emb, 20)
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    bu = sim.neighbours(emb, 20, exact_limit=0)
    t_bucket = time.perf_counter() - t0
    rec1 = float((ex[0][:, 0] == bu[0][:, 0]).mean())
    rec20 = float(np.mean([len(set(a) & set(b)) / 20 for a, b in zip(ex[0], bu[0], strict=True)]))
    out["bucketed"] = {"photos": len(emb), "exact_s": t_exact, "bucketed_s": t_bucket,
                       "top1_same": rec1, "top20_overlap": rec20}  # fmt: skip
    print(f"neighbours of {len(emb)} real embeddings: exact {t_exact:.1f} s, bucketed "
          f"{t_bucket:.1f} s, same top-1 {rec1:.4f}, top-20 overlap {rec20:.3f}")  # fmt: skip
    if args.details:
        args.details.write_text(json.dumps({"false_groups": details,
                                            "originals_alone": out["originals_alone_groups"]},
                                           indent=1))  # fmt: skip
    return out


def _name(orig: Sequence[Photo], i: int, n: int) -> str:
    return orig[i].path.name if i < n else f"copy of {orig[i - n].path.name}"


def _fmt(d: dict) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in d.items())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fit", action="store_true", help="fit the projection and the rule")
    ap.add_argument("--pets", type=Path, default=DEV / "photos" / "pets" / "dataset")
    ap.add_argument("--voc", type=Path,
                    default=DEV / "photos" / "voc2007" / "VOCdevkit" / "VOC2007")  # fmt: skip
    ap.add_argument("--coco", type=Path, default=SHARED / "coco128")
    ap.add_argument(
        "--cache",
        type=Path,
        default=DEV / "similar" / "features",
        help="extracted features are kept here (keyed by model, edits and photos)",
    )
    ap.add_argument("--details", type=Path, default=None, help="(report) false groups to JSON")
    ap.add_argument("--json", type=Path, default=None, help="(report) all figures to JSON")
    args = ap.parse_args()
    for path in (args.pets, args.voc, args.coco):
        if not path.is_dir():
            raise SystemExit(f"missing photos: {path} (see the docstring)")
    photos = load_photos(args.pets, args.voc, args.coco)
    if args.fit:
        fit(args, photos)
        return 0
    out = report(args, photos)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
