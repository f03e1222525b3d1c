"""``pixdex check`` on Elasticsearch/OpenSearch: the alias, the indexes behind it, and every
document's search fields agree with what pixdex would write.

What can go wrong there, and what ``repair`` does about it:

- a ``pixdex reindex`` stopped half-way (killed, connection lost) leaves the old index blocked for
  writes (every later write refused) and an unfinished copy beside it: the block is lifted and
  the copy deleted (it is never behind the alias, so nothing reads it);
- the alias names several indexes (an edit by hand): reported; pixdex cannot know which to drop;
- a document whose search helper fields (``documents.search_doc``: terms, words, phrases,
  facets…) differ from its labels — edited by another tool, or written by an older pixdex —
  is written again from its own record;
- a document that is not a record at all is removed and recorded as a failure, so the next
  ``pixdex index`` analyzes the photo again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pixdex.indexes.base import CheckReport
from pixdex.integrations.elastic.documents import DOC_HELPERS, LABEL_HELPERS, search_doc, to_record
from pixdex.integrations.elastic.transport import bulk_line, reason
from pixdex.records import Failure, Record

if TYPE_CHECKING:
    from pixdex.integrations.elastic.index import ElasticIndex

#: the failure recorded for a document check had to remove
REMOVED = "pixdex check: its stored document is not a record; analyzed again on the next run"


def check(index: ElasticIndex, repair: bool = False) -> CheckReport:
    report = CheckReport(index.location)
    conn = index.conn
    status, body = conn.call("GET", f"/_alias/{index.name}")
    behind = sorted(body) if status == 200 and body else []
    if not behind:
        report.problems.append(f"{index.location}: the alias {index.name} names no index")
        return report
    if len(behind) > 1:
        report.problems.append(
            f"{index.location}: the alias {index.name} names {len(behind)} indexes"
            f" ({', '.join(behind)}); remove all but one from it (POST /_aliases)"
        )
    _left_by_reindex(index, behind, repair, report)
    status, _ = conn.call("HEAD", f"/{index.failures_index}")
    if status != 200:
        report.problems.append(f"{index.location}: its failure list {index.failures_index} is gone")
        if repair:
            index._ensure_failures()
    _documents(index, repair, report)
    return report


def _left_by_reindex(
    index: ElasticIndex, behind: list[str], repair: bool, report: CheckReport
) -> None:
    """Write blocks and unfinished copies that a stopped ``reindex`` leaves."""
    conn = index.conn
    status, body = conn.call(
        "GET",
        f"/{index.name}-pixdex-*/_settings",
        params={"filter_path": "*.settings.index.blocks,*.settings.index.refresh_interval"},
    )
    for name, value in sorted((body or {}).items() if status == 200 else []):
        settings = value.get("settings", {}).get("index", {})
        blocked = str(settings.get("blocks", {}).get("write", "false")) == "true"
        if name in behind and blocked:
            report.problems.append(
                f"{index.location}: writes to {name} are blocked (a pixdex reindex was stopped"
                " half-way): every write is refused"
            )
            if repair:
                conn.ok(
                    "PUT", f"/{name}/_settings", "lifting the write block",
                    body={"index.blocks.write": None},
                )  # fmt: skip
        elif name not in behind and settings.get("refresh_interval") == "-1":
            report.problems.append(
                f"{index.location}: {name} is an unfinished copy left by a pixdex reindex that"
                " was stopped (nothing reads it)"
            )
            if repair:
                conn.ok("DELETE", f"/{name}", "deleting the unfinished copy")


def _documents(index: ElasticIndex, repair: bool, report: CheckReport) -> None:
    """Every document: a record, under its own id, with the search fields its labels give."""
    rewrite: list[Record] = []
    remove: list[tuple[str, str, str]] = []  # (_id, bucket, key)
    for hit in index.conn.scan(index.name, {"match_all": {}}, True, size=500):
        report.records += 1
        source = hit["_source"]
        where = f"{source.get('bucket', '?')}/{source.get('key', hit['_id'])}"
        try:
            record = to_record(source)
        except ValueError as exc:
            report.problems.append(f"{where}: not a record ({str(exc).splitlines()[0]})")
            remove.append((hit["_id"], str(source.get("bucket", "")), str(source.get("key", ""))))
            continue
        found: list[str] = []
        if hit["_id"] != record.id:
            found.append(f"stored under the id {hit['_id']}, not {record.id}")
        wrong = _helpers_differ(source, search_doc(record))
        if wrong:
            found.append(f"search fields disagree with its labels ({', '.join(wrong)})")
        if found:
            report.problems.append(f"{where}: {'; '.join(found)}")
            rewrite.append(record)
            if hit["_id"] != record.id:
                remove.append((hit["_id"], "", ""))
    if not repair:
        return
    errors = index.write(index.name, rewrite, clear_failures=False) if rewrite else []
    report.repaired += len(rewrite) - len(errors)
    for error in errors:
        report.problems.append(f"{error.key}: could not be written again: {error.reason}")
    failures = [Failure(bucket=b, key=k, reason=REMOVED) for _, b, k in remove if k]
    if failures:
        index.record_failures(failures)
        report.reanalyze += len(failures)
    if remove:
        items = [(i, bulk_line("delete", index.name, i)) for i, _, _ in remove]
        done, failed = index.conn.bulk(items)
        for doc_id, why in failed:
            report.problems.append(f"{index.location}: could not remove {doc_id}: {why}")
        for doc_id, outcome in done:
            if outcome.get("status", 500) >= 300 and outcome.get("status") != 404:
                report.problems.append(
                    f"{index.location}: could not remove {doc_id}: {reason(outcome)}"
                )
    index.conn.call("POST", f"/{index.name}/_refresh")


def _helpers_differ(stored: dict[str, Any], derived: dict[str, Any]) -> list[str]:
    """Names of the search helper fields whose stored value is not the derived one."""
    wrong = [f for f in DOC_HELPERS if stored.get(f) != derived.get(f)]
    labels = stored.get("Labels") or []
    expected = derived.get("Labels") or []
    if len(labels) != len(expected):
        return [*wrong, "Labels"]
    for mine, theirs in zip(labels, expected, strict=True):
        wrong += [
            f"Labels.{f}"
            for f in LABEL_HELPERS
            if mine.get(f) != theirs.get(f) and f"Labels.{f}" not in wrong
        ]
    return wrong
