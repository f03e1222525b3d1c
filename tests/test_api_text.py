"""DetectText through the Rekognition-compatible endpoint: the plain JSON door, the AWS JSON 1.1
door with an unmodified boto3 client against a real pixdex server, Rekognition's filters, limits
and error names."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from _http import LocalClient

from pixdex.analyzers.text import TextDetector
from pixdex.api.app import create_app
from pixdex.api.server import BackgroundServer
from pixdex.config import Settings
from pixdex.indexes.sqlite import SqliteIndex


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("api-text")
    index = SqliteIndex(tmp / "index.db")
    settings = Settings(index=index.location)
    app = create_app(settings, index)
    yield app, settings
    index.close()


@pytest.fixture(scope="module")
def stop_sign(coco_dir: Path) -> bytes:
    return (coco_dir / "images" / "000000000151.jpg").read_bytes()


def test_boto3_detect_text_against_pixdex_serve(served, stop_sign: bytes, coco_dir: Path):
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    app, settings = served
    expected = TextDetector(settings).detect_bytes(stop_sign)
    with BackgroundServer(app) as server:
        rekognition = boto3.client(
            "rekognition",
            endpoint_url=f"{server.url}/rekognition",
            region_name="us-east-1",
            aws_access_key_id="any",
            aws_secret_access_key="any",
            config=Config(retries={"max_attempts": 1}),
        )
        answer = rekognition.detect_text(Image={"Bytes": stop_sign})
        assert answer["TextDetections"] == json.loads(json.dumps(expected["TextDetections"]))
        assert answer["TextModelVersion"] == expected["TextModelVersion"]
        line, word = answer["TextDetections"]
        assert (line["Type"], line["DetectedText"], line["Id"]) == ("LINE", "STOP", 0)
        assert (word["Type"], word["ParentId"], word["Id"]) == ("WORD", 0, 1)
        assert set(word["Geometry"]) == {"BoundingBox", "Polygon"}
        assert len(word["Geometry"]["Polygon"]) == 4

        # Filters, as Rekognition takes them: the sign is in the left half of the photo
        box = word["Geometry"]["BoundingBox"]
        inside = {"BoundingBox": {"Left": 0.0, "Top": 0.0, "Width": 0.6, "Height": 1.0}}
        outside = {"BoundingBox": {"Left": 0.7, "Top": 0.0, "Width": 0.3, "Height": 1.0}}
        assert box["Left"] + box["Width"] < 0.6
        kept = rekognition.detect_text(
            Image={"Bytes": stop_sign}, Filters={"RegionsOfInterest": [inside]}
        )
        assert [d["DetectedText"] for d in kept["TextDetections"]] == ["STOP", "STOP"]
        dropped = rekognition.detect_text(
            Image={"Bytes": stop_sign}, Filters={"RegionsOfInterest": [outside]}
        )
        assert dropped["TextDetections"] == []
        tall = rekognition.detect_text(
            Image={"Bytes": stop_sign},
            Filters={"WordFilter": {"MinBoundingBoxHeight": min(1.0, box["Height"] * 2)}},
        )
        assert tall["TextDetections"] == []

        # a photo without text: an empty list, not an error
        free = json.loads((Path(__file__).parent / "data" / "coco128_text.json").read_text())
        plain = (coco_dir / "images" / free["text_free"][0]).read_bytes()
        assert rekognition.detect_text(Image={"Bytes": plain})["TextDetections"] == []

        with pytest.raises(ClientError) as error:
            rekognition.detect_text(Image={"Bytes": b"not an image"})
        assert error.value.response["Error"]["Code"] == "InvalidImageFormatException"
        with pytest.raises(ClientError) as error:
            rekognition.detect_text(
                Image={"Bytes": stop_sign}, Filters={"WordFilter": {"MinConfidence": 101}}
            )
        assert error.value.response["Error"]["Code"] == "InvalidParameterException"


@pytest.mark.parametrize(
    ("body", "kind", "mentions"),
    [
        (b"not json", "InvalidParameterException", "not JSON"),
        (json.dumps({"Image": {}}).encode(), "InvalidParameterException", "Image"),
        (
            json.dumps({"Image": {"Bytes": "AAAA"}, "Filters": []}).encode(),
            "InvalidParameterException",
            "Filters",
        ),
        (
            json.dumps(
                {
                    "Image": {"Bytes": "AAAA"},
                    "Filters": {"RegionsOfInterest": [{"BoundingBox": {"Left": 2}}]},
                }
            ).encode(),
            "InvalidParameterException",
            "RegionsOfInterest[0].BoundingBox.Left",
        ),
        (
            json.dumps(
                {"Image": {"Bytes": "AAAA"}, "Filters": {"RegionsOfInterest": [{}] * 11}}
            ).encode(),
            "InvalidParameterException",
            "at most 10",
        ),
        (
            json.dumps(
                {"Image": {"Bytes": base64.b64encode(b"0" * (5 * 2**20 + 1)).decode()}}
            ).encode(),
            "ImageTooLargeException",
            "limit",
        ),
        (b"x" * (8 * 2**20), "ImageTooLargeException", "request is"),
    ],
)
def test_detect_text_rejects_bad_requests_like_rekognition(served, body, kind, mentions):
    app, _ = served
    with LocalClient(app) as client:
        for door, headers in (
            ("/rekognition/detect-text", {}),
            ("/rekognition", {"X-Amz-Target": "RekognitionService.DetectText"}),
        ):
            response = client.post(door, content=body, headers=headers)
            assert response.status_code == 400, response.text
            assert response.json()["__type"] == kind
            assert mentions in response.json()["Message"]


def test_plain_door_answers_the_same(served, stop_sign: bytes):
    app, settings = served
    with LocalClient(app) as client:
        response = client.post(
            "/rekognition/detect-text",
            json={
                "Image": {"Bytes": base64.b64encode(stop_sign).decode()},
                "Filters": {"WordFilter": {"MinConfidence": 50}},
            },
        )
    assert response.status_code == 200
    assert [d["DetectedText"] for d in response.json()["TextDetections"]] == ["STOP", "STOP"]
