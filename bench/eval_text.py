#!/usr/bin/env python3
"""How well and how fast the text analyzer reads: the numbers in docs/text.md.

    .venv/bin/python bench/eval_text.py [--quick] [--index-cost] [--sweep]

Ground truth that can be trusted, two kinds:

1. **Rendered words.** Known words drawn onto the coco128 photos that have no text of their own
   (the ``text_free`` list of ``tests/data/coco128_text.json``, checked by eye): per photo and
   font size, three words from ``WORDS`` in one of ``FONTS`` (Debian's DejaVu and Liberation
   families, installed with apt-get when missing), a random colour that contrasts with what is
   under it, on a plain sign-like plate, straight on the photo, or outlined, turned by up to
   ±30°, at a random free spot. Seeded: every run renders the same set. A word counts as read when
   a WORD of the same text (case-insensitive, surrounding punctuation ignored) is reported for
   that photo; precision counts every WORD reported, so anything read off the photo itself is a
   false positive too. Font size is the em size in pixels (a capital letter is ~0.73 of it).
2. **Real text.** The coco128 photos with legible text, transcribed by hand (``text`` in the
   same file): recall of those distinct words, and precision of the WORDs read on them. Photos
   whose text is too small or stylised to transcribe (``unclear``) are left out of everything.

False text: the share of text-free photos on which any WORD is reported. Speed: milliseconds per
photo for the analyzer alone (decoded as the pipeline decodes), on photos with and without text.
``--index-cost`` also times ``pixdex index`` on coco128 with the default analyzers, with and
without the text analyzer, alternating in one run (the machine is shared: compare the ratio).
``--sweep`` prints recall/precision/false text for several confidence floors and detector sizes
(how the defaults were chosen).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PIXDEX_SHARED", REPO.parent / "shared"))
COCO = SHARED / "data" / "coco128" / "images"
FIXTURE = REPO / "tests" / "data" / "coco128_text.json"

FONT_DIR = Path("/usr/share/fonts/truetype")
#: (Debian package, file under /usr/share/fonts/truetype)
FONTS = [
    ("fonts-dejavu-core", "dejavu/DejaVuSans.ttf"),
    ("fonts-dejavu-core", "dejavu/DejaVuSans-Bold.ttf"),
    ("fonts-dejavu-core", "dejavu/DejaVuSerif.ttf"),
    ("fonts-dejavu-core", "dejavu/DejaVuSansMono-Bold.ttf"),
    ("fonts-liberation", "liberation/LiberationSans-Bold.ttf"),
    ("fonts-liberation", "liberation/LiberationSerif-Italic.ttf"),
    ("fonts-liberation", "liberation/LiberationSansNarrow-Regular.ttf"),
    ("fonts-liberation", "liberation/LiberationMono-Regular.ttf"),
]
SIZES = [12, 16, 20, 24, 32, 48, 64]
ANGLES = [0, 0, 0, 5, -5, 10, -10, 20, -20, 30, -30]
STYLES = ["plate", "plain", "outline"]
_WORDS = """
STOP EXIT OPEN CLOSED PUSH PULL ENTRANCE PARKING HOTEL CAFE BAKERY PHARMACY MARKET POLICE
TAXI STATION PLATFORM GATE TICKETS SALE OFFICE BANK MUSEUM LIBRARY SCHOOL HOSPITAL GARAGE
coffee bread fresh daily menu pizza pasta burger salad dessert breakfast lunch dinner
Street Avenue Road Lane Bridge Square Park Garden Harbour Beach River North South East West
Welcome Thank Please Caution Danger Warning Notice Private Keep Right Left Only Slow Speed
Monday Friday Sunday January March October December Summer Winter Spring Autumn
London Paris Berlin Madrid Rome Boston Denver Seattle Chicago Tokyo Sydney Dublin Oslo
river mountain window garden kitchen bottle camera bicycle guitar pencil orange yellow purple
market harbor village castle tower island forest desert valley meadow canyon glacier
Marathon Festival Concert Theatre Cinema Gallery Stadium Arena Club Lounge Studio Records
2019 2024 1987 42 7 365 100 15 80 911 24h 10km 3:45 19.99 #12 No.5 A4 B12 CO2 MP3
Nikon Canon Kodak Leica Fuji Sony Apple Delta Alpha Omega Zenith Vortex Nimbus Apex Atlas
hello world quick brown jumps lazy happy birthday wedding family holiday vacation weekend
Organic Vegan Gluten Espresso Latte Cappuccino Croissant Baguette Bagel Donut Muffin Waffle
Fragile Handle Care Recycle Battery Charge Power Reset Start Pause Record Volume Channel
Emergency Fire Water Electric Gas Station Service Repair Rental Laundry Salon Barber Tattoo
"""
WORDS = _WORDS.split()


def ensure_fonts() -> list[Path]:
    """The FONTS files, installing their Debian packages with apt-get when missing (as root)."""
    missing = sorted({pkg for pkg, rel in FONTS if not (FONT_DIR / rel).is_file()})
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {' '.join(missing)} from Debian", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False)
    paths = [FONT_DIR / rel for _, rel in FONTS]
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        sys.exit(f"fonts missing (apt-get install {' '.join(missing)}): {', '.join(absent)}")
    return paths


# --- rendering ----------------------------------------------------------------------------------


@dataclass
class Render:
    photo: str
    size: int
    image: Image.Image
    words: list[str]


def luminance(rgb: tuple[float, ...]) -> float:
    r, g, b = (c / 255 for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrasting(rng: random.Random, against: float) -> tuple[int, int, int]:
    """A random colour whose luminance differs from ``against`` by at least 0.45."""
    while True:
        colour = tuple(rng.randrange(256) for _ in range(3))
        if abs(luminance(colour) - against) >= 0.45:
            return colour  # type: ignore[return-value]


def word_sprite(
    rng: random.Random, word: str, font: ImageFont.FreeTypeFont, style: str, under: float
) -> Image.Image:
    """The word as an RGBA image (plate / plain / outlined), before rotation."""
    size = font.size
    left, top, right, bottom = font.getbbox(word)
    pad = round(size * 0.35) if style == "plate" else round(size * 0.15) + 2
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    sprite = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(sprite)
    if style == "plate":
        plate = tuple(rng.randrange(256) for _ in range(3))
        draw.rectangle((0, 0, w, h), fill=(*plate, 255))
        ink = contrasting(rng, luminance(plate))
        draw.text((pad - left, pad - top), word, font=font, fill=(*ink, 255))
    elif style == "plain":
        ink = contrasting(rng, under)
        draw.text((pad - left, pad - top), word, font=font, fill=(*ink, 255))
    else:
        ink = contrasting(rng, under)
        edge = (0, 0, 0) if luminance(ink) > 0.5 else (255, 255, 255)
        draw.text(
            (pad - left, pad - top),
            word,
            font=font,
            fill=(*ink, 255),
            stroke_width=max(1, size // 16),
            stroke_fill=(*edge, 255),
        )
    return sprite


def render(photo: Path, size: int, fonts: list[Path], seed: int, count: int = 3) -> Render | None:
    """``count`` words at font size ``size`` on ``photo`` at free spots, or None if they do not
    fit (a big size on a small photo)."""
    rng = random.Random(f"{photo.name}:{size}:{seed}")
    image = Image.open(photo).convert("RGB")
    words: list[str] = []
    taken: list[tuple[int, int, int, int]] = []
    for _ in range(count):
        for _attempt in range(40):
            word = rng.choice(WORDS)
            font = ImageFont.truetype(str(rng.choice(fonts)), size)
            angle = rng.choice(ANGLES)
            style = rng.choice(STYLES)
            probe = word_sprite(rng, word, font, style, 0.5).rotate(angle, expand=True)
            if probe.width >= image.width - 8 or probe.height >= image.height - 8:
                continue
            x = rng.randrange(4, image.width - probe.width - 4)
            y = rng.randrange(4, image.height - probe.height - 4)
            box = (x, y, x + probe.width, y + probe.height)
            if any(_overlap(box, other) for other in taken):
                continue
            under = luminance(np.asarray(image.crop(box)).reshape(-1, 3).mean(0))
            sprite = word_sprite(rng, word, font, style, under)
            sprite = sprite.rotate(angle, expand=True, resample=Image.Resampling.BICUBIC)
            image.paste(sprite, (x, y), sprite)
            taken.append((x - 6, y - 6, x + sprite.width + 6, y + sprite.height + 6))
            words.append(word)
            break
    if len(words) < count:
        return None
    return Render(photo.name, size, image, words)


def _overlap(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


# --- scoring ------------------------------------------------------------------------------------


def norm(word: str) -> str:
    return word.strip(".,:;!?'\"()[]{}*").lower()


def match(truth: list[str], read: list[str]) -> tuple[int, int, int]:
    """(words read correctly, words there, words reported): multiset intersection."""
    t, r = Counter(map(norm, truth)), Counter(n for n in map(norm, read) if n)
    return sum((t & r).values()), sum(t.values()), sum(r.values())


@dataclass
class Raw:
    """An analyzer's unfiltered reads of one photo, kept so floors can be swept offline."""

    name: str
    lines: list
    width: int
    height: int
    ms: float


def read_all(analyzer, images: list[tuple[str, Image.Image]]) -> list[Raw]:
    """Every photo through the analyzer's engine, one at a time (timing per photo)."""
    from pixdex.imaging import DecodedImage

    out = []
    for name, image in images:
        decoded = DecodedImage(image, image.width, image.height, "JPEG")
        t0 = time.perf_counter()
        regions = analyzer.engine.detect(decoded.image)
        lines = analyzer.engine.recognize(decoded.image, regions) if regions else []
        analyzer.detections(lines, image.width, image.height)
        out.append(Raw(name, lines, image.width, image.height, (time.perf_counter() - t0) * 1e3))
    return out


def words_of(analyzer, raw: Raw, floor: float) -> list[str]:
    analyzer.min_confidence = floor
    found = analyzer.detections(raw.lines, raw.width, raw.height)
    return [d.DetectedText for d in found if d.Type == "WORD"]


def score(analyzer, raws: list[Raw], truths: dict[str, list[str]], floor: float):
    hit = there = reported = 0
    for raw in raws:
        h, t, r = match(truths[raw.name], words_of(analyzer, raw, floor))
        hit, there, reported = hit + h, there + t, reported + r
    return hit / max(there, 1), hit / max(reported, 1) if reported else 1.0, there, reported


def false_text(analyzer, raws: list[Raw], floor: float) -> list[str]:
    return [r.name for r in raws if words_of(analyzer, r, floor)]


def other_models(args: argparse.Namespace):
    """Models given on the command line, the default ones standing in for what is not given."""
    from pixdex.models.ocr import OcrModels

    base = OcrModels.default()
    half = (0.5, 0.5, 0.5)
    norm = {"det_mean": half, "det_std": half} if args.det_norm == "half" else {}
    return OcrModels(
        args.det or base.det,
        args.rec or base.rec,
        args.charset if args.rec else base.charset,
        name=f"{(args.det or base.det).stem}+{(args.rec or base.rec).stem}",
        **norm,
    )


# --- index cost ---------------------------------------------------------------------------------


def index_cost(rounds: int) -> dict[bool, list[tuple[float, float]]]:
    """(wall, CPU) seconds of ``pixdex index`` of coco128 (fresh SQLite each time), without and
    with the text analyzer, alternating so both see the same machine load. CPU time (this
    process, all its threads) is the steadier figure on a shared machine: other jobs stretch the
    wall clock, not the work done."""
    from pixdex.config import load_settings
    from pixdex.indexes.sqlite import SqliteIndex
    from pixdex.pipeline import build_pipeline
    from pixdex.sources.local import LocalSource

    times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for _ in range(rounds):
        for text in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                settings = load_settings(index=str(Path(tmp) / "index.db"), text=text)
                index = SqliteIndex(settings.index)
                pipeline = build_pipeline(settings, index)
                t0, c0 = time.perf_counter(), time.process_time()
                summary = pipeline.run(LocalSource(COCO))
                times[text].append((time.perf_counter() - t0, time.process_time() - c0))
                assert summary.indexed == 128, summary
                index.close()
    return times


class OtherReader:
    """The OCR engine of another pixdex checkout (``src/pixdex/models/ocr.py`` loaded from
    there, default threads), run as its text analyzer ran it: every photo detected, then the
    whole batch's regions recognized. For before/after figures in one run."""

    min_side = 480

    def __init__(self, checkout: Path) -> None:
        import importlib.util

        path = checkout / "src" / "pixdex" / "models" / "ocr.py"
        spec = importlib.util.spec_from_file_location("pixdex_other_ocr", path)
        assert spec is not None and spec.loader is not None, path
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        self.engine = module.OcrEngine()

    def analyze(self, images: list) -> None:
        work = [(img.image, self.engine.detect(img.image)) for img in images]
        if any(regions for _, regions in work):
            self.engine.recognize_many(work)


def analyzer_cost(rounds: int, against: Path | None = None) -> None:
    """CPU ms per photo of each default analyzer and of text analyzer variants, batch by batch
    (the pipeline's 16) on coco128 decoded as the pipeline decodes, in one thread, the order
    reversed every other batch so all see the same machine load. Steadier than whole ``pixdex
    index`` runs on a shared machine: it times the analyzers alone, not indexing or fetching.
    ``against``: another checkout whose text reader is timed beside (``OtherReader``)."""
    from pixdex.analyzers import default_analyzers
    from pixdex.analyzers.text import TextAnalyzer
    from pixdex.config import load_settings
    from pixdex.imaging import decode

    rest = default_analyzers(load_settings(text=False))
    variants = {
        "text (as the pipeline runs it: 1 thread)": TextAnalyzer(threads=1),
        "text, 2 threads per session": TextAnalyzer(threads=0),
        "text, 1 thread, gate at 320 px": TextAnalyzer(threads=1, gate_side=320),
    }
    if against is not None:
        variants[f"text reader of {against}"] = OtherReader(against)  # type: ignore[assignment]
    timed = [(a.name, a) for a in rest] + list(variants.items())
    min_side = max(a.min_side for _, a in timed)
    data = [p.read_bytes() for p in sorted(COCO.glob("*.jpg"))]
    cpu = {name: 0.0 for name, _ in timed} | {"decode": 0.0}
    for r in range(rounds):
        for n, start in enumerate(range(0, len(data), 16)):
            c0 = time.process_time()
            images = [decode(d, min_side=min_side) for d in data[start : start + 16]]
            cpu["decode"] += time.process_time() - c0
            for name, analyzer in timed if (n + r) % 2 == 0 else timed[::-1]:
                c0 = time.process_time()
                analyzer.analyze(images)
                cpu[name] += time.process_time() - c0
    photos = rounds * len(data)
    base = cpu["decode"] + sum(cpu[a.name] for a in rest)
    print(f"\nCPU ms per photo, coco128, {rounds} rounds, analyzers alone (one thread calling):")
    for name, seconds in cpu.items():
        print(f"- {name}: {seconds / photos * 1e3:.1f}")
    print(f"- decode + default analyzers without text: {base / photos * 1e3:.1f}")
    for name in variants:
        print(f"- {name} / that: **{cpu[name] / base:.2f}**")


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a third of the renders")
    parser.add_argument("--only-index-cost", action="store_true", help="skip the accuracy part")
    parser.add_argument("--index-cost", action="store_true", help="time pixdex index with/without")
    parser.add_argument("--rounds", type=int, default=3, help="index-cost rounds")
    parser.add_argument(
        "--analyzer-cost", action="store_true", help="CPU of each analyzer alone, per photo"
    )
    parser.add_argument("--against", type=Path, help="with --analyzer-cost: another checkout")
    parser.add_argument("--sweep", action="store_true", help="floors and detector sizes")
    parser.add_argument("--side", type=int, default=None, help="detector's longer side")
    parser.add_argument("--gate", type=int, default=None, help="the gate's longer side (0: none)")
    parser.add_argument("--det", type=Path, help="another detector .onnx (comparisons)")
    parser.add_argument("--rec", type=Path, help="another recognizer .onnx")
    parser.add_argument("--charset", type=Path, help="its characters (default: its metadata)")
    parser.add_argument("--det-norm", choices=["imagenet", "half"], default="imagenet")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--save", type=Path, help="write the renders here (to look at them)")
    args = parser.parse_args()

    from pixdex.analyzers.text import MIN_CONFIDENCE, TextAnalyzer

    fonts = ensure_fonts()
    fixture = json.loads(FIXTURE.read_text())
    free = fixture["text_free"]
    print(
        f"# {time.strftime('%Y-%m-%d')} · {platform.node()} · {os.cpu_count()} cores · "
        f"Python {platform.python_version()} · load {os.getloadavg()[0]:.1f}"
    )
    renders: list[Render] = []
    backgrounds = free[::3] if args.quick else free
    for size in SIZES:
        for name in backgrounds:
            r = render(COCO / name, size, fonts, args.seed)
            if r is not None:
                renders.append(r)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for r in renders:
            r.image.save(args.save / f"{r.size:02d}-{r.photo}", quality=92)
    print(f"rendered: {len(renders)} photos × 3 words ({len(backgrounds)} backgrounds × sizes)")

    sides = [480, 640] if args.sweep else [args.side]
    if args.only_index_cost:
        sides = []
    for side in sides:
        kwargs: dict = {}
        if args.det or args.rec:
            kwargs["models"] = other_models(args)
        if side:
            kwargs["det_side"] = side
        if args.gate is not None:
            kwargs["gate_side"] = args.gate
        analyzer = TextAnalyzer(**kwargs)
        default_floor = analyzer.min_confidence
        print(f"\n## {analyzer.engine.version}")
        keyed = [(f"{r.size}:{r.photo}", r.image) for r in renders]
        truths = {f"{r.size}:{r.photo}": r.words for r in renders}
        rendered_raw = read_all(analyzer, keyed)
        real = [(n, Image.open(COCO / n).convert("RGB")) for n in fixture["text"]]
        real_raw = read_all(analyzer, real)
        free_raw = read_all(analyzer, [(n, Image.open(COCO / n).convert("RGB")) for n in free])
        floors = [50, 60, 70, 80, 85, 90, 95] if args.sweep else [default_floor]
        for floor in floors:
            print(
                f"\nconfidence floor {floor:g}" + (" (default)" if floor == MIN_CONFIDENCE else "")
            )
            print("| font size px | photos | words | recall | precision |")
            print("|---|---|---|---|---|")
            by_size: dict[int, list[Raw]] = defaultdict(list)
            for raw in rendered_raw:
                by_size[int(raw.name.split(":")[0])].append(raw)
            for size in SIZES:
                rec, prec, there, _ = score(analyzer, by_size[size], truths, floor)
                print(f"| {size} | {len(by_size[size])} | {there} | {rec:.3f} | {prec:.3f} |")
            big = [r for s in SIZES if s >= 24 for r in by_size[s]]
            rec, prec, there, _ = score(analyzer, big, truths, floor)
            print(f"| **≥ 24** | {len(big)} | {there} | **{rec:.3f}** | **{prec:.3f}** |")
            rec, prec, there, reported = score(analyzer, real_raw, fixture["text"], floor)
            print(
                f"real text ({len(real_raw)} photos, {there} words): recall {rec:.3f}, "
                f"precision {prec:.3f} ({reported} words reported)"
            )
            flagged = false_text(analyzer, free_raw, floor)
            print(
                f"false text: {len(flagged)}/{len(free_raw)} text-free photos "
                f"({len(flagged) / len(free_raw):.1%})"
                + (f": {', '.join(flagged)}" if flagged else "")
            )
        with_text = [r.ms for r in real_raw]
        without = [r.ms for r in free_raw]
        print(
            f"\nms per photo (analyzer alone, one photo at a time): with text "
            f"{statistics.median(with_text):.0f} median / {statistics.mean(with_text):.0f} mean "
            f"({len(with_text)} photos); without text {statistics.median(without):.0f} median / "
            f"{statistics.mean(without):.0f} mean ({len(without)} photos)"
        )
        analyzer.min_confidence = default_floor

    if args.index_cost:
        times = index_cost(args.rounds)
        print(
            f"\npixdex index coco128 (128 photos, default analyzers, fresh SQLite), "
            f"{args.rounds} alternating rounds (without text / with text):"
        )
        for k, what in ((0, "wall"), (1, "CPU")):
            off, on = [t[k] for t in times[False]], [t[k] for t in times[True]]
            ratio = statistics.median(on) / statistics.median(off)
            print(
                f"- {what} s: {', '.join(f'{t:.1f}' for t in off)} / "
                f"{', '.join(f'{t:.1f}' for t in on)}; ratio of medians **{ratio:.2f}×**"
            )
        if args.rounds > 1:
            pairs = [b[1] / a[1] for a, b in zip(times[False], times[True], strict=True)]
            print(f"- CPU ratio round by round: {', '.join(f'{x:.2f}' for x in pairs)}")
    if args.analyzer_cost:
        analyzer_cost(args.rounds, args.against)


if __name__ == "__main__":
    main()
