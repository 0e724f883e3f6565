"""The stack's resources, made as the constructs define them, and its data staged as on deploy.

The KMS key is created and the bucket's default encryption is SSE-KMS with it (moto accepts it and
reports aws:kms on objects; it does not really encrypt).
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse

from finetune.aws.staging import DIGEST_METADATA_KEY
from finetune.cli.rehearsal.state import RehearsalState
from finetune.cli.rehearsal.timeline import Deviation
from finetune.core import names
from finetune.core.config import DataFile, FineTuningConfig
from finetune.core.contracts import UploadResource


def corrupt(data: bytes) -> tuple[bytes, int]:
    """The data with its middle line replaced by a truncated JSON object; (bytes, that line's number)."""
    lines = data.splitlines(keepends=True)
    if not lines:
        return b'{"truncated": \n', 1
    index = len(lines) // 2
    lines[index] = b'{"messages": [{"role": "user", "content": "cut off here\n'
    return b"".join(lines), index + 1


def create_key(state: RehearsalState) -> str:
    kms = state.clients["kms"]
    key = kms.create_key(
        Description=f"Encrypts training data, job output, logs and queues of {state.stack_name}"
    )
    state.key_arn = str(key["KeyMetadata"]["Arn"])
    kms.enable_key_rotation(KeyId=state.key_arn)
    return f"{state.key_arn} (rotation on)"


def create_bucket(state: RehearsalState) -> str:
    s3 = state.clients["s3"]
    stack = state.stack_name
    state.bucket = f"{stack}-trainingdata"[:63]
    state.assets_bucket = f"cdk-assets-{state.account}-{state.region}"
    state.responses_bucket = f"cloudformation-custom-resource-response-{state.region.replace('-', '')}"
    location = (
        {}
        if state.region == "us-east-1"
        else {"CreateBucketConfiguration": {"LocationConstraint": state.region}}
    )
    for name in (state.bucket, state.assets_bucket, state.responses_bucket):
        s3.create_bucket(Bucket=name, **location)
    s3.put_bucket_versioning(Bucket=state.bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=state.bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": state.key_arn,
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    s3.put_public_access_block(
        Bucket=state.bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    versioning = s3.get_bucket_versioning(Bucket=state.bucket).get("Status")
    if versioning != "Enabled":
        raise Deviation(f"bucket {state.bucket}: versioning is {versioning!r}, the stack enables it")
    return f"s3://{state.bucket} (versioned, SSE-KMS with the key, public access blocked)"


def bedrock_role(state: RehearsalState, name: str, jobs: str) -> str:
    """A role only Bedrock jobs of kind `jobs` (`model-customization-job`, `evaluation-job`) of
    this account and region may assume, as the constructs define it; its ARN. The trust policy is
    read back: a role that trusts anyone but Bedrock is a deviation."""
    iam = state.clients["iam"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "bedrock.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": state.account},
                    "ArnLike": {"aws:SourceArn": f"arn:aws:bedrock:{state.region}:{state.account}:{jobs}/*"},
                },
            }
        ],
    }
    role = iam.create_role(
        RoleName=f"{state.stack_name}-{name}"[:64],
        AssumeRolePolicyDocument=json.dumps(trust),
    )["Role"]
    stored = iam.get_role(RoleName=role["RoleName"])["Role"]["AssumeRolePolicyDocument"]
    document = json.loads(urllib.parse.unquote(stored)) if isinstance(stored, str) else stored
    principal = document["Statement"][0]["Principal"]
    if principal != {"Service": "bedrock.amazonaws.com"}:
        raise Deviation(f"role {role['Arn']} trusts {principal}, expected bedrock.amazonaws.com only")
    return str(role["Arn"])


def create_role(state: RehearsalState) -> str:
    state.role_arn = bedrock_role(state, "CustomizationRole", "model-customization-job")
    return f"{state.role_arn} (trusted by bedrock.amazonaws.com, SourceAccount/SourceArn conditions)"


def create_evaluation_role(state: RehearsalState) -> str:
    """The evaluation jobs' service role (ModelEvaluationRole)."""
    state.evaluation_role_arn = bedrock_role(state, "EvaluationRole", "evaluation-job")
    return f"{state.evaluation_role_arn} (trusted by Bedrock evaluation jobs of this account and region)"


def create_topic(state: RehearsalState) -> str:
    sns, sqs = state.clients["sns"], state.clients["sqs"]
    state.topic_arn = str(
        sns.create_topic(
            Name=f"{state.stack_name}-Notifications", Attributes={"KmsMasterKeyId": state.key_arn}
        )["TopicArn"]
    )
    state.mailbox_url = str(sqs.create_queue(QueueName=f"{state.stack_name}-mailbox")["QueueUrl"])
    queue_arn = sqs.get_queue_attributes(QueueUrl=state.mailbox_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sns.subscribe(TopicArn=state.topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return f"{state.topic_arn} (a queue subscribed in place of the e-mail addresses)"


# What the stack stages, by kind: (its prefix, the upload's logical id).
STAGED = {
    "training": (names.TRAINING_PREFIX, "TrainingDataUploadResource"),
    "validation": (names.VALIDATION_PREFIX, "ValidationDataUploadResource"),
    "evaluation": (names.EVALUATION_DATA_PREFIX, "EvaluationDataUploadResource"),
}


def data_file(state: RehearsalState, which: str) -> DataFile:
    config: FineTuningConfig = state.config
    data = {
        "training": config.training_data,
        "validation": config.validation_data,
        "evaluation": config.evaluation_data,
    }[which]
    if data is None:
        raise Deviation(f"the plan has no {which} data to stage")
    return data


def staged_kinds(state: RehearsalState) -> list[str]:
    kinds = ["training"]
    if state.plan.validation is not None:
        kinds.append("validation")
    if state.gated:
        kinds.append("evaluation")
    return kinds


def asset_bytes(state: RehearsalState, which: str) -> bytes:
    content: bytes = data_file(state, which).path.read_bytes()
    if which == "training" and state.bad_data:
        content, state.bad_line = corrupt(content)
    return content


def upload_assets(state: RehearsalState) -> str:
    s3 = state.clients["s3"]
    uploaded = []
    for which in staged_kinds(state):
        content = asset_bytes(state, which)
        sha256 = hashlib.sha256(content).hexdigest()
        s3.put_object(Bucket=state.assets_bucket, Key=f"{sha256}.jsonl", Body=content)
        state.staged[which] = ("", sha256)
        uploaded.append(f"{which} {len(content)} bytes")
    note = f" (training line {state.bad_line} corrupted)" if state.bad_data else ""
    return f"s3://{state.assets_bucket}: " + ", ".join(uploaded) + note


def stage(state: RehearsalState, which: str) -> str:
    from finetune.runtime import training_data_upload

    data = data_file(state, which)
    _, sha256 = state.staged[which]
    prefix, logical_id = STAGED[which]
    head = state.clients["s3"].head_object(Bucket=state.assets_bucket, Key=f"{sha256}.jsonl")
    upload = UploadResource(
        source_bucket=state.assets_bucket,
        source_key=f"{sha256}.jsonl",
        bucket=state.bucket,
        key=names.staged_key(prefix, state.fine_tuning, sha256, data.path.name),
        sha256=sha256,
        size_bytes=int(head["ContentLength"]),
    )
    event = state.cfn_event(
        "Create", UploadResource.RESOURCE_TYPE, logical_id, "DataStaging", upload.to_properties()
    )
    response = state.invoke_custom_resource(training_data_upload.handler, event, "DataStaging")
    if response["Status"] != "SUCCESS":
        raise Deviation(
            f"Custom::TrainingDataUpload Create answered {response['Status']}: {response['Reason']}"
        )
    uri = str(response["Data"]["S3Uri"])
    staged = state.clients["s3"].head_object(Bucket=state.bucket, Key=upload.key)
    if staged.get("Metadata", {}).get(DIGEST_METADATA_KEY) != sha256:
        raise Deviation(f"{uri} carries no sha256 metadata {sha256}")
    state.staged[which] = (uri, sha256)
    return f"{uri} (SUCCESS; {staged.get('ServerSideEncryption', 'no')} encryption)"
