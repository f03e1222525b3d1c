#!/usr/bin/env python3
"""What similarity costs: per photo at index time, per "more like this" query, per duplicates run.

    PYTHONPATH=src python bench/bench_similar.py                 # everything
    PYTHONPATH=src python bench/bench_similar.py --only index    # index | topk | duplicates

- **index**: on coco128 (decoded and preprocessed once), CPU time (process time) per photo of
  the classifier's run asked for the logits only (``Classifier.predict``) and for the pooled
  features too, of the thumbnails, and of the projection and both encodings, in interleaved
  rounds; the session runs on ``--threads`` threads, batches of 16 as ``pixdex index``.
- **int8**: the int8 classifier's embeddings against the float one's on coco128.
- **topk**: ``similarity.top_k`` over 100,000 x 256 embeddings held as float32, float16 or int8
  (numpy matrix-vector product), one thread (OPENBLAS/OMP/MKL threads set to 1 before numpy is
  imported), 1,000 random queries: p50/p99 and the memory held.
- **duplicates**: ``similarity.duplicate_groups`` at 10,000 and 100,000 photos on 2 threads:
  the real embeddings and thumbnails of ``bench/eval_similar.py``'s report pool (originals and
  their edited copies, from its feature cache, in file order: 10,000 = the first 10,000) and,
  to reach 100,000, synthetic ones drawn around them (a real embedding plus Gaussian noise,
  cosine ~0.6 to it; its thumbnail plus noise).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

if "topk" in sys.argv:  # before numpy is imported: one BLAS thread for top-k
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from pixdex import similarity as sim  # noqa: E402

SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared")) / "data"
FEATURES = Path.home() / ".cache" / "pixdex-dev" / "similar" / "features"


def bench_index(threads: int, rounds: int) -> None:
    from pixdex.imaging import decode
    from pixdex.models.classifier import Classifier, thumbnails
    from pixdex.models.efficientnet import FEATURES_MAX_NAME, FEATURES_NAME, INPUT_NAME, OUTPUT_NAME

    clf = Classifier(threads=threads)
    proj = sim.load_projection(clf.name)
    paths = sorted((SHARED / "coco128" / "images").glob("*.jpg"))
    x = np.stack(
        [clf.preprocess(decode(p.read_bytes(), min_side=clf.min_side).image) for p in paths]
    )
    batches = [x[i : i + 16] for i in range(0, len(x), 16)]
    preds = [clf.predict_with_features(b) for b in batches]
    n = len(x)
    outputs = [OUTPUT_NAME, FEATURES_NAME, FEATURES_MAX_NAME]

    def logits_only() -> None:  # Classifier.predict
        for b in batches:
            clf.predict(b)

    def three_outputs() -> None:  # the same run, asked for the pooled features too
        for b in batches:
            clf._session.run(outputs, {INPUT_NAME: b})

    def thumbs() -> None:
        for b in batches:
            thumbnails(b)

    def embed_and_encode() -> None:  # projection + both encodings, on the run's outputs
        for p in preds:
            for v, t in zip(proj(p.features_max), p.thumbnails, strict=True):
                sim.encode_embedding(v)
                sim.encode_thumbnail(t)

    parts = {
        "run, logits only (predict)": logits_only,
        "run, + features outputs": three_outputs,
        "thumbnails": thumbs,
        "projection + encodings": embed_and_encode,
    }
    for fn in parts.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in parts}
    for _ in range(rounds):
        for name, fn in parts.items():
            t0 = time.process_time()
            fn()
            times[name].append((time.process_time() - t0) / n * 1e3)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"index cost, {n} coco128 photos, batches of 16, {threads} thread(s), {rounds} rounds "
          f"interleaved, CPU ms/photo (median; min-max):")  # fmt: skip
    for k, v in times.items():
        print(f"  {k:30s} {med[k]:7.3f}  ({min(v):.3f}-{max(v):.3f})")
    base = med["run, logits only (predict)"]
    run_extra = med["run, + features outputs"] - base
    numpy_extra = med["thumbnails"] + med["projection + encodings"]
    print(f"  extra per photo: outputs {run_extra:+.3f} ms + thumbnail, projection, encodings "
          f"{numpy_extra:.3f} ms = {run_extra + numpy_extra:.3f} ms = "
          f"{(run_extra + numpy_extra) / base:+.2%} of the classifier run")  # fmt: skip


def bench_int8() -> None:
    """The int8 classifier's embeddings vs the float one's (the projection was fitted on float)."""
    from pixdex.imaging import decode
    from pixdex.models.classifier import Classifier

    f, q = Classifier(threads=1), Classifier(threads=1, quantized=True)
    paths = sorted((SHARED / "coco128" / "images").glob("*.jpg"))
    x = np.stack([f.preprocess(decode(p.read_bytes(), min_side=f.min_side).image) for p in paths])
    proj = sim.load_projection(f.name)

    def emb(c: Classifier) -> np.ndarray:
        return proj(
            np.concatenate([c.predict_with_features(b).features_max for b in np.split(x, 8)])
        )

    ef, eq = emb(f), emb(q)
    cos = np.einsum("ij,ij->i", ef, eq)
    eye = 9 * np.eye(len(x))
    nf, nq = (np.argsort(-(e @ e.T - eye), axis=1)[:, :10] for e in (ef, eq))
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(nf, nq, strict=True)])
    print(f"int8 vs float classifier, {len(x)} coco128 photos: embedding cosine mean "
          f"{cos.mean():.3f} min {cos.min():.3f}; top-10 overlap {overlap:.3f}")  # fmt: skip


def real_embeddings() -> tuple[np.ndarray, np.ndarray, str]:
    """The report pool's originals and copies from eval_similar's cache, else coco128."""
    files = sorted(FEATURES.glob("rep-*.npz")) if FEATURES.is_dir() else []
    if files:
        proj = sim.load_projection("efficientnet-lite0")
        z = [np.load(f) for f in files]
        emb = np.concatenate([proj(f["features_max"]) for f in z])
        thumbs = np.concatenate([f["thumbs"] for f in z])
        return emb, thumbs, f"{len(emb):,} real (eval_similar.py report pool, {len(files)} files)"
    from pixdex.imaging import decode
    from pixdex.models.classifier import Classifier

    clf = Classifier(threads=0)
    paths = sorted((SHARED / "coco128" / "images").glob("*.jpg"))
    x = np.stack(
        [clf.preprocess(decode(p.read_bytes(), min_side=clf.min_side).image) for p in paths]
    )
    p = clf.predict_with_features(x)
    return sim.load_projection(clf.name)(p.features_max), p.thumbnails, "128 real (coco128)"


def synthetic(emb: np.ndarray, thumbs: np.ndarray, n: int, seed: int = 0):
    """``emb`` and ``thumbs`` first, then drawn around random ones of them up to ``n`` rows."""
    rng = np.random.default_rng(seed)
    extra = n - len(emb)
    if extra <= 0:
        return emb[:n], thumbs[:n]
    src = rng.integers(0, len(emb), extra)
    sigma = np.sqrt((1 / 0.6**2 - 1) / emb.shape[1])  # cosine ~0.6 to the source
    e = sim.normalize(emb[src] + sigma * rng.standard_normal((extra, emb.shape[1]), np.float32))
    t = np.clip(thumbs[src] + rng.normal(0, 20, (extra, *thumbs.shape[1:])), 0, 255)
    return np.concatenate([emb, e]), np.concatenate([thumbs, t.astype(np.uint8)])


def bench_topk(queries: int) -> None:
    emb, _, what = real_embeddings()
    matrix, _ = synthetic(emb, np.zeros((len(emb), 8, 8, 3), np.uint8), 100_000)
    blobs = [sim.encode_embedding(v) for v in matrix]
    t0 = time.perf_counter()
    f32 = sim.decode_embeddings(blobs)
    load = time.perf_counter() - t0
    held = {"float32": f32, "float16": f32.astype(np.float16), "int8": sim.int8_matrix(blobs)}
    norms = sim.row_norms(held["int8"])
    rng = np.random.default_rng(1)
    qs = rng.integers(0, len(f32), queries)
    print(f"top-10 over {len(f32):,} x {f32.shape[1]} ({what} + synthetic), one thread, "
          f"{queries} queries; decoding the 100,000 int8 blobs: {load:.2f} s")  # fmt: skip
    truth = {int(q): sim.top_k(f32, f32[q], 10, exclude=int(q))[0].tolist() for q in qs}
    for name, m in held.items():
        lat, same = [], []
        for q in qs:
            t0 = time.perf_counter()
            idx, _ = sim.top_k(m, f32[q], 10, exclude=int(q), norms=norms)
            lat.append(time.perf_counter() - t0)
            same.append(len(set(idx.tolist()) & set(truth[q])) / 10)
        lat = np.array(lat) * 1e3
        p50, p99 = np.percentile(lat, [50, 99])
        print(f"  {name:8s} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {lat.max():6.2f} ms  "
              f"held {m.nbytes / 1e6:.1f} MB, top-10 as float32's {np.mean(same):.4f}")  # fmt: skip


def bench_duplicates() -> None:
    emb, thumbs, what = real_embeddings()
    print(f"duplicates ({what}; 2 threads):")
    for n in (10_000, len(emb), 100_000):
        label = "real" if n <= len(emb) else "real + synthetic"
        e, t = synthetic(emb, thumbs, n)
        t0 = time.perf_counter()
        knn = sim.neighbours(e, sim.DEFAULT_RULE.k)
        t1 = time.perf_counter()
        pairs = sim.duplicate_pairs(e, t, knn=knn)
        groups = sim.group_pairs(len(e), pairs)
        t2 = time.perf_counter()
        how = "exact" if len(e) <= sim.EXACT_LIMIT else "bucketed"
        print(
            f"  {label:18s} {len(e):>7,} photos: {t2 - t0:6.1f} s (neighbours, {how}: "
            f"{t1 - t0:.1f} s; rule + groups {t2 - t1:.1f} s), {len(groups):,} groups"
        )
        if len(e) == 100_000:
            nn = knn[1][:, 0]

            def q(v: np.ndarray) -> list[float]:
                return np.round(np.quantile(v, [0.1, 0.5, 0.9]), 3).tolist()

            print(f"    nearest-neighbour cosine q10/50/90: {q(nn)} (real part: "
                  f"{q(nn[: len(emb)])}, synthetic part: {q(nn[len(emb) :])})")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("index", "int8", "topk", "duplicates"))
    ap.add_argument("--threads", type=int, default=1, help="classifier threads (index)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--queries", type=int, default=1000)
    args = ap.parse_args()
    if args.only is None:  # each part in its own process (top-k needs BLAS on one thread)
        for part in ("index", "int8", "topk", "duplicates"):
            rest = ["--threads", str(args.threads), "--rounds", str(args.rounds)]
            cmd = [sys.executable, __file__, "--only", part, *rest, "--queries", str(args.queries)]
            subprocess.run(cmd, check=True)
    elif args.only == "index":
        bench_index(args.threads, args.rounds)
    elif args.only == "int8":
        bench_int8()
    elif args.only == "topk":
        bench_topk(args.queries)
    else:
        bench_duplicates()
    return 0


if __name__ == "__main__":
    sys.exit(main())
