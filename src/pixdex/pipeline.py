"""list → fetch → decode → analyze → write: the one place that knows about batching, concurrency,
skipping unchanged objects and failures.

Fetching and decoding run in a bounded thread pool (Pillow's decoder, boto3's downloads and file
reads release the GIL), so they overlap with batched inference in the calling thread (ONNX Runtime
releases the GIL too). Each batch is written in one index call; with SQLite that is one
transaction, so a run killed half-way keeps every batch written before the kill and nothing
partial.

Remote analyzers (``analyzers.base.RemoteAnalyzer``: remote services such as Rekognition) run in
the same pool, one object per call, after the fetch. What is read depends on who needs it: pixels
are decoded only when a pixel analyzer runs, and an object is not fetched at all when every
analyzer reads it by reference (Rekognition given an ``S3Object``) — the no-download path.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pixdex.analyzers import default_analyzers  # noqa: F401 - tests build pipelines from it
from pixdex.analyzers.base import (
    Analyzer,
    Photo,
    RemoteAnalyzer,
    even_batch_size,
    is_remote,
    merge_partials,
    overridden_fields,
    owned_fields,
)
from pixdex.errors import ImageError, SourceError
from pixdex.imaging import DEFAULT_MAX_PIXELS, DecodedImage, decode
from pixdex.indexes.base import Index, Indexed
from pixdex.records import Failure, Record, analysis_version
from pixdex.sources.base import ObjectRef, Source

if TYPE_CHECKING:
    from pixdex.config import Settings

log = logging.getLogger(__name__)

#: After this many consecutive batches the index refused, the rest of the run is reported as not
#: indexed instead of hammering a server that is down (a re-run picks it all up).
MAX_CONSECUTIVE_WRITE_FAILURES = 3


@dataclass
class Summary:
    indexed: int = 0
    unchanged: int = 0
    failed: int = 0  # bad objects: unreadable, not an image, analyzer error (recorded as failures)
    deleted: int = 0
    not_indexed: int = 0  # good objects the index did not take (server down…): re-run to finish
    gone: int = 0  # indexed objects no longer in the source (removed only with prune)
    touched: int = 0  # read and hashed, content unchanged: not analyzed again (in ``unchanged``)
    failures: list[Failure] = field(default_factory=list)
    write_errors: list[Failure] = field(default_factory=list)  # records the index refused
    #: keys among ``failures`` whose reason may pass by itself (a remote service throttling or
    #: down): event consumers redeliver them instead of treating the object as bad
    transient: set[str] = field(default_factory=set)
    #: keys among ``failures`` the index could not record (it was down): not durable, so event
    #: consumers redeliver them
    unrecorded: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.not_indexed == 0

    def add(self, other: Summary) -> None:
        for name in ("indexed", "unchanged", "failed", "deleted", "not_indexed", "gone", "touched"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures += other.failures
        self.write_errors += other.write_errors
        self.transient |= other.transient
        self.unrecorded |= other.unrecorded


@dataclass(slots=True)
class _Fetched:
    ref: ObjectRef
    sha256: str | None  # None: not read (every analyzer read it by reference)
    size: int | None
    image: DecodedImage | None  # decoded pixels, when a pixel analyzer runs
    remote: dict[str, Any] = field(default_factory=dict)  # the remote analyzers' merged partial
    unchanged: bool = False  # content identical to the indexed one: only refresh the fingerprint


Progress = Callable[[int], None]


class Pipeline:
    def __init__(
        self,
        analyzers: Sequence[Analyzer | RemoteAnalyzer],
        index: Index,
        *,
        batch_size: int = 16,
        workers: int = 2,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        analysis_workers: int = 1,
    ) -> None:
        #: pixel analyzers (batched, in the calling thread) and remote analyzers (in the pool)
        self.analyzers: list[Analyzer] = [a for a in analyzers if not is_remote(a)]  # type: ignore[misc]
        self.remote_analyzers: list[RemoteAnalyzer] = [a for a in analyzers if is_remote(a)]  # type: ignore[misc]
        self.index = index
        self.batch_size = max(1, batch_size)
        # Remote analyzers wait on the network, not the CPU: their concurrency sizes the pool.
        self.workers = max(1, workers, *(a.concurrency for a in self.remote_analyzers))
        self.max_pixels = max_pixels
        #: batches analyzed at once, each in its own thread (the analyzers are thread-safe; ONNX
        #: Runtime and Pillow release the GIL): with one-thread models, every core busy
        self.analysis_workers = max(1, analysis_workers)
        self.versions = {a.name: a.version for a in analyzers}
        self.analysis_version = analysis_version(self.versions)
        self.min_side = max((a.min_side for a in self.analyzers), default=0)

    def reads(self, source: Source) -> bool:
        """Whether this run must fetch the source's objects: yes unless every analyzer is an
        remote analyzer that reads them by reference (Rekognition with S3Object)."""
        return bool(self.analyzers) or not all(
            a.reads_by_reference(source) for a in self.remote_analyzers
        )

    # --- entry points ---------------------------------------------------------------------------
    def plan(
        self, source: Source, refs: Iterable[ObjectRef], *, force: bool = False
    ) -> tuple[list[ObjectRef], dict[str, Indexed], int]:
        """Split refs into those to process and the count of unchanged ones (no bytes read)."""
        known = self.index.known(source.bucket, source.prefix)
        todo: list[ObjectRef] = []
        unchanged = 0
        for ref in refs:
            seen = known.get(ref.key)
            if (
                not force
                and seen is not None
                and seen.analysis_version == self.analysis_version
                and ref.fingerprint is not None
                and seen.fingerprint == ref.fingerprint
            ):
                unchanged += 1
            else:
                todo.append(ref)
        return todo, known, unchanged

    def run(
        self,
        source: Source,
        *,
        prune: bool = False,
        force: bool = False,
        progress: Callable[[int], Progress] | None = None,
    ) -> Summary:
        """Back-fill: index everything under the source that is new or changed; with ``prune``,
        remove records whose objects are gone. ``progress(total)`` returns an advance callback."""
        listed = list(source.list())
        todo, known, unchanged = self.plan(source, listed, force=force)
        # force: re-analyze even identical content (no "touched, same hash" shortcut either)
        seen = {} if force else known
        summary = self._process(source, todo, seen, progress(len(todo)) if progress else None)
        summary.unchanged += unchanged
        present = {ref.key for ref in listed}
        gone = [key for key in known if key not in present]
        summary.gone = len(gone)
        if prune and gone:
            summary.deleted = self.remove(source.bucket, gone)
        return summary

    def process(self, source: Source, refs: Iterable[ObjectRef], *, force: bool = False) -> Summary:
        """Index exactly these objects (what an event names), with the same skip rules."""
        todo, known, unchanged = self.plan(source, refs, force=force)
        summary = self._process(source, todo, {} if force else known, None)
        summary.unchanged += unchanged
        return summary

    def analyze_object(self, source: Source, ref: ObjectRef) -> Record | Failure:
        """Fetch, decode and analyze one object now, whatever is indexed (no write)."""
        item = self._fetch_one(source, ref, None, self.reads(source))
        if isinstance(item, Failure):
            return item
        result: dict[str, Any] | Failure | str = {}
        if item.image is not None:
            result = self.analyze([item.image])[0]
        if isinstance(result, str | Failure):
            return result if isinstance(result, Failure) else self._failure(ref, result)
        return self._record(item, result)

    def remove(self, bucket: str, keys: Iterable[str]) -> int:
        return self.index.delete(bucket, list(keys))

    # --- the work -------------------------------------------------------------------------------
    def _process(
        self,
        source: Source,
        todo: list[ObjectRef],
        known: dict[str, Indexed],
        advance: Progress | None,
    ) -> Summary:
        summary = Summary()
        batch: list[_Fetched] = []
        write_failures = 0
        batch_size = even_batch_size(len(todo), self.batch_size, self.analysis_workers)
        # batches being analyzed, oldest first; written (in this thread) in that order
        inflight: deque[tuple[list[_Fetched], Future[dict[int, Any]]]] = deque()

        def write_until(left: int) -> None:
            nonlocal write_failures
            while len(inflight) > left:
                done, future = inflight.popleft()
                write_failures = self._write(done, future.result(), summary, write_failures)

        with ThreadPoolExecutor(self.analysis_workers, thread_name_prefix="pixdex-analyze") as pool:
            for item in self._fetch_all(source, todo, known):
                if advance:
                    advance(1)
                if isinstance(item, Failure):
                    summary.failed += 1
                    summary.failures.append(item)
                    if item.transient:
                        summary.transient.add(item.key)
                    self._record_failures([item], summary)
                    continue
                batch.append(item)
                if len(batch) >= batch_size:
                    inflight.append((batch, pool.submit(self._analyze_batch, batch)))
                    batch = []
                    write_until(self.analysis_workers - 1)
            if batch:
                inflight.append((batch, pool.submit(self._analyze_batch, batch)))
            write_until(0)
        return summary

    def _fetch_all(
        self, source: Source, todo: list[ObjectRef], known: dict[str, Indexed]
    ) -> Iterator[_Fetched | Failure]:
        """Fetch + hash + decode (+ remote analyzers) in a bounded pool; yields results as they
        complete."""
        window = self.workers * 4  # in flight at once: bounds memory for decoded images
        read = self.reads(source)
        refs = iter(todo)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="pixdex-fetch") as pool:
            pending: set[Future[_Fetched | Failure]] = set()
            for ref in refs:
                pending.add(pool.submit(self._fetch_one, source, ref, known.get(ref.key), read))
                if len(pending) >= window:
                    break
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                    nxt = next(refs, None)
                    if nxt is not None:
                        seen = known.get(nxt.key)
                        pending.add(pool.submit(self._fetch_one, source, nxt, seen, read))

    def _fetch_one(
        self, source: Source, ref: ObjectRef, seen: Indexed | None, read: bool = True
    ) -> _Fetched | Failure:
        try:
            data: bytes | None = None
            sha: str | None = None
            image: DecodedImage | None = None
            if read:
                data = source.fetch(ref)
                sha = hashlib.sha256(data).hexdigest()
                if (
                    seen is not None
                    and seen.content_sha256 == sha
                    and seen.analysis_version == self.analysis_version
                ):
                    # Touched but identical (copied, mtime changed): no re-analysis, just remember
                    # the new fingerprint so the next run skips it without reading.
                    return _Fetched(ref, sha, len(data), None, unchanged=True)
                if self.analyzers:
                    image = decode(data, min_side=self.min_side, max_pixels=self.max_pixels)
            remote = self._analyze_remote(Photo(source, ref, data, image))
            if isinstance(remote, Failure):
                return remote
            size = len(data) if data is not None else ref.size
            return _Fetched(ref, sha, size, image, remote)
        except (SourceError, ImageError) as exc:
            return self._failure(ref, str(exc))
        except Exception as exc:  # noqa: BLE001 - one bad object must never stop the run
            log.exception("unexpected error reading %s", ref.uri)
            return self._failure(ref, f"{type(exc).__name__}: {exc}")

    def _analyze_remote(self, photo: Photo) -> dict[str, Any] | Failure:
        """The remote analyzers' merged partial for one object, or the first one's failure."""
        partials: list[dict[str, Any]] = []
        for analyzer in self.remote_analyzers:
            result = analyzer.analyze_object(photo)
            if isinstance(result, Failure):
                return result
            partials.append(result)
        return merge_partials(partials) if partials else {}

    def _failure(self, ref: ObjectRef, reason: str) -> Failure:
        return Failure.of(ref, reason)

    def analyze(self, images: Sequence[DecodedImage]) -> list[dict[str, Any] | Failure | str]:
        """Merged partial records per image; an image an analyzer chokes on gets its reason
        (str) instead, found by re-running the failed batch one image at a time."""
        try:
            per_analyzer = [a.analyze(images) for a in self.analyzers]
            return [
                merge_partials([parts[i] for parts in per_analyzer]) for i in range(len(images))
            ]
        except Exception:  # noqa: BLE001
            if len(images) == 1:
                raise
        out: list[dict[str, Any] | Failure | str] = []
        for image in images:
            try:
                out.extend(self.analyze([image]))
            except Exception as exc:  # noqa: BLE001
                log.exception("analyzer failed")
                out.append(f"analysis failed: {type(exc).__name__}: {exc}")
        return out

    def _analyze_batch(self, batch: list[_Fetched]) -> dict[int, Any]:
        """The pixel analyzers' results for a batch, by ``id`` of the item (thread-safe)."""
        to_analyze = [item for item in batch if not item.unchanged and item.image is not None]
        images = [item.image for item in to_analyze if item.image is not None]
        return dict(zip(map(id, to_analyze), self.analyze(images) if images else [], strict=True))

    def _write(
        self,
        batch: list[_Fetched],
        results: dict[int, Any],
        summary: Summary,
        write_failures: int,
    ) -> int:
        """Records from an analyzed batch into the index (failures into the failure list);
        returns the updated count of consecutive write failures."""
        analyzed: list[Record] = []
        fresh = [item for item in batch if not item.unchanged]
        for item in fresh:
            result = results.get(id(item), {})
            if isinstance(result, str | Failure):
                failure = result if isinstance(result, Failure) else self._failure(item.ref, result)
                summary.failed += 1
                summary.failures.append(failure)
                self._record_failures([failure], summary)
            else:
                analyzed.append(self._record(item, result))
        refreshed: list[Record] = []
        for item in batch:
            if item.unchanged and (old := self.index.get(item.ref.bucket, item.ref.key)):
                refreshed.append(old.model_copy(update={"fingerprint": item.ref.fingerprint}))
        records = analyzed + refreshed
        if not records:
            return write_failures
        if write_failures >= MAX_CONSECUTIVE_WRITE_FAILURES:
            summary.not_indexed += len(records)
            return write_failures
        try:
            errors = self.index.upsert(records)
        except Exception as exc:  # noqa: BLE001 - server down: report, keep what is indexed
            log.error("index refused a batch of %d: %s", len(records), exc)
            summary.not_indexed += len(records)
            summary.write_errors += [Failure.of(r, str(exc)) for r in records]
            return write_failures + 1
        failed_ids = {e.id for e in errors}
        summary.write_errors += errors
        summary.not_indexed += len(failed_ids)
        summary.indexed += sum(1 for r in analyzed if r.id not in failed_ids)
        summary.unchanged += sum(1 for r in refreshed if r.id not in failed_ids)
        summary.touched += sum(1 for r in refreshed if r.id not in failed_ids)
        return 0

    def _record(self, item: _Fetched, partial: dict[str, Any]) -> Record:
        """The record of an analyzed object. Pixel analyzers' fields come first and the object
        analyzers' last, so a remote service's answer (Rekognition's ``LabelModelVersion``,
        ``ImageProperties``) is the one kept when both give a field; ``Labels`` are united."""
        ref = item.ref
        fields: dict[str, Any] = {
            "bucket": ref.bucket,
            "key": ref.key,
            "uri": ref.uri,
            "size": item.size,
            "fingerprint": ref.fingerprint,
            "content_sha256": item.sha256,
            "etag": ref.etag,
            "version_id": ref.version_id,
            "last_modified": ref.last_modified,
            "analyzers": dict(self.versions),
        }
        if item.image is not None:
            fields.update(
                width=item.image.width, height=item.image.height, format=item.image.format
            )
        merged = merge_partials([partial, item.remote]) if item.remote else partial
        return Record(**{**fields, **merged})

    def _record_failures(self, failures: list[Failure], summary: Summary) -> None:
        try:
            self.index.record_failures(failures)
        except Exception as exc:  # noqa: BLE001 - the summary still reports them
            log.warning("could not record %d failure(s) in the index: %s", len(failures), exc)
            summary.unrecorded.update(f.key for f in failures)


class Reanalyzer:
    """``pixdex reindex --reanalyze``: brings an indexed record up to the current analyzers,
    reading its object again from where it came from (a folder or an S3 bucket).

    Analyzer-selective: when every analyzer that is new, changed or gone writes record fields of
    its own (it declares them in ``fields``, as the text analyzer does), only the new and changed
    ones run and their fields are merged into the stored record (a gone one's fields are
    removed): adding text to an index does not re-run the label model or the object detector.
    Otherwise (``Labels`` are shared by several analyzers) every analyzer runs again.

    An object that cannot be read or analyzed now keeps its old record (reported, never dropped):
    a reindex must not lose what was searchable because a bucket was briefly unreachable.
    """

    def __init__(self, pipeline: Pipeline, settings: Settings) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.sources: dict[str, Source] = {}  # by location: one S3 client per bucket
        self.kept: list[Failure] = []
        self.reanalyzed = 0
        self.partial = 0  # of reanalyzed: by the new/changed analyzers only
        self._subsets: dict[tuple[str, ...], Pipeline] = {}

    def _source(self, record: Record) -> Source:
        from pixdex.sources import open_source

        s3 = bool(record.uri and record.uri.startswith("s3://"))
        location = f"s3://{record.bucket}/" if s3 else record.bucket
        if location not in self.sources:
            self.sources[location] = open_source(location, self.settings)
        return self.sources[location]

    def _owned(self, names: set[str]) -> dict[str, tuple[str, ...]] | None:
        """name -> the fields it alone writes, for every analyzer in ``names``; None when one of
        them shares fields (or is unknown: gone from this configuration and undeclared), or when
        a current analyzer overrides one of them (Rekognition's DetectText beside the local text
        analyzer: the remote answer is the one a full run keeps, so only a full run is right)."""
        current = {a.name: a for a in [*self.pipeline.analyzers, *self.pipeline.remote_analyzers]}
        overridden = {f for a in current.values() for f in overridden_fields(a)}
        owned: dict[str, tuple[str, ...]] = {}
        for name in names:
            fields = owned_fields(current.get(name)) or KNOWN_FIELDS.get(name)
            if not fields or overridden.intersection(fields):
                return None
            owned[name] = tuple(fields)
        return owned

    def _subset(self, names: tuple[str, ...]) -> Pipeline:
        if names not in self._subsets:
            p = self.pipeline
            chosen = [a for a in [*p.analyzers, *p.remote_analyzers] if a.name in names]
            self._subsets[names] = Pipeline(
                chosen, p.index, batch_size=1, workers=1, max_pixels=p.max_pixels
            )
        return self._subsets[names]

    def __call__(self, record: Record) -> Record:
        wanted = self.pipeline.versions
        if record.analyzers == wanted:
            return record  # already analyzed by these very analyzers
        stale = {n for n, v in wanted.items() if record.analyzers.get(n) != v}
        gone = set(record.analyzers) - set(wanted)
        owned = self._owned(stale | gone)
        ref = ObjectRef(
            bucket=record.bucket,
            key=record.key,
            uri=record.uri or record.key,
            size=record.size,
            fingerprint=record.fingerprint,
            etag=record.etag,
            version_id=record.version_id,
            last_modified=record.last_modified,
        )
        pipeline = self.pipeline if owned is None else self._subset(tuple(sorted(stale)))
        try:
            if owned is not None and not stale:
                result: Record | Failure = record  # only analyzers that are gone: nothing to run
            else:
                result = pipeline.analyze_object(self._source(record), ref)
        except SourceError as exc:
            result = self.pipeline._failure(ref, str(exc))
        if isinstance(result, Failure):
            log.warning("kept the old record of %s: %s", ref.uri, result.reason)
            self.kept.append(result)
            return record
        self.reanalyzed += 1
        if owned is None:
            return result
        self.partial += 1
        update: dict[str, Any] = {f: None for n in gone for f in owned[n]}
        update.update({f: getattr(result, f) for n in stale for f in owned[n]})
        versions = {n: v for n, v in record.analyzers.items() if n not in gone}
        versions.update({n: wanted[n] for n in stale})
        update["analyzers"] = versions
        return record.model_copy(update=update)


#: Fields of analyzers a configuration may have dropped (so their fields can still be removed
#: when they are gone); analyzers that are present declare their own in ``fields``.
KNOWN_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("TextDetections", "TextModelVersion"),
    "faces": ("FaceDetails", "FaceModelVersion"),
}


def build_pipeline(settings: Settings, index: Index | None = None) -> Pipeline:
    from pixdex.analyzers.select import select_analyzers
    from pixdex.indexes import open_index

    return Pipeline(
        select_analyzers(settings),
        index if index is not None else open_index(settings.index, settings),
        batch_size=settings.batch_size,
        workers=settings.workers,
        max_pixels=settings.max_pixels,
        analysis_workers=settings.analysis_workers,
    )
