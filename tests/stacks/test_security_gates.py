"""The security gates: cfn-lint on every synthesized template, cdk-nag (v3) failing synth, acknowledgments."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

import app as app_module
from cdk_constructs.nag import acknowledge
from tests.conftest import SynthesizedApp, sample_context


def test_cfn_lint_finds_nothing_in_any_template(sample_app: SynthesizedApp) -> None:
    templates = [str(path) for path in sample_app.template_files()]
    assert len(templates) == 4
    # W3005 (redundant DependsOn) is CDK's own output, the one check the project ignores.
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--ignore-checks", "W3005", "--", *templates],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_sample_app_passes_every_nag_pack_with_acknowledgments_recorded(sample_app: SynthesizedApp) -> None:
    # The fixture's synth raises on any unacknowledged finding; here: the acknowledgments carry reasons.
    metadata_key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    acknowledged = [
        entry.data
        for construct in sample_app.stack("dev", "support-assistant").node.find_all()
        for entry in construct.node.metadata
        if entry.type == metadata_key
    ]
    assert acknowledged, "expected acknowledged findings in the construct metadata"
    findings = {finding: reason for data in acknowledged for finding, reason in data.items()}
    assert any("AwsSolutions-IAM5" in finding for finding in findings)
    assert any("NIST.800.53.R5-LambdaInsideVPC" in finding for finding in findings)
    for finding, reason in findings.items():
        assert len(reason) >= 40, (finding, reason)


def test_an_unacknowledged_finding_fails_synth(
    tmp_path_factory: pytest.TempPathFactory, sample_app: SynthesizedApp
) -> None:
    app = app_module.create_app(
        sample_app.plans[:1], context=sample_context(), outdir=str(tmp_path_factory.mktemp("nag"))
    )
    stage = next(child for child in app.node.children if isinstance(child, cdk.Stage))
    stack = next(child for child in stage.node.children if isinstance(child, cdk.Stack))
    s3.Bucket(stack, "CarelessBucket")  # no TLS policy, no logging, no versioning
    with pytest.raises(Exception, match="ValidationFailed") as raised:
        app.synth()
    message = str(raised.value)
    assert "dev/support-assistant/CarelessBucket/Resource" in message
    assert "AwsSolutions-S10" in message and "NIST.800.53.R5-S3BucketSSLRequestsOnly" in message
    assert "TrainingDataBucket" not in message  # only the careless bucket is reported


@pytest.mark.parametrize("reason", ["", "ok", "False positive.", "needed", "short but not empty"])
def test_acknowledgments_need_a_specific_reason(reason: str) -> None:
    stack = cdk.Stack(cdk.App(), "Stack")
    with pytest.raises(ValueError, match="needs a specific reason"):
        acknowledge(stack, "AwsSolutions-IAM5", reason)


def test_acknowledgments_need_a_finding_id() -> None:
    stack = cdk.Stack(cdk.App(), "Stack")
    with pytest.raises(ValueError, match="not a cdk-nag finding id"):
        acknowledge(stack, "wildcards are fine", "A long enough reason that still names no finding at all.")
