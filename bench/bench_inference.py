"""Label-model inference: speed of decoding and of the model, and the accuracy cost of shortcuts.

    python bench/bench_inference.py speed [--models lite0,lite2] [--rounds 3] [--large 32]
    python bench/bench_inference.py draft     # JPEG draft mode vs full decode, top-5 agreement
    python bench/bench_inference.py int8      # int8 quantisation: agreement and speed

Run from the repo root with PYTHONPATH=src. Images: ../shared/data/coco128/images (override with
--images). Prints markdown tables (the numbers recorded in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from pixdex.imaging import decode
from pixdex.models.classifier import Classifier
from pixdex.models.sessions import available_cores

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared"))
MODELS = {"lite0": "efficientnet-lite0", "lite2": "efficientnet-lite2"}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import onnxruntime

    return (
        f"{available_cores()} cores ({cpu}), {mem:.0f} GiB RAM, no GPU, Python "
        f"{platform.python_version()}, onnxruntime {onnxruntime.__version__}, "
        f"Pillow {Image.__version__}, numpy {np.__version__}"
    )


def timed(fn: Callable[[], object], rounds: int) -> float:
    """Best-of-``rounds`` seconds (the machine is shared; the minimum is the least disturbed)."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def predict_all(clf: Classifier, arrays: Sequence[np.ndarray], batch: int = 16) -> np.ndarray:
    out = [clf.predict(np.stack(arrays[i : i + batch])) for i in range(0, len(arrays), batch)]
    return softmax(np.concatenate(out))


def agreement(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """Top-1 equal, identical top-5 sets, share of the reference's top-5 classes kept in the
    top-5, and the largest probability change on the reference's top-5 classes."""
    r5, g5 = np.argsort(-ref, axis=1)[:, :5], np.argsort(-got, axis=1)[:, :5]
    kept = [len(set(a) & set(b)) for a, b in zip(r5, g5, strict=True)]
    rows = np.arange(len(ref))[:, None]
    return {
        "n": len(ref),
        "top1": float(np.mean(r5[:, 0] == g5[:, 0])),
        "top5_set": float(np.mean([set(a) == set(b) for a, b in zip(r5, g5, strict=True)])),
        "top5_kept": float(np.sum(kept) / (5 * len(ref))),
        "max_dp": float(np.abs(ref[rows, r5] - got[rows, r5]).max()),
    }


def fmt_agree(a: dict[str, float]) -> str:
    return (
        f"{a['n']} | {a['top1']:.1%} | {a['top5_set']:.1%} | {a['top5_kept']:.1%} | "
        f"{a['max_dp']:.4f}"
    )


def image_paths(args: argparse.Namespace) -> list[Path]:
    paths = sorted(Path(args.images).glob("*.jpg"))
    if not paths:
        sys.exit(f"no .jpg images in {args.images}")
    return paths


def reference_images() -> list[str]:
    ref = json.loads((SHARED / "data/reference/efficientnet_lite_top5.json").read_text())
    return [p["image"] for p in ref["models"]["efficientnet-lite0"]["predictions"]]


# ---------------------------------------------------------------------------------------------
# speed


def cmd_speed(args: argparse.Namespace) -> None:
    """Decode-only (one core), model-only (threads x batch), and the two together."""
    paths = image_paths(args)
    coco = [p.read_bytes() for p in paths]
    big = [upscaled_jpeg(b, 4) for b in coco[: args.large]]
    sizes = Image.open(io.BytesIO(big[0])).size
    n = len(coco)
    print(f"machine: {machine()}")
    print(f"images: {n} from {args.images}; best of {args.rounds} rounds\n")
    clfs = {key: Classifier(MODELS[key], threads=1) for key in args.models.split(",")}

    print("### Decoding (Pillow, one thread; includes EXIF orientation and RGB conversion)\n")
    print("| images | decode | img/s | + preprocess for | img/s |\n|---|---|---|---|---|")
    for label, blobs in (
        (f"coco128 ({n}, ~640x480)", coco),
        (f"coco128 enlarged 4x ({len(big)}, ~{sizes[0]}x{sizes[1]}, q90)", big),
    ):
        for clf in clfs.values():
            for mode, min_side in (("full", 0), (f"draft ≥{clf.min_side}px", clf.min_side)):
                dec = timed(lambda b=blobs, m=min_side: [decode(x, min_side=m) for x in b], 3)
                pre = timed(
                    lambda b=blobs, m=min_side, c=clf: [
                        c.preprocess(decode(x, min_side=m).image) for x in b
                    ],
                    args.rounds,
                )
                print(
                    f"| {label} | {mode} | {len(blobs) / dec:.0f} | {clf.name} | "
                    f"{len(blobs) / pre:.0f} |"
                )

    for key, clf0 in clfs.items():
        inputs = np.stack([clf0.preprocess(decode(b, min_side=clf0.min_side).image) for b in coco])
        s = clf0.input_size
        print(f"\n### {clf0.name} ({s}x{s}) — model only, ONNX Runtime (img/s)\n")
        print(
            "| variant | threads | batch 1 | batch 8 | batch 16 | batch 32 |\n"
            "|---|---|---|---|---|---|"
        )
        for quantized in (False, True):
            for threads in (1, 2):
                clf = Classifier(MODELS[key], threads=threads, quantized=quantized)
                cells = []
                for bs in (1, 8, 16, 32):
                    batches = [inputs[i : i + bs] for i in range(0, n - bs + 1, bs)]
                    clf.predict(batches[0])  # warm-up
                    sec = timed(lambda c=clf, bb=batches: [c.predict(b) for b in bb], args.rounds)
                    cells.append(f"{len(batches) * bs / sec:.0f}")
                variant = "int8" if quantized else "float32"
                print(f"| {variant} | {threads} | " + " | ".join(cells) + " |")

        print(f"\n### {clf0.name} — decode + preprocess + model, coco128, batch 16 (img/s)\n")
        print("| variant | schedule | img/s |\n|---|---|---|")
        for quantized in (False, True):
            variant = "int8" if quantized else "float32"
            clf = Classifier(MODELS[key], threads=2, quantized=quantized)
            sec = timed(lambda c=clf: sequential(c, coco), args.rounds)
            print(f"| {variant} | sequential, model on 2 threads | {n / sec:.0f} |")
            for threads in (1, 2):
                clf = Classifier(MODELS[key], threads=threads, quantized=quantized)
                sec = timed(lambda c=clf: overlapped(c, coco), args.rounds)
                print(
                    f"| {variant} | decode thread ‖ model on {threads} thread(s) | {n / sec:.0f} |"
                )
    print()


def sequential(clf: Classifier, blobs: list[bytes], batch: int = 16) -> None:
    for i in range(0, len(blobs), batch):
        chunk = blobs[i : i + batch]
        clf.predict(
            np.stack([clf.preprocess(decode(b, min_side=clf.min_side).image) for b in chunk])
        )


def overlapped(clf: Classifier, blobs: list[bytes], batch: int = 16) -> None:
    """Decode+preprocess in a worker thread while the main thread runs the model on the
    previous batch (Pillow and ONNX Runtime both release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    def prep(chunk: list[bytes]) -> np.ndarray:
        return np.stack([clf.preprocess(decode(b, min_side=clf.min_side).image) for b in chunk])

    chunks = [blobs[i : i + batch] for i in range(0, len(blobs), batch)]
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(prep, chunks[0])
        for nxt in [*chunks[1:], None]:
            x = pending.result()
            if nxt is not None:
                pending = pool.submit(prep, nxt)
            clf.predict(x)


# ---------------------------------------------------------------------------------------------
# draft mode accuracy


def upscaled_jpeg(data: bytes, factor: int) -> bytes:
    """A stand-in for a camera-sized photo: the image enlarged (Lanczos) and re-encoded."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    big = img.resize((img.width * factor, img.height * factor), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=90)
    return out.getvalue()


def cmd_draft(args: argparse.Namespace) -> None:
    """Predictions from a draft-mode decode (DCT scaling to shorter side ≥ k x the resize target)
    against those from the full decode, for several margins k. coco128 photos are small (most
    are 640 px wide, so draft rarely applies); enlarged copies stand in for camera photos."""
    paths = image_paths(args)
    ref_names = set(reference_images())
    margins = [float(k) for k in args.margins.split(",")]
    print(f"machine: {machine()}\n")
    print(
        "| model | images | k | draft used on | n | top-1 same | top-5 set same | "
        "top-5 kept | max Δp | decode img/s |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    for key in args.models.split(","):
        clf = Classifier(MODELS[key], threads=available_cores())
        for label, subset, factor in (
            ("24 reference", [p for p in paths if p.name in ref_names], 1),
            ("coco128", paths, 1),
            ("coco128 enlarged 2x", paths, 2),
            ("coco128 enlarged 4x", paths, 4),
        ):
            blobs = [p.read_bytes() for p in subset]
            if factor > 1:
                blobs = [upscaled_jpeg(b, factor) for b in blobs]
            full = [decode(b) for b in blobs]
            p_full = predict_all(clf, [clf.preprocess(d.image) for d in full])
            sec = timed(lambda bb=blobs: [decode(b) for b in bb], 1)
            print(
                f"| {clf.name} | {label} | full decode | – | {len(blobs)} | | | | | "
                f"{len(blobs) / sec:.0f} |"
            )
            for k in margins:
                min_side = round(clf.resize_to * k)
                draft = [decode(b, min_side=min_side) for b in blobs]
                shrunk = [
                    i
                    for i, (d, f) in enumerate(zip(draft, full, strict=True))
                    if d.image.size != f.image.size
                ]
                p_draft = predict_all(clf, [clf.preprocess(d.image) for d in draft])
                sec = timed(lambda bb=blobs, m=min_side: [decode(b, min_side=m) for b in bb], 1)
                a = agreement(p_full, p_draft)
                print(
                    f"| {clf.name} | {label} | {k:g} (≥{min_side}px) | {len(shrunk)} | "
                    f"{fmt_agree(a)} | {len(blobs) / sec:.0f} |"
                )


# ---------------------------------------------------------------------------------------------
# int8


def cmd_int8(args: argparse.Namespace) -> None:
    from pixdex.models.quantize import quantized_model_path

    paths = image_paths(args)
    ref_names = reference_images()
    print(f"machine: {machine()}\n")
    for key in args.models.split(","):
        fp = Classifier(MODELS[key], threads=available_cores())
        t0 = time.perf_counter()
        quantized_model_path(fp.name, rebuild=args.rebuild)
        print(f"{fp.name}: int8 model ready in {time.perf_counter() - t0:.1f}s")
        q = Classifier(MODELS[key], threads=available_cores(), quantized=True)
        ref = json.loads((SHARED / "data/reference/efficientnet_lite_top5.json").read_text())
        preds = ref["models"][fp.name]["predictions"]
        by_name = {p.name: p for p in paths}
        xs = [fp.preprocess(decode(by_name[n].read_bytes()).image) for n in ref_names]
        pq = predict_all(q, xs)
        kept = sum(
            len({c["class_index"] for c in p["top5"]} & set(np.argsort(-row)[:5]))
            for p, row in zip(preds, pq, strict=True)
        )
        print(f"\nreference top-5 classes kept by int8: {kept}/{5 * len(preds)}")
        xs_all = [fp.preprocess(decode(p.read_bytes()).image) for p in paths]
        a = agreement(predict_all(fp, xs_all), predict_all(q, xs_all))
        print(
            "\n| model | n | top-1 same | top-5 set same | top-5 kept | max Δp |\n"
            "|---|---|---|---|---|---|"
        )
        print(f"| {fp.name} int8 vs float32, coco128 | {fmt_agree(a)} |")
        inputs = np.stack(xs_all)
        print("\n| variant | threads | batch 1 img/s | batch 16 img/s |\n|---|---|---|---|")
        for threads in (1, 2):
            for label, quant in (("float32", False), ("int8", True)):
                clf = Classifier(MODELS[key], threads=threads, quantized=quant)
                cells = []
                for bs in (1, 16):
                    batches = [inputs[i : i + bs] for i in range(0, len(inputs) - bs + 1, bs)]
                    clf.predict(batches[0])
                    sec = timed(lambda c=clf, bb=batches: [c.predict(b) for b in bb], args.rounds)
                    cells.append(f"{len(batches) * bs / sec:.0f}")
                print(f"| {label} | {threads} | " + " | ".join(cells) + " |")
        print()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["speed", "draft", "int8"])
    parser.add_argument("--images", default=str(SHARED / "data/coco128/images"))
    parser.add_argument("--models", default="lite0,lite2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--margins", default="1,1.5,2", help="draft: min side / resize target")
    parser.add_argument("--rebuild", action="store_true", help="int8: quantise again")
    parser.add_argument("--large", type=int, default=32, help="speed: enlarged photos to decode")
    args = parser.parse_args(argv)
    {"speed": cmd_speed, "draft": cmd_draft, "int8": cmd_int8}[args.command](args)


if __name__ == "__main__":
    main()
