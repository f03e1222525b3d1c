"""deploy/aws/template.yaml: valid CloudFormation/SAM (cfn-lint, offline) with least privilege."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "aws" / "template.yaml"


@pytest.fixture(scope="module")
def template() -> dict:
    decode = pytest.importorskip("cfnlint.decode", reason="cfn-lint (dev extra) not installed")
    parsed, problems = decode.decode(str(TEMPLATE))
    assert not problems, problems
    return parsed


def test_cfn_lint_passes():
    cli = shutil.which("cfn-lint", path=str(Path(sys.executable).parent)) or shutil.which(
        "cfn-lint"
    )
    if cli is None:
        pytest.skip("cfn-lint (dev extra) not installed")
    done = subprocess.run([cli, str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_resources_and_trigger(template: dict):
    resources = template["Resources"]
    types = {name: r["Type"] for name, r in resources.items()}
    assert types["IndexerFunction"] == "AWS::Serverless::Function"
    assert types["PhotosBucket"] == "AWS::S3::Bucket"
    assert types["InvokePermission"] == "AWS::Lambda::Permission"
    assert types["QueueMapping"] == "AWS::Lambda::EventSourceMapping"
    mapping = resources["QueueMapping"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "RedrivePolicy" in resources["EventsQueue"]["Properties"]

    env = resources["IndexerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["PIXDEX_INDEX"] == {
        "Fn::Sub": "opensearch+https://${OpenSearchDomainEndpoint}/${IndexName}"
    }
    # every notification is filtered by the prefix and a suffix, for created and removed objects
    notifications = resources["PhotosBucket"]["Properties"]["NotificationConfiguration"]
    configs = [
        entry["Fn::If"][1]
        for kind in ("LambdaConfigurations", "QueueConfigurations")
        for entry in notifications[kind]
    ]
    assert len(configs) == 16
    for config in configs:
        names = [rule["Name"] for rule in config["Filter"]["S3Key"]["Rules"]]
        assert names == ["prefix", "suffix"]
    assert {c["Event"] for c in configs} == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}


def test_iam_is_least_privilege(template: dict):
    policies = template["Resources"]["IndexerFunction"]["Properties"]["Policies"]
    always = [s for s in policies[0]["Statement"]]
    by_sid = {s["Sid"]: s for s in always}
    assert by_sid["ReadImagesUnderThePrefix"]["Action"] == "s3:GetObject"
    assert by_sid["ReadImagesUnderThePrefix"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}/${Prefix}*"
    }
    assert sorted(by_sid["WriteTheIndex"]["Action"]) == [
        "es:ESHttpDelete",
        "es:ESHttpGet",
        "es:ESHttpHead",
        "es:ESHttpPost",
        "es:ESHttpPut",
    ]
    assert by_sid["WriteTheIndex"]["Resource"] == {"Fn::Sub": "${OpenSearchDomainArn}/*"}
    actions = [
        a for s in always for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    assert not any(a.endswith("*") or a.startswith("rekognition:") for a in actions)
    # Rekognition only when chosen, DetectText only when text is asked for too
    condition, granted, otherwise = policies[1]["Fn::If"]
    assert condition == "UseRekognition" and otherwise == {"Ref": "AWS::NoValue"}
    assert [s["Action"] for s in granted["Statement"]] == ["rekognition:DetectLabels"]
    assert template["Conditions"]["UseRekognition"] == {
        "Fn::Equals": [{"Ref": "Analyzer"}, "rekognition"]
    }
    condition, granted, otherwise = policies[2]["Fn::If"]
    assert condition == "UseRekognitionText" and otherwise == {"Ref": "AWS::NoValue"}
    assert [s["Action"] for s in granted["Statement"]] == ["rekognition:DetectText"]
    assert template["Conditions"]["UseRekognitionText"] == {
        "Fn::And": [
            {"Condition": "UseRekognition"},
            {"Fn::Equals": [{"Ref": "RekognitionText"}, "true"]},
        ]
    }


def test_analyzer_parameters_reach_the_settings(template: dict):
    """The function's environment names real pixdex settings, so the parameters take effect."""
    from pixdex.config import env_name, setting_fields

    env = template["Resources"]["IndexerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["PIXDEX_ANALYZER"] == {"Ref": "Analyzer"}
    assert env["PIXDEX_REKOGNITION__TEXT"] == {"Ref": "RekognitionText"}
    assert env["PIXDEX_REKOGNITION__RATE"] == {"Ref": "RekognitionRate"}
    known = {env_name(dotted) for dotted, _ in setting_fields()}
    for name in env:
        if name.startswith("PIXDEX_"):
            assert name in known, name
    params = template["Parameters"]
    assert params["Analyzer"]["AllowedValues"] == ["local", "rekognition"]
    rate = float(params["RekognitionRate"]["Default"])
    concurrency = int(params["MaxConcurrency"]["Default"])
    assert rate * concurrency < 5  # all instances together stay below a 5 TPS quota
