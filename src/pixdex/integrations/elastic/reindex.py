"""Rebuilding an index behind its alias without downtime (docs/elasticsearch.md, "Reindex").

A new concrete index is created from the current template, filled from the old one (scroll +
bulk, refresh off and no replicas meanwhile), optionally through a transform, then the alias is
swapped in one atomic ``_aliases`` call. Writes to the old index are blocked during the copy, so
nothing written meanwhile is lost: it is refused (and reported), and a re-run completes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pixdex.errors import IndexUnavailable
from pixdex.indexes.base import ReindexResult
from pixdex.integrations.elastic.documents import to_record
from pixdex.records import Failure, Record

if TYPE_CHECKING:
    from pixdex.integrations.elastic.index import ElasticIndex


def reindex(
    index: ElasticIndex,
    transform: Callable[[Record], Record | None] | None = None,
    source: str | None = None,
    keep_old: bool = False,
) -> ReindexResult:
    """See ``ElasticIndex.reindex``."""
    conn = index.conn
    status, body = conn.call("GET", f"/_alias/{index.name}")
    old = sorted(body) if status == 200 and body else []
    src = source or index.name
    index.put_template()
    new = index.new_index_name()
    conn.ok(
        "PUT",
        f"/{new}",
        "creating the new index",
        body={"settings": {"index": {"refresh_interval": "-1", "number_of_replicas": 0}}},
    )
    blocked = [] if source else old
    try:
        for name in blocked:
            conn.ok(
                "PUT", f"/{name}/_settings", "blocking writes", body={"index.blocks.write": True}
            )
        copied, skipped = _copy(index, src, new, transform)
        settings: dict[str, Any] = {"refresh_interval": None}
        settings.update(
            {"number_of_replicas": conn.options.replicas}
            if conn.options.replicas is not None
            else {"auto_expand_replicas": "0-1"}
        )
        conn.ok("PUT", f"/{new}/_settings", "restoring settings", body={"index": settings})
        conn.ok("POST", f"/{new}/_refresh", "refreshing the new index")
        actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": index.name}} for i in old]
        actions.append({"add": {"index": new, "alias": index.name, "is_write_index": True}})
        conn.ok("POST", "/_aliases", "swapping the alias", body={"actions": actions})
    except BaseException:
        for name in blocked:
            with contextlib.suppress(Exception):
                conn.call("PUT", f"/{name}/_settings", body={"index.blocks.write": None})
        with contextlib.suppress(Exception):
            conn.call("DELETE", f"/{new}")
        raise
    if old and not keep_old:
        conn.ok("DELETE", f"/{','.join(old)}", "deleting the old index")
    elif old:
        for name in blocked:
            conn.call("PUT", f"/{name}/_settings", body={"index.blocks.write": None})
    index.concrete = [new]
    return ReindexResult(written=copied, skipped=skipped, old=old, new=new)


def _copy(
    index: ElasticIndex,
    src: str,
    new: str,
    transform: Callable[[Record], Record | None] | None,
) -> tuple[int, int]:
    """(copied, skipped by the transform); IndexUnavailable when the new index refused any."""
    copied = skipped = 0
    errors: list[Failure] = []
    batch: list[Record] = []
    for hit in index.conn.scan(src, {"match_all": {}}, True, size=500):
        try:
            record = to_record(hit["_source"])
        except ValueError as exc:
            key = str(hit["_source"].get("key", ""))
            bucket = str(hit["_source"].get("bucket", ""))
            errors.append(Failure(bucket=bucket, key=key, reason=f"not a record: {exc}"))
            continue
        if transform is not None:
            record = transform(record)
        if record is None:
            skipped += 1
            continue
        batch.append(record)
        if len(batch) >= index.conn.options.batch_docs:
            errors += index.write(new, batch, clear_failures=False, refresh="false")
            copied += len(batch)
            batch = []
    if batch:
        errors += index.write(new, batch, clear_failures=False, refresh="false")
        copied += len(batch)
    if errors:
        raise IndexUnavailable(
            f"reindex into {new} refused {len(errors)} record(s), first:"
            f" {errors[0].reason}; the alias was not moved"
        )
    return copied, skipped
