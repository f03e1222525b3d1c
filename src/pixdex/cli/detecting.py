"""``pixdex detect-labels``, ``detect-text``, ``detect-faces``: Rekognition's answers for files.

One image: its JSON, as the AWS CLI prints it. Several: one JSON object per line, with an added
``"Image"`` field. A file that cannot be read is one line on stderr; the others go on (exit 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pixdex.cli import app
from pixdex.cli.common import (
    EXIT_PARTIAL,
    DetectorOpt,
    ModelOpt,
    ObjectsOpt,
    err,
    print_one_or_many,
    settings,
)
from pixdex.errors import ImageError


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


@app.command("detect-labels")
def detect_labels(
    images: Annotated[list[Path], typer.Argument(help="Image file(s).")],
    max_labels: Annotated[int | None, typer.Option(help="At most this many labels.")] = None,
    min_confidence: Annotated[
        float | None, typer.Option(help="Default 55, as Rekognition.")
    ] = None,
    model: ModelOpt = None,
    objects: ObjectsOpt = None,
    detector: DetectorOpt = None,
) -> None:
    """Print labels as `aws rekognition detect-labels` does; nothing is indexed.

    One image: its JSON. Several: one JSON object per line, with an added "Image" field."""
    from pixdex.analyzers.detect import LabelDetector

    config = settings(
        model=model,
        objects=objects,
        detector=detector,
        min_confidence=min_confidence,
        max_labels=max_labels,
    )
    failed = 0
    for path, response in LabelDetector(config).detect_files(images):
        if isinstance(response, OSError | ImageError):
            failed += 1
            err.print(f"[red]error:[/red] {path}: {_reason(response)}")
            continue
        print_one_or_many(images, path, response)
    if failed:
        raise typer.Exit(EXIT_PARTIAL)


@app.command("detect-text")
def detect_text(
    images: Annotated[list[Path], typer.Argument(help="Image file(s).")],
    min_confidence: Annotated[
        float | None, typer.Option(help="Drop words below this confidence (0-100).")
    ] = None,
) -> None:
    """Print text as `aws rekognition detect-text` does: LINEs, then WORDs; nothing is indexed.

    One image: its JSON. Several: one JSON object per line, with an added "Image" field."""
    from pixdex.analyzers.text import TextDetector, WordFilter

    detector = TextDetector(settings())
    filters = WordFilter(min_confidence=min_confidence) if min_confidence is not None else None
    failed = 0
    for path in images:
        try:
            response = detector.detect_file(path, filters)
        except (OSError, ImageError) as exc:
            failed += 1
            err.print(f"[red]error:[/red] {path}: {_reason(exc)}")
            continue
        print_one_or_many(images, path, response)
    if failed:
        raise typer.Exit(EXIT_PARTIAL)


@app.command("detect-faces")
def detect_faces(images: Annotated[list[Path], typer.Argument(help="Image file(s).")]) -> None:
    """Print faces as `aws rekognition detect-faces` does (box, landmarks, pose, quality);
    nothing is indexed or kept.

    One image: its JSON. Several: one JSON object per line, with an added "Image" field."""
    from pixdex.analyzers.faces import FaceDetectorService

    detector = FaceDetectorService(settings())
    failed = 0
    for path in images:
        try:
            response = detector.detect_file(path)
        except (OSError, ImageError) as exc:
            failed += 1
            err.print(f"[red]error:[/red] {path}: {_reason(exc)}")
            continue
        print_one_or_many(images, path, response)
    if failed:
        raise typer.Exit(EXIT_PARTIAL)
