"""A local folder as a source: ``bucket`` is the folder, ``key`` the path relative to it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pixdex.errors import SourceError
from pixdex.records import utc_timestamp
from pixdex.sources.base import ObjectRef, has_image_suffix


class LocalSource:
    def __init__(self, folder: str | os.PathLike[str]) -> None:
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise SourceError(f"not a folder: {root}")
        self.root = root.resolve()
        self.bucket = str(self.root)
        self.prefix = ""

    def ref_for(self, path: Path) -> ObjectRef:
        st = path.stat()
        key = path.relative_to(self.root).as_posix()
        return ObjectRef(
            bucket=self.bucket,
            key=key,
            uri=path.as_uri(),
            size=st.st_size,
            fingerprint=f"{st.st_size}:{st.st_mtime_ns}",
            last_modified=utc_timestamp(datetime.fromtimestamp(st.st_mtime, UTC)),
        )

    def list(self) -> Iterator[ObjectRef]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or not has_image_suffix(name):
                    continue
                path = Path(dirpath) / name
                try:
                    yield self.ref_for(path)
                except OSError:
                    continue  # vanished between walk and stat: nothing to index

    def fetch(self, ref: ObjectRef) -> bytes:
        try:
            return (self.root / ref.key).read_bytes()
        except OSError as exc:
            raise SourceError(f"cannot read {ref.key}: {exc.strerror or exc}") from exc
