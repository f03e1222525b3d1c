"""The benchmark corpus: N photos derived deterministically from coco128, cached.

Photo ``i`` is made from coco128 photo ``i mod 128`` with a generator seeded by ``i`` alone: a
random crop (50–100 % of each side), a rescale to a long side of 320–1024 px (web-sized Flickr
photos, which the COCO photos themselves are) and a JPEG re-encode at quality 60–95 with 4:2:0
or 4:4:4 chroma. So photo ``i`` is the same whatever N is asked for: a run with ``--n 1000`` uses
the first 1,000 photos of the 16,000. The files live under the dev cache
(``$PIXDEX_DEV_CACHE/bench-corpus/v1``) and are made once (in parallel, on every core); a folder
per N holds hard links to the first N, so ``pixdex index FOLDER`` sees exactly N photos.
"""

from __future__ import annotations

import io
import os
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared"))
CACHE = Path(os.environ.get("PIXDEX_DEV_CACHE", Path.home() / ".cache" / "pixdex-dev"))
VERSION = "v1"  # change when the recipe below changes: a new folder, nothing stale reused
LONG_SIDE = (320, 1024)
QUALITY = (60, 95)


def sources() -> list[Path]:
    photos = sorted((SHARED / "data" / "coco128" / "images").glob("*.jpg"))
    if len(photos) != 128:
        raise SystemExit(f"expected 128 coco128 photos under {SHARED}/data/coco128/images")
    return photos


def root() -> Path:
    return CACHE / "bench-corpus" / VERSION


def name(i: int) -> str:
    return f"p{i:05d}.jpg"


def make(i: int, source: Path) -> bytes:
    """Photo ``i`` of the corpus, from its coco128 source photo."""
    from PIL import Image

    rng = random.Random(f"pixdex-corpus-{VERSION}-{i}")
    with Image.open(source) as im:
        im = im.convert("RGB")
        w, h = im.size
        cw, ch = round(w * rng.uniform(0.5, 1.0)), round(h * rng.uniform(0.5, 1.0))
        left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
        im = im.crop((left, top, left + cw, top + ch))
        long_side = rng.randint(*LONG_SIDE)
        scale = long_side / max(cw, ch)
        size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
        im = im.resize(size, Image.Resampling.LANCZOS)
        out = io.BytesIO()
        im.save(
            out,
            "JPEG",
            quality=rng.randint(*QUALITY),
            subsampling=rng.choice((0, 2)),  # 4:4:4 or 4:2:0
            optimize=False,
        )
    return out.getvalue()


def _make_range(start: int, stop: int) -> int:
    photos = sources()
    folder = root() / "all"
    made = 0
    for i in range(start, stop):
        path = folder / name(i)
        if path.exists():
            continue
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(make(i, photos[i % len(photos)]))
        tmp.rename(path)  # a killed run leaves no half-written photo behind
        made += 1
    return made


def ensure(n: int, *, log=print) -> Path:
    """A folder holding exactly photos 0…n-1 (made on first use); returns its path."""
    folder = root() / "all"
    folder.mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(n) if not (folder / name(i)).exists()]
    if missing:
        log(f"corpus: making {len(missing)} of {n} photos into {folder} …")
        chunks = [(s, min(s + 250, n)) for s in range(0, n, 250)]
        with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            list(pool.map(_make_range, *zip(*chunks, strict=True)))
    view = root() / f"n{n}"
    if not (view / ".complete").exists():
        view.mkdir(exist_ok=True)
        for i in range(n):
            link = view / name(i)
            if not link.exists():
                os.link(folder / name(i), link)
        (view / ".complete").touch()
    return view


def photos(n: int) -> list[Path]:
    folder = ensure(n)
    return [folder / name(i) for i in range(n)]


def describe(paths: list[Path]) -> dict[str, float]:
    """Size figures for the doc: count, MB in all, mean KB, mean megapixels (from headers)."""
    from PIL import Image

    total = sum(p.stat().st_size for p in paths)
    pixels = 0
    for p in paths:
        with Image.open(p) as im:
            pixels += im.width * im.height
    return {
        "photos": len(paths),
        "mb": total / 1e6,
        "mean_kb": total / len(paths) / 1e3,
        "mean_mp": pixels / len(paths) / 1e6,
    }
