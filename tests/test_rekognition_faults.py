"""The Rekognition analyzer when Rekognition says no: throttling (the run backs off and
completes), errors per photo and per account (one line each in the failures list, the run goes
on, a rerun retries them), the client-side rate limit, and event consumers redelivering what may
pass. Against a real HTTP server scripted to answer like Rekognition (tests/_rekognition_servers).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import boto3
import pytest
from _rekognition_servers import AWS_ENV, Process, ScriptedRekognition, error, labels_answer
from botocore.config import Config

from pixdex.config import Settings
from pixdex.integrations.s3.events import Change, ChangeApplier
from pixdex.pipeline import build_pipeline
from pixdex.sources import open_source


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def photos(tmp_path: Path, coco_images: list[Path]) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in coco_images[:6]:
        shutil.copy(path, folder / path.name)
    return folder


def settings_for(tmp_path: Path, endpoint: str | None, **overrides) -> Settings:
    rekognition = {"endpoint_url": endpoint, "region": "us-east-1", "rate": 50.0}
    rekognition.update(overrides.pop("rekognition", {}))
    return Settings(
        index=str(tmp_path / "index.db"),
        analyzer=["rekognition"],
        rekognition=rekognition,
        **overrides,
    )


def run(settings: Settings, location: str):
    pipeline = build_pipeline(settings)
    summary = pipeline.run(open_source(location, settings))
    return pipeline, summary


@pytest.mark.parametrize("code", ["ThrottlingException", "ProvisionedThroughputExceededException"])
def test_throttling_for_a_while_backs_off_and_completes(
    scripted: ScriptedRekognition, photos: Path, tmp_path: Path, code: str
):
    window = 1.5  # seconds during which every request is throttled
    started: list[float] = []

    def script(received, number):
        if not started:
            started.append(received.at)
        if received.at - started[0] < window:
            return error(code, "Rate exceeded")
        return labels_answer(received, number)

    scripted.script = script
    pipeline, summary = run(
        settings_for(tmp_path, scripted.url, rekognition={"max_attempts": 10}), str(photos)
    )
    assert (summary.indexed, summary.failed) == (6, 0)
    usage = pipeline.remote_analyzers[0].usage
    throttled = sum(1 for r in scripted.received if r.at - started[0] < window)
    assert usage["throttled"] == throttled >= 4  # the first wave of 4 (concurrency) at least
    assert usage["calls"] == len(scripted.received) == 6 + usage["retried"]
    assert usage["retried"] == throttled and usage["failed"] == 0
    # it came back through backoff, not by luck: every photo's last request came after the window
    assert all(r.at - started[0] >= window for r in scripted.received[-6:])


def test_throttling_that_outlasts_the_retries_is_a_failure_a_rerun_retries(
    scripted: ScriptedRekognition, photos: Path, tmp_path: Path
):
    scripted.script = lambda received, number: error("ThrottlingException", "Rate exceeded")
    settings = settings_for(tmp_path, scripted.url, rekognition={"max_attempts": 2})
    pipeline, summary = run(settings, str(photos))
    assert (summary.indexed, summary.failed) == (0, 6)
    assert summary.transient == {f.key for f in summary.failures}  # events would be redelivered
    assert {f.reason for f in summary.failures} == {
        "Rekognition kept throttling after 2 attempt(s) (ThrottlingException): lower "
        "rekognition.rate or ask for a higher TPS quota; a rerun retries"
    }
    assert pipeline.remote_analyzers[0].usage == {
        "calls": 12,
        "throttled": 12,
        "retried": 6,
        "failed": 6,
    }
    assert len(pipeline.index.failures()) == 6

    scripted.script = labels_answer
    _, again = run(settings, str(photos))
    assert (again.indexed, again.failed, again.unchanged) == (6, 0, 0)
    assert build_pipeline(settings).index.failures() == []


def test_errors_per_photo_are_one_line_each_and_the_run_goes_on(
    scripted: ScriptedRekognition, photos: Path, tmp_path: Path
):
    files = sorted(photos.iterdir())
    by_size = {len(files[0].read_bytes()): "InvalidImageFormatException"}
    by_size[len(files[1].read_bytes())] = "ImageTooLargeException"
    by_size[len(files[2].read_bytes())] = "InvalidParameterException"

    def script(received, number):
        code = by_size.get(len(received.image_bytes or b""))
        if code:
            return error(code, f"Request has\ninvalid {code[:-9]}")
        return labels_answer(received, number)

    scripted.script = script
    settings = settings_for(tmp_path, scripted.url)
    pipeline, summary = run(settings, str(photos))
    assert (summary.indexed, summary.failed) == (3, 3)
    reasons = {f.key: f.reason for f in summary.failures}
    assert reasons == {
        files[0].name: "Rekognition cannot read the image: Request has invalid InvalidImageFormat",
        files[1].name: "image too large for Rekognition: Request has invalid ImageTooLarge",
        files[2].name: "Rekognition refused the request: Request has invalid InvalidParameter",
    }
    assert summary.transient == set()  # these are the photos' fault: not redelivered
    stored = {f.key: f.reason for f in pipeline.index.failures()}
    assert stored == reasons

    scripted.script = labels_answer  # fixed (say, Rekognition learnt the format): rerun
    _, again = run(settings, str(photos))
    assert (again.indexed, again.unchanged, again.failed) == (3, 3, 0)


@pytest.mark.parametrize(
    ("code", "reason", "transient"),
    [
        (
            "AccessDeniedException",
            "access denied by Rekognition: the credentials lack rekognition:DetectLabels "
            "(User: arn:aws:iam::123456789012:user/x is not authorized)",
            False,
        ),
        (
            "ExpiredTokenException",
            "AWS credentials expired (The security token included in the request is expired):"
            " renew them (aws sso login, a new session token) and rerun",
            True,
        ),
        (
            "UnrecognizedClientException",
            "AWS credentials refused by Rekognition: UnrecognizedClientException: "
            "The security token included in the request is invalid.",
            False,
        ),
    ],
)
def test_account_errors_fail_every_photo_with_one_line_and_stop_calling(
    scripted: ScriptedRekognition,
    photos: Path,
    tmp_path: Path,
    code: str,
    reason: str,
    transient: bool,
):
    message = {
        "AccessDeniedException": "User: arn:aws:iam::123456789012:user/x is not authorized",
        "ExpiredTokenException": "The security token included in the request is expired",
        "UnrecognizedClientException": "The security token included in the request is invalid.",
    }[code]
    scripted.script = lambda received, number: error(code, message)
    settings = settings_for(tmp_path, scripted.url, rekognition={"concurrency": 2})
    pipeline, summary = run(settings, str(photos))
    assert (summary.indexed, summary.failed) == (0, 6)
    assert {f.reason for f in summary.failures} == {reason}
    assert summary.transient == ({f.key for f in summary.failures} if transient else set())
    assert len(scripted.received) <= 2  # the calls in flight when the first answer came back

    scripted.script = labels_answer  # credentials renewed: the rerun retries every photo
    _, again = run(settings, str(photos))
    assert (again.indexed, again.failed) == (6, 0)


def test_no_credentials_is_one_clear_line(
    scripted: ScriptedRekognition, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    _, summary = run(settings_for(tmp_path, scripted.url), str(photos))
    assert summary.failed == 6 and scripted.received == []
    assert {f.reason for f in summary.failures} == {
        "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
        "or run where an IAM role is available"
    }


def test_region_without_rekognition_fails_each_photo_without_a_call(photos: Path, tmp_path: Path):
    """eu-north-1 has S3 but (in botocore's endpoint data) no Rekognition: nothing is sent."""
    settings = settings_for(tmp_path, None, rekognition={"region": "eu-north-1"})
    pipeline, summary = run(settings, str(photos))
    assert summary.failed == 6
    (reason,) = {f.reason for f in summary.failures}
    assert reason.startswith("Rekognition is not offered in region eu-north-1: set ")
    assert "eu-west-1" in reason
    assert pipeline.remote_analyzers[0].usage["calls"] == 0


def test_unreachable_endpoint_fails_fast_after_the_first_photo(photos: Path, tmp_path: Path):
    from _rekognition_servers import free_port

    settings = settings_for(
        tmp_path,
        f"http://127.0.0.1:{free_port()}",
        workers=1,
        rekognition={"max_attempts": 2, "concurrency": 1},
    )
    started = time.monotonic()
    pipeline, summary = run(settings, str(photos))
    assert summary.failed == 6 and summary.transient == {f.key for f in summary.failures}
    reason = summary.failures[0].reason
    assert reason.startswith("cannot reach Rekognition at http://127.0.0.1:")
    assert pipeline.remote_analyzers[0].usage["calls"] == 2  # one photo's attempts, then paused
    assert time.monotonic() - started < 30


def test_s3object_the_service_cannot_read_names_the_object_and_the_fix(
    scripted: ScriptedRekognition, moto_server: Process, tmp_path: Path
):
    client = boto3.client(
        "s3",
        endpoint_url=moto_server.url,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    client.create_bucket(Bucket="unreadable")
    client.put_object(Bucket="unreadable", Key="a.jpg", Body=b"\xff\xd8 jpeg-ish")
    scripted.script = lambda received, number: error(
        "InvalidS3ObjectException", "Unable to get object metadata from S3."
    )
    settings = settings_for(
        tmp_path,
        scripted.url,
        s3={"endpoint_url": moto_server.url},
        rekognition={"s3object": "always"},
    )
    _, summary = run(settings, "s3://unreadable/")
    assert [f.reason for f in summary.failures] == [
        "Rekognition cannot read s3://unreadable/a.jpg: Unable to get object metadata from S3. "
        "(the caller needs s3:GetObject on it, and the bucket must be in Rekognition's region "
        "us-east-1)"
    ]


def test_event_consumer_redelivers_what_rekognition_throttled(
    scripted: ScriptedRekognition, moto_server: Process, tmp_path: Path
):
    """Worker and Lambda: a throttled photo is left for redelivery, not recorded as bad."""
    client = boto3.client(
        "s3",
        endpoint_url=moto_server.url,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    client.create_bucket(Bucket="events")
    etag = client.put_object(Bucket="events", Key="a.jpg", Body=b"x")["ETag"].strip('"')
    scripted.script = lambda received, number: error("ThrottlingException", "Rate exceeded")
    settings = settings_for(
        tmp_path,
        scripted.url,
        s3={"endpoint_url": moto_server.url},
        rekognition={"s3object": "always", "max_attempts": 2},
    )
    applier = ChangeApplier(build_pipeline(settings), client=client)
    outcome = applier.apply([Change("created", "events", "a.jpg", size=1, etag=etag)])
    assert outcome.retry == {("events", "a.jpg")} and outcome.failures == []
    scripted.script = labels_answer
    outcome = applier.apply([Change("created", "events", "a.jpg", size=1, etag=etag)])
    assert outcome.indexed == 1 and outcome.retry == set()


def test_rate_limit_spaces_calls_even_with_many_threads(
    scripted: ScriptedRekognition, photos: Path, tmp_path: Path
):
    settings = settings_for(tmp_path, scripted.url, rekognition={"rate": 8.0, "concurrency": 6})
    _, summary = run(settings, str(photos))
    assert summary.indexed == 6
    arrivals = [r.at for r in scripted.received]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert min(gaps) >= 0.125 * 0.8, gaps  # 8/s; a little slack for thread wake-up jitter
    assert arrivals[-1] - arrivals[0] >= 5 * 0.125 * 0.95
