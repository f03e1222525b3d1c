"""Property-based fuzzing (hypothesis) of every parser that takes outside input: S3/SQS/SNS/
EventBridge/MinIO event JSON, the Rekognition request parser, the search query checks (and the
real SQLite search behind them), bounded JSON and the torch-free ``.pth`` reader. The property
is always the same: an answer or the parser's own one-line error — never another exception,
never a hang (each example has a deadline), never a 5xx over HTTP.

Examples per test are bounded so the whole file runs in well under a minute on 2 cores; raise
them with ``PIXDEX_FUZZ_EXAMPLES=5000`` for a longer hunt.
"""

from __future__ import annotations

import base64
import collections
import io
import json
import os
import pickle
import struct
import sys
import types
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import pytest
from _http import LocalClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_api import coco_records

from pixdex import safejson
from pixdex.api.app import create_app
from pixdex.api.rekognition_input import RekognitionError, image_spec, number, parse_body
from pixdex.config import Settings
from pixdex.errors import QueryError
from pixdex.indexes.base import SearchQuery
from pixdex.indexes.sqlite import SqliteIndex
from pixdex.integrations.s3.events import Change, parse_notification
from pixdex.models.pth import MAGIC_NUMBER, PROTOCOL_VERSION, PthError, parse_state_dict
from pixdex.query import check_query

EXAMPLES = int(os.environ.get("PIXDEX_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=2000,  # ms per example: a parser that hangs fails here
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
HTTP_FUZZ = settings(FUZZ, max_examples=max(50, EXAMPLES // 3))

# --- strategies ---

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_like = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=25,
)
event_names = st.sampled_from(
    [
        "ObjectCreated:Put",
        "s3:ObjectCreated:CompleteMultipartUpload",
        "ObjectRemoved:Delete",
        "s3:ObjectRemoved:DeleteMarkerCreated",
        "ObjectRestore:Completed",
        "LifecycleExpiration:Delete",
        "s3:TestEvent",
        "ObjectAccessed:Get",
    ]
) | st.text(max_size=30)
keys = st.text(max_size=200) | st.from_regex(r"[A-Za-z0-9%+/ .~-]{0,80}", fullmatch=True)
s3_record = st.fixed_dictionaries(
    {
        "eventName": event_names | json_like,
        "s3": st.fixed_dictionaries(
            {
                "bucket": st.fixed_dictionaries({"name": st.text(max_size=30) | json_like}),
                "object": st.fixed_dictionaries(
                    {"key": keys | json_like},
                    optional={
                        "size": st.integers(-10, 2**64) | st.floats() | json_like,
                        "eTag": st.text(max_size=40) | json_like,
                        "versionId": st.text(max_size=40) | json_like,
                        "sequencer": st.text(alphabet="0123456789ABCDEF", max_size=20) | json_like,
                    },
                ),
            }
        )
        | json_like,
    },
    optional={"eventSource": st.sampled_from(["aws:s3", "minio:s3"]) | json_like},
)
s3_event = st.fixed_dictionaries({"Records": st.lists(s3_record | json_like, max_size=5)})


def wrap(inner: st.SearchStrategy) -> st.SearchStrategy:
    """The envelopes S3 events travel in: SQS bodies, SNS messages, Lambda batches."""
    as_text = inner.map(json.dumps) | st.text(max_size=100)
    return st.one_of(
        inner,
        st.fixed_dictionaries({"Type": st.just("Notification"), "Message": as_text}),
        st.fixed_dictionaries(
            {
                "Records": st.lists(
                    st.fixed_dictionaries(
                        {"eventSource": st.just("aws:sqs"), "body": as_text},
                        optional={"messageId": st.text(max_size=10)},
                    )
                    | st.fixed_dictionaries({"Sns": st.fixed_dictionaries({"Message": as_text})}),
                    max_size=3,
                )
            }
        ),
        st.fixed_dictionaries(
            {
                "detail-type": st.sampled_from(["Object Created", "Object Deleted", "Other"])
                | st.text(max_size=10),
                "source": st.just("aws.s3") | st.text(max_size=10),
                "detail": json_like
                | st.fixed_dictionaries(
                    {
                        "bucket": st.fixed_dictionaries({"name": json_like}),
                        "object": st.fixed_dictionaries({"key": keys | json_like}),
                    }
                ),
            }
        ),
    )


notifications = st.recursive(wrap(s3_event), wrap, max_leaves=4)


def _valid_changes(changes: list[Change]) -> None:
    assert isinstance(changes, list)
    for change in changes:
        assert isinstance(change, Change)
        assert change.action in ("created", "removed")
        assert isinstance(change.bucket, str) and isinstance(change.key, str) and change.key
        assert change.size is None or isinstance(change.size, int)


# --- S3 / SQS / SNS / EventBridge / MinIO event JSON ---


@FUZZ
@given(notifications)
def test_event_parser_never_raises_on_event_shaped_json(payload):
    _valid_changes(parse_notification(payload))
    try:
        text = json.dumps(payload)
    except ValueError:  # NaN/Infinity are not JSON; the structured form was tried above
        return
    _valid_changes(parse_notification(text))
    _valid_changes(parse_notification(text.encode()))


@FUZZ
@given(st.binary(max_size=400) | st.text(max_size=400) | json_like)
def test_event_parser_never_raises_on_anything(payload):
    _valid_changes(parse_notification(payload))


def test_event_parser_survives_deep_nesting():
    for depth in (100, 10_000, 200_000):
        assert parse_notification("[" * depth + "]" * depth) == []
        assert parse_notification(b'{"Records": ' + b"[" * depth + b"]" * depth + b"}") == []


# --- bounded JSON ---


@FUZZ
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_safejson_answers_or_says_why(data):
    try:
        safejson.loads(data)
    except safejson.JsonError as exc:
        assert str(exc) and "\n" not in str(exc)


@FUZZ
@given(st.integers(0, 200))
def test_safejson_depth_bound_is_exact(depth: int):
    text = "[" * depth + "1" + "]" * depth
    if depth <= safejson.MAX_DEPTH:
        assert safejson.loads(text) == json.loads(text)
    else:
        with pytest.raises(safejson.JsonError, match="nested deeper"):
            safejson.loads(text)


# --- the Rekognition request parser ---

images = st.one_of(
    json_like,
    st.fixed_dictionaries(
        {"Bytes": st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()) | json_like}
    ),
    st.fixed_dictionaries(
        {
            "S3Object": st.fixed_dictionaries(
                {"Bucket": st.text(max_size=20) | json_like, "Name": keys | json_like},
                optional={"Version": json_like},
            )
            | json_like
        }
    ),
)
rekognition_bodies = st.fixed_dictionaries(
    {"Image": images},
    optional={"MaxLabels": scalars | json_like, "MinConfidence": scalars | json_like},
)


@FUZZ
@given(st.binary(max_size=300) | rekognition_bodies.map(lambda b: json.dumps(b).encode()))
def test_rekognition_parser_answers_or_raises_its_own_error(raw: bytes):
    try:
        body = parse_body(raw)
        number(body, "MaxLabels", 0, None, integer=True)
        number(body, "MinConfidence", 0, 100)
        spec = image_spec(body.get("Image"))
    except RekognitionError as exc:
        assert exc.status == 400 and exc.kind.endswith("Exception") and exc.message
        return
    assert (spec.data is None) != (spec.s3 is None)


@pytest.fixture(scope="module")
def coco_index(tmp_path_factory: pytest.TempPathFactory) -> SqliteIndex:
    index = SqliteIndex(tmp_path_factory.mktemp("fuzz") / "index.db")
    index.upsert(coco_records())
    yield index
    index.close()


@pytest.fixture(scope="module")
def client(coco_index: SqliteIndex, tmp_path_factory: pytest.TempPathFactory) -> LocalClient:
    settings_ = Settings(index=coco_index.location, cache_dir=tmp_path_factory.mktemp("c"))
    with LocalClient(create_app(settings_, coco_index)) as test_client:
        yield test_client


@HTTP_FUZZ
@given(st.binary(max_size=300) | rekognition_bodies.map(lambda b: json.dumps(b).encode()))
def test_rekognition_endpoint_never_answers_5xx(client, raw: bytes):
    response = client.post("/rekognition/detect-labels", content=raw)
    assert response.status_code in (400, 403), response.text
    assert response.json()["__type"].endswith("Exception")


# --- the search query checks and the real search behind them ---

texts = (
    st.none() | st.text(max_size=120) | st.lists(st.text(max_size=12), max_size=40).map(" ".join)
)
labels = st.lists(st.text(max_size=30), max_size=20)


@FUZZ
@given(texts, labels, st.floats(allow_nan=True, allow_infinity=True))
def test_search_either_answers_or_is_a_query_error(coco_index, text, label_list, confidence):
    query = SearchQuery(text=text, labels=tuple(label_list), min_confidence=confidence, limit=5)
    try:
        check_query(query)
    except QueryError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    result = coco_index.search(query)  # IndexUnavailable here would be a 503 for a bad query
    assert result.total >= len(result.hits)


@HTTP_FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "q",
                "label",
                "min_confidence",
                "since",
                "until",
                "limit",
                "offset",
                "facets",
                "bucket",
                "prefix",
            ]
        ),
        st.text(max_size=60) | st.lists(st.text(max_size=20), max_size=30).map(" ".join),
        max_size=6,
    )
)
def test_search_endpoint_never_answers_5xx(client, params):
    response = client.get("/api/search", params=params)
    assert response.status_code in (200, 400), (params, response.text)
    if response.status_code == 400:
        assert response.json()["message"]


# --- the .pth reader ---

SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"long": 4}}


@contextmanager
def _fake_torch():
    """Stand-in modules so the standard pickler writes the globals torch.save writes."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args):  # pragma: no cover - only referenced
        raise AssertionError

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = (
        "torch._utils",
        "_rebuild_tensor_v2",
    )
    torch.FloatStorage, torch._utils, utils._rebuild_tensor_v2 = (
        FloatStorage,
        utils,
        _rebuild_tensor_v2,
    )
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield FloatStorage, _rebuild_tensor_v2
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def small_state_dict(size=(2, 3), stride=(3, 1), offset=0, numel=6) -> bytes:
    """A valid legacy .pth holding one float tensor (or a crafted one)."""
    with _fake_torch() as (storage_type, rebuild):

        class Storage:
            pass

        class Tensor:
            def __reduce__(self):
                return rebuild, (storage, offset, size, stride, False, collections.OrderedDict())

        storage = Storage()

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                if obj is storage:
                    return ("storage", storage_type, "0", "cpu", numel, None)
                return None

        out = io.BytesIO()
        for header in (MAGIC_NUMBER, PROTOCOL_VERSION, SYS_INFO):
            pickle.dump(header, out, protocol=2)
        Pickler(out, protocol=2).dump(collections.OrderedDict(weight=Tensor()))
        pickle.dump(["0"], out, protocol=2)
    out.write(struct.pack("<q", numel) + np.arange(numel, dtype="<f4").tobytes())
    return out.getvalue()


VALID = small_state_dict()


def test_the_small_state_dict_is_valid():
    np.testing.assert_array_equal(parse_state_dict(VALID)["weight"], np.arange(6).reshape(2, 3))


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=6))
def test_pth_reader_on_mutated_files(flips):
    data = bytearray(VALID)
    for position, value in flips:
        data[position] = value
    try:
        out = parse_state_dict(bytes(data))
    except PthError as exc:
        assert str(exc)
        return
    assert all(isinstance(v, np.ndarray) and v.size <= 6 for v in out.values())


@FUZZ
@given(st.binary(max_size=500), st.integers(0, len(VALID)))
def test_pth_reader_on_truncated_and_random_files(junk: bytes, cut: int):
    for data in (junk, VALID[:cut], VALID[:cut] + junk):
        with suppress(PthError):
            parse_state_dict(data)


def test_pth_memory_bomb_is_refused():
    """A zero stride asks for 10^12 copies of one stored float: refused, nothing allocated."""
    bomb = small_state_dict(size=(10**6, 10**6), stride=(0, 0), numel=1)
    with pytest.raises(PthError, match="elements in a storage of 1"):
        parse_state_dict(bomb)


def test_pth_memo_index_bomb_is_refused():
    """Found by the fuzzer: one mutated byte made LONG_BINPUT's index ~6.5e7, and the C
    unpickler grew its memo to match (1 GB peak, 2 s). Refused before unpickling now."""
    import tracemalloc

    data = bytearray(VALID)
    for position, value in [(187, 16), (274, 57), (118, 197), (307, 75), (48, 114)]:
        data[position] = value
    tracemalloc.start()
    try:
        with pytest.raises(PthError, match="memo index"):
            parse_state_dict(bytes(data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20


DANGEROUS = [
    ("os", "system"),
    ("posix", "system"),
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "__import__"),
    ("builtins", "getattr"),
    ("subprocess", "Popen"),
    ("shutil", "rmtree"),
    ("torch", "load"),
    ("torch._utils", "_rebuild_parameter"),
    ("collections", "namedtuple"),
    ("numpy", "load"),
]


@FUZZ
@given(
    st.sampled_from(DANGEROUS)
    | st.tuples(
        st.from_regex(r"[a-z_][a-z0-9_.]{0,20}", fullmatch=True),
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True),
    ),
    st.sampled_from([0, 2, 4]),
    st.integers(0, 3),
)
def test_crafted_malicious_pickles_are_refused(tmp_path_factory, target, protocol, slot):
    """A GLOBAL (protocols 0-2) or STACK_GLOBAL (4) naming any callable, in any of the five
    pickles of the file: refused before anything is imported or called."""
    module, name = target
    marker = tmp_path_factory.getbasetemp() / "pwned"
    command = f"touch {marker}".encode()
    if protocol == 4:

        def unicode(s: bytes) -> bytes:
            return b"\x8c" + bytes([len(s)]) + s

        payload = (
            b"\x80\x04"
            + unicode(module.encode())
            + unicode(name.encode())
            + b"\x93"
            + unicode(command)
            + b"\x85R."
        )
    else:
        payload = b"c" + module.encode() + b"\n" + name.encode() + b"\n(S'" + command + b"'\ntR."
    parts = [pickle.dumps(h, protocol=2) for h in (MAGIC_NUMBER, PROTOCOL_VERSION, SYS_INFO)]
    parts.append(pickle.dumps({}, protocol=2))
    parts.insert(slot, payload)
    allowed = {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2")}
    with pytest.raises(PthError):
        parse_state_dict(b"".join(parts))
    if (module, name) not in allowed:
        assert not marker.exists()
    assert not Path(marker).exists()
