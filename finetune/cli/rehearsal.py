"""A dress rehearsal of one fine-tuning's deployed lifecycle, against moto's server on loopback.

`rehearse()` starts moto's threaded server on 127.0.0.1 (a free port), points boto3 at it
(AWS_ENDPOINT_URL, fake credentials and the plan's region, for the duration only) and drives the
SAME handler code the stacks deploy, with the event shapes CloudFormation and EventBridge send:

1. the stack's resources: KMS key, training bucket (versioned, SSE-KMS), the Bedrock service role
   (trust as `BedrockCustomizationRole`), the SNS topic with a queue standing in for the e-mail
   subscription (it is how the rehearsal reads notifications);
2. `Custom::TrainingDataUpload` Create (finetune.runtime.training_data_upload) from an "assets" bucket;
3. `Custom::CustomizationJob` Create (finetune.runtime.customization_job_trigger) with the properties the
   stack passes, built from the plan; the same Create again (a CloudFormation retry);
4. `Custom::ServingLifecycle` Create (finetune.runtime.serving_lifecycle) as at deploy time;
5. the job completes (set in moto's backend: moto never finishes a job), the EventBridge job state
   event is delivered to the serving handler, the endpoint comes up, a scheduled reconcile writes
   the endpoint parameter, and the duplicate event changes nothing;
6. teardown: `Custom::ServingLifecycle` Delete, then `Custom::CustomizationJob` Delete.

With `bad_data`, a corrupted copy of the training file goes through the rejection paths instead:
the deploy-time Create fails naming `s3://...:LINE`, and an upload under `incoming/` is tagged
rejected and reported on the topic; no job exists at any point.

How the calls moto lacks are served: provisioned throughput and custom model deployment calls are
answered by `finetune.cli.local_serving.FakeBedrockServing`, which wraps a real boto3 Bedrock client on
the moto endpoint (customization jobs, tags: moto over HTTP). For the rehearsal only,
`finetune.runtime.serving_lifecycle.clients` is replaced by a function returning clients built on that fake
(the handler's other code is untouched), and restored afterwards. The other handlers' cached clients
are cleared before and after, so they are created on the moto endpoint and dropped afterwards.

Custom resource responses go where CloudFormation's go: a pre-signed S3 PUT URL (into a bucket of
the moto server); the rehearsal reads each response back from there.

Decisions:
- The KMS key is created and the bucket's default encryption is SSE-KMS with it (moto accepts it
  and reports aws:kms on objects; it does not really encrypt).
- moto's state is process-wide: the server's state is reset (`/moto-api/reset`) before and after.
- Handler logs (the root logger's JSON lines) are captured, not printed; `verbose` prints them under
  the step that produced them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finetune.aws import jobs, serving
from finetune.core import names as identity
from finetune.core.plan import FineTuningPlan

ModeChoice = serving.Mode
TRAINING_PREFIX = "training/"  # as cdk_constructs.training_data_bucket (not imported: it imports aws_cdk)
VALIDATION_PREFIX = "validation/"
OUTPUT_PREFIX = "output/"
INCOMING_PREFIX = "incoming/"
LAMBDA_TIMEOUT_MS = 15 * 60 * 1000  # both functions run up to 15 minutes
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "rehearsal",
    "AWS_SECRET_ACCESS_KEY": "rehearsal",
}
# Every variable the rehearsal sets or must hide for its duration (restored afterwards).
SAVED_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "FINETUNE_SERVING",
    "FINETUNE_TOPIC_ARN",
    "FINETUNE_JOB_TEMPLATE",
    "FINETUNE_INCOMING_PREFIX",
    "FINETUNE_TRAINING_PREFIX",
)


class Deviation(Exception):  # noqa: N818 (a step's outcome, not an error of the code)
    """A step's outcome differs from what the deployed lifecycle must do."""


@dataclass(frozen=True)
class Step:
    """One line of the timeline."""

    at: datetime
    name: str
    ok: bool
    detail: str
    logs: tuple[str, ...] = ()

    def line(self) -> str:
        stamp = self.at.strftime("%H:%M:%S.%f")[:-3]
        return f"{stamp}  {self.name}  {'ok' if self.ok else 'FAILED'}  {self.detail}"


@dataclass
class Result:
    """The timeline of one rehearsal."""

    stack: str
    bad_data: bool
    serving_mode: str
    endpoint_url: str = ""
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    @property
    def first_deviation(self) -> Step | None:
        return next((step for step in self.steps if not step.ok), None)

    def outcomes(self) -> list[tuple[str, bool]]:
        return [(step.name, step.ok) for step in self.steps]

    def summary(self) -> str:
        kind = "rejection of bad data" if self.bad_data else f"lifecycle (serving mode {self.serving_mode})"
        failed = self.first_deviation
        if failed is None:
            return f"rehearsal of {self.stack}: {kind}: all {len(self.steps)} steps behaved as deployed code must"
        return (
            f"rehearsal of {self.stack}: {kind}: step {failed.name} deviated: {failed.detail} "
            f"({sum(step.ok for step in self.steps)} of {len(self.steps)} steps ok before it)"
        )


class _LogCapture(logging.Handler):
    """Collects what the handlers log (their root logger's JSON lines) for the current step."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "root":
            self.lines.append(record.getMessage())

    def take(self) -> tuple[str, ...]:
        taken, self.lines = tuple(self.lines), []
        return taken


@dataclass
class _Context:
    """The parts of a Lambda context the handlers read."""

    function_name: str
    aws_request_id: str = "rehearsal"

    def get_remaining_time_in_millis(self) -> int:
        return LAMBDA_TIMEOUT_MS


def find_plan(plans: tuple[FineTuningPlan, ...], environment: str, fine_tuning: str) -> FineTuningPlan:
    """The plan of `<environment>/<fine_tuning>`; LookupError names the known ones."""
    for plan in plans:
        if plan.config.environment.name == environment and plan.config.name == fine_tuning:
            return plan
    known = ", ".join(f"{plan.config.environment.name} {plan.config.name}" for plan in plans)
    raise LookupError(f"no fine-tuning {fine_tuning!r} in environment {environment!r}; known: {known}")


def corrupt(data: bytes) -> tuple[bytes, int]:
    """The data with its middle line replaced by a truncated JSON object; (bytes, that line's number)."""
    lines = data.splitlines(keepends=True)
    if not lines:
        return b'{"truncated": \n', 1
    index = len(lines) // 2
    lines[index] = b'{"messages": [{"role": "user", "content": "cut off here\n'
    return b"".join(lines), index + 1


@contextlib.contextmanager
def moto_endpoint() -> Iterator[str]:
    """moto's threaded server on a free loopback port; yields its URL. Its state is reset before and after."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        _reset(url)
        yield url
    finally:
        with contextlib.suppress(OSError):
            _reset(url)
        server.stop()


def _reset(url: str) -> None:
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()


@contextlib.contextmanager
def aws_pointed_at(url: str, region: str) -> Iterator[None]:
    """os.environ (and boto3's default session) aimed at `url` with fake credentials; restored after."""
    import boto3

    hidden = [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL_")]
    saved = {name: os.environ.get(name) for name in (*SAVED_VARIABLES, *hidden)}
    saved_session = boto3.DEFAULT_SESSION
    try:
        for name in saved:
            os.environ.pop(name, None)
        os.environ.update(FAKE_CREDENTIALS)
        os.environ["AWS_ENDPOINT_URL"] = url
        os.environ["AWS_DEFAULT_REGION"] = region
        os.environ["AWS_REGION"] = region
        # No profile or config file may redirect an endpoint or add credentials.
        os.environ["AWS_CONFIG_FILE"] = os.devnull
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        boto3.DEFAULT_SESSION = None
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        boto3.DEFAULT_SESSION = saved_session


class Rehearsal:
    """Runs the steps in order; the first deviation stops it (later steps depend on earlier ones)."""

    def __init__(
        self,
        plan: FineTuningPlan,
        *,
        serving_mode: ModeChoice,
        bad_data: bool,
        verbose: bool,
        out: Callable[[str], None],
    ) -> None:
        self.plan = plan
        self.config = plan.config
        self.environment = plan.config.environment.name
        self.fine_tuning = plan.config.name
        self.region = plan.config.region
        self.serving_mode: ModeChoice = serving_mode
        self.bad_data = bad_data
        self.verbose = verbose
        self.out = out
        self.result = Result(stack=plan.config.stack_name, bad_data=bad_data, serving_mode=serving_mode)
        self.capture = _LogCapture()
        # Set by the steps, for the later ones.
        self.account = ""
        self.clients: dict[str, Any] = {}
        self.fake: Any = None
        self.key_arn = ""
        self.bucket = ""
        self.assets_bucket = ""
        self.responses_bucket = ""
        self.role_arn = ""
        self.topic_arn = ""
        self.mailbox_url = ""
        self.staged: dict[str, tuple[str, str]] = {}  # "training"/"validation" -> (s3 uri, sha256)
        self.spec = plan.job_spec
        self.bad_line = 0
        self.job_properties: dict[str, str] = {}
        self.job_physical_id = ""
        self.completion_event: dict[str, Any] = {}
        self.notifications: list[tuple[str, str]] = []
        self.response_keys: dict[str, str] = {}  # request id -> key of CloudFormation's response object

    # -- running ---------------------------------------------------------------------------------

    def run(self) -> Result:
        root = logging.getLogger()
        werkzeug = logging.getLogger("werkzeug")
        saved_levels = (root.level, werkzeug.level)
        root.addHandler(self.capture)
        werkzeug.setLevel(logging.ERROR)  # no request log lines from the server thread
        try:
            with moto_endpoint() as url:
                self.result.endpoint_url = url
                with aws_pointed_at(url, self.region), self._handler_clients():
                    self._record("server", lambda: f"moto {url} (region {self.region})")
                    for name, action in self._steps():
                        if not self._record(name, action):
                            break
        finally:
            root.removeHandler(self.capture)
            root.setLevel(saved_levels[0])
            werkzeug.setLevel(saved_levels[1])
        return self.result

    def _steps(self) -> list[tuple[str, Callable[[], str]]]:
        setup: list[tuple[str, Callable[[], str]]] = [
            ("kms-key", self.create_key),
            ("bucket", self.create_bucket),
            ("role", self.create_role),
            ("topic", self.create_topic),
            ("assets", self.upload_assets),
            ("stage-training", lambda: self.stage("training")),
        ]
        if self.plan.validation is not None:
            setup.append(("stage-validation", lambda: self.stage("validation")))
        if self.bad_data:
            return [
                *setup,
                ("job-create-rejected", self.create_job_rejected),
                ("no-job", lambda: self.expect_jobs(0)),
                ("rollback-delete", self.rollback_delete),
                ("upload-rejected", self.upload_rejected),
                ("upload-tagged", self.upload_tagged),
                ("upload-notified", self.upload_notified),
                ("still-no-job", lambda: self.expect_jobs(0)),
            ]
        return [
            *setup,
            ("job-create", self.create_job),
            ("one-job", lambda: self.expect_jobs(1)),
            ("job-create-retry", self.create_job_again),
            ("serving-create", self.create_serving),
            ("job-completes", self.complete_job),
            ("completion-event", self.deliver_completion),
            ("scheduled-reconcile", self.endpoint_ready),
            ("duplicate-event", self.deliver_duplicate),
            ("notifications", self.check_notifications),
            ("serving-none", self.serve_nothing),
            ("serving-back", self.serve_again),
            ("serving-delete", self.delete_serving),
            *self._failed_create_steps(),
            ("job-delete", self.delete_job),
        ]

    def _failed_create_steps(self) -> list[tuple[str, Callable[[], str]]]:
        if self.serving_mode == "none":
            return []
        return [
            ("redeploy-job", self.redeploy_job),
            ("serving-create-fails", self.create_serving_failing),
            ("serving-rollback-delete", self.delete_serving),
        ]

    def _record(self, name: str, action: Callable[[], str]) -> bool:
        try:
            detail, ok = action(), True
        except Deviation as deviation:
            detail, ok = str(deviation), False
        except Exception as error:  # an unexpected failure is a deviation too, with its type
            detail, ok = f"{type(error).__name__}: {error}", False
        step = Step(datetime.now(), name, ok, " ".join(detail.split()), self.capture.take())
        self.result.steps.append(step)
        self.out(step.line())
        if self.verbose:
            for line in step.logs:
                self.out(f"              | {line}")
        return ok

    @contextlib.contextmanager
    def _handler_clients(self) -> Iterator[None]:
        """The handlers' cached clients, recreated on the endpoint; serving's on the local fake."""
        import boto3

        from finetune.cli.local_serving import FakeBedrockServing
        from finetune.runtime import customization_job_trigger as trigger_job
        from finetune.runtime import serving_lifecycle as serving_handler
        from finetune.runtime import training_data_upload as stage_data

        cached = (
            trigger_job.bedrock_client,
            trigger_job.s3_client,
            trigger_job.sns_client,
            trigger_job.ssm_client,
            stage_data.s3_client,
        )
        for function in cached:
            function.cache_clear()
        for service in (
            "s3",
            "iam",
            "kms",
            "sns",
            "sqs",
            "ssm",
            "sts",
            "bedrock",
            "cloudwatch",
            "cloudformation",
        ):
            self.clients[service] = boto3.client(service)
        self.account = str(self.clients["sts"].get_caller_identity()["Account"])
        self.fake = FakeBedrockServing(self.clients["bedrock"], region=self.region, account=self.account)
        fronted = serving.Clients(
            bedrock=self.fake,
            ssm=self.clients["ssm"],
            cloudwatch=self.clients["cloudwatch"],
            sns=self.clients["sns"],
            cloudformation=self.clients["cloudformation"],
        )
        original, original_pause = serving_handler.clients, serving_handler.pause
        serving_handler.clients = lambda: fronted  # type: ignore[assignment]
        # While a run waits for a PT to come up, time passes: the fake's creations finish.
        serving_handler.pause = lambda _seconds: self.fake.settle()
        try:
            yield
        finally:
            serving_handler.clients, serving_handler.pause = original, original_pause
            for function in cached:
                function.cache_clear()

    # -- helpers -----------------------------------------------------------------------------------

    @property
    def job_prefix(self) -> str:
        return f"{self.environment}-{self.fine_tuning}-"

    def _jobs(self) -> list[Mapping[str, Any]]:
        bedrock = self.clients["bedrock"]
        return [
            summary
            for summary in bedrock.list_model_customization_jobs(nameContains=self.job_prefix).get(
                "modelCustomizationJobSummaries", []
            )
            if serving.owns_job(self.environment, self.fine_tuning, str(summary["jobName"]))
        ]

    def _cfn_event(
        self,
        request_type: str,
        resource_type: str,
        logical_id: str,
        function: str,
        properties: Mapping[str, str],
        physical_id: str | None = None,
    ) -> dict[str, Any]:
        """A CloudFormation custom resource request, with a pre-signed S3 URL for the response."""
        request_id = str(uuid.uuid4())
        stack_id = self._stack_id
        response_key = f"{logical_id}/{request_id}"
        self.response_keys[request_id] = response_key
        url = self.clients["s3"].generate_presigned_url(
            "put_object", Params={"Bucket": self.responses_bucket, "Key": response_key}, ExpiresIn=7200
        )
        service_token = (
            f"arn:aws:lambda:{self.region}:{self.account}:function:{self.config.stack_name}-{function}"
        )
        event: dict[str, Any] = {
            "RequestType": request_type,
            "ServiceToken": service_token,
            "ResponseURL": url,
            "StackId": stack_id,
            "RequestId": request_id,
            "LogicalResourceId": logical_id,
            "ResourceType": resource_type,
            "ResourceProperties": {"ServiceToken": service_token, **properties},
        }
        if physical_id is not None:
            event["PhysicalResourceId"] = physical_id
        return event

    def _invoke_custom_resource(
        self, handler: Callable[[Mapping[str, Any], Any], Any], event: Mapping[str, Any], function: str
    ) -> dict[str, Any]:
        """Call the handler and read back what CloudFormation would have received."""
        handler(event, _Context(function_name=function))
        key = self.response_keys[str(event["RequestId"])]
        body = self.clients["s3"].get_object(Bucket=self.responses_bucket, Key=key)
        response: dict[str, Any] = json.loads(body["Body"].read())
        return response

    def _read_mailbox(self) -> list[tuple[str, str]]:
        sqs = self.clients["sqs"]
        received: list[tuple[str, str]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=self.mailbox_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                break
            for message in messages:
                envelope = json.loads(message["Body"])
                received.append((str(envelope.get("Subject", "")), str(envelope.get("Message", ""))))
                sqs.delete_message(QueueUrl=self.mailbox_url, ReceiptHandle=message["ReceiptHandle"])
        self.notifications += received
        return received

    def _endpoints(self) -> tuple[list[serving.Throughput], list[serving.Deployment]]:
        return (
            serving.find_throughputs(self.fake, self.environment, self.fine_tuning),
            serving.find_deployments(self.fake, self.environment, self.fine_tuning),
        )

    def _parameter(self, name: str) -> str | None:
        path = identity.ssm_parameter_name(self.environment, self.fine_tuning, name)
        try:
            return str(self.clients["ssm"].get_parameter(Name=path)["Parameter"]["Value"])
        except self.clients["ssm"].exceptions.ParameterNotFound:
            return None

    # -- the stack's resources ---------------------------------------------------------------------

    def create_key(self) -> str:
        kms = self.clients["kms"]
        key = kms.create_key(
            Description=f"Encrypts training data, job output, logs and queues of {self.config.stack_name}"
        )
        self.key_arn = str(key["KeyMetadata"]["Arn"])
        kms.enable_key_rotation(KeyId=self.key_arn)
        return f"{self.key_arn} (rotation on)"

    def create_bucket(self) -> str:
        s3 = self.clients["s3"]
        stack = self.config.stack_name
        self.bucket = f"{stack}-trainingdata"[:63]
        self.assets_bucket = f"cdk-assets-{self.account}-{self.region}"
        self.responses_bucket = f"cloudformation-custom-resource-response-{self.region.replace('-', '')}"
        location = (
            {}
            if self.region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
        )
        for name in (self.bucket, self.assets_bucket, self.responses_bucket):
            s3.create_bucket(Bucket=name, **location)
        s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(
            Bucket=self.bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": self.key_arn,
                        },
                        "BucketKeyEnabled": True,
                    }
                ]
            },
        )
        s3.put_public_access_block(
            Bucket=self.bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        versioning = s3.get_bucket_versioning(Bucket=self.bucket).get("Status")
        if versioning != "Enabled":
            raise Deviation(f"bucket {self.bucket}: versioning is {versioning!r}, the stack enables it")
        return f"s3://{self.bucket} (versioned, SSE-KMS with the key, public access blocked)"

    def create_role(self) -> str:
        iam = self.clients["iam"]
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "bedrock.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": self.account},
                        "ArnLike": {
                            "aws:SourceArn": f"arn:aws:bedrock:{self.region}:{self.account}:model-customization-job/*"
                        },
                    },
                }
            ],
        }
        role = iam.create_role(
            RoleName=f"{self.config.stack_name}-CustomizationRole"[:64],
            AssumeRolePolicyDocument=json.dumps(trust),
        )["Role"]
        self.role_arn = str(role["Arn"])
        stored = iam.get_role(RoleName=role["RoleName"])["Role"]["AssumeRolePolicyDocument"]
        document = json.loads(urllib.parse.unquote(stored)) if isinstance(stored, str) else stored
        principal = document["Statement"][0]["Principal"]
        if principal != {"Service": "bedrock.amazonaws.com"}:
            raise Deviation(f"role {self.role_arn} trusts {principal}, expected bedrock.amazonaws.com only")
        return f"{self.role_arn} (trusted by bedrock.amazonaws.com, SourceAccount/SourceArn conditions)"

    def create_topic(self) -> str:
        sns, sqs = self.clients["sns"], self.clients["sqs"]
        self.topic_arn = str(
            sns.create_topic(
                Name=f"{self.config.stack_name}-Notifications", Attributes={"KmsMasterKeyId": self.key_arn}
            )["TopicArn"]
        )
        self.mailbox_url = str(sqs.create_queue(QueueName=f"{self.config.stack_name}-mailbox")["QueueUrl"])
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.mailbox_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn)
        return f"{self.topic_arn} (a queue subscribed in place of the e-mail addresses)"

    def _asset_bytes(self, which: str) -> bytes:
        data = self.config.training_data if which == "training" else self.config.validation_data
        assert data is not None
        content = data.path.read_bytes()
        if which == "training" and self.bad_data:
            content, self.bad_line = corrupt(content)
        return content

    def upload_assets(self) -> str:
        s3 = self.clients["s3"]
        uploaded = []
        for which in ("training", "validation") if self.plan.validation is not None else ("training",):
            content = self._asset_bytes(which)
            sha256 = hashlib.sha256(content).hexdigest()
            s3.put_object(Bucket=self.assets_bucket, Key=f"{sha256}.jsonl", Body=content)
            self.staged[which] = ("", sha256)
            uploaded.append(f"{which} {len(content)} bytes")
        note = f" (training line {self.bad_line} corrupted)" if self.bad_data else ""
        return f"s3://{self.assets_bucket}: " + ", ".join(uploaded) + note

    # -- Custom::TrainingDataUpload ----------------------------------------------------------------

    def stage(self, which: str) -> str:
        from finetune.aws import staging
        from finetune.runtime import training_data_upload as stage_data

        data = self.config.training_data if which == "training" else self.config.validation_data
        assert data is not None
        _, sha256 = self.staged[which]
        prefix = TRAINING_PREFIX if which == "training" else VALIDATION_PREFIX
        head = self.clients["s3"].head_object(Bucket=self.assets_bucket, Key=f"{sha256}.jsonl")
        properties = {
            "SourceBucket": self.assets_bucket,
            "SourceKey": f"{sha256}.jsonl",
            "Bucket": self.bucket,
            "Key": staging.staged_key(prefix, self.fine_tuning, sha256, data.path.name),
            "Sha256": sha256,
            "SizeBytes": str(head["ContentLength"]),
        }
        logical_id = "TrainingDataUploadResource" if which == "training" else "ValidationDataUploadResource"
        event = self._cfn_event("Create", "Custom::TrainingDataUpload", logical_id, "DataStaging", properties)
        response = self._invoke_custom_resource(stage_data.handler, event, "DataStaging")
        if response["Status"] != "SUCCESS":
            raise Deviation(
                f"Custom::TrainingDataUpload Create answered {response['Status']}: {response['Reason']}"
            )
        uri = str(response["Data"]["S3Uri"])
        staged = self.clients["s3"].head_object(Bucket=self.bucket, Key=properties["Key"])
        if staged.get("Metadata", {}).get(staging.DIGEST_METADATA_KEY) != sha256:
            raise Deviation(f"{uri} carries no sha256 metadata {sha256}")
        self.staged[which] = (uri, sha256)
        return f"{uri} (SUCCESS; {staged.get('ServerSideEncryption', 'no')} encryption)"

    # -- Custom::CustomizationJob ------------------------------------------------------------------

    def _job_template(self) -> dict[str, str]:
        """FINETUNE_JOB_TEMPLATE as CustomizationJobTrigger sets it (and the base of the job's properties)."""
        training_sha = self.staged["training"][1]
        validation_uri, _ = self.staged.get("validation", ("", ""))
        self.spec = dataclasses.replace(self.plan.job_spec, training_sha256=training_sha)
        return jobs.job_template(
            self.spec,
            role_arn=self.role_arn,
            output_s3_uri=f"s3://{self.bucket}/{OUTPUT_PREFIX}{self.spec.fine_tuning}/",
            validation_s3_uri=validation_uri,
            kms_key_arn=self.key_arn,
            stop_superseded=self.config.environment.stop_superseded_jobs,
        )

    def _job_properties(self) -> dict[str, str]:
        """The properties CustomizationJobTrigger gives the resource (all strings, as CloudFormation sends)."""
        template = self._job_template()
        return jobs.job_resource_properties(
            self.spec,
            template,
            training_s3_uri=self.staged["training"][0],
            stop_on_delete=self.config.environment.stop_jobs_on_destroy,
        )

    def _job_event(self, request_type: str, physical_id: str | None = None) -> dict[str, Any]:
        if not self.job_properties:
            self.job_properties = self._job_properties()
        return self._cfn_event(
            request_type,
            "Custom::CustomizationJob",
            "CustomizationJobTriggerJob",
            "CustomizationJobTrigger",
            self.job_properties,
            physical_id,
        )

    def _create_job(self) -> dict[str, Any]:
        from finetune.runtime import customization_job_trigger as trigger_job

        response = self._invoke_custom_resource(
            trigger_job.handler, self._job_event("Create"), "CustomizationJobTrigger"
        )
        if response["Status"] != "SUCCESS":
            raise Deviation(
                f"Custom::CustomizationJob Create answered {response['Status']}: {response['Reason']}"
            )
        if response["PhysicalResourceId"] != self.spec.job_name:
            raise Deviation(
                f"physical id {response['PhysicalResourceId']!r}, expected the plan's job name {self.spec.job_name}"
            )
        return response

    def create_job(self) -> str:
        response = self._create_job()
        self.job_physical_id = str(response["PhysicalResourceId"])
        data = response["Data"]
        return f"{self.job_physical_id} {data['Status']} (digest {self.spec.digest[:12]}, SUCCESS)"

    def expect_jobs(self, count: int) -> str:
        found = self._jobs()
        names = [str(summary["jobName"]) for summary in found]
        if len(found) != count:
            raise Deviation(f"{len(found)} job(s) of {self.job_prefix}*, expected {count}: {names}")
        if count == 1 and names != [self.spec.job_name]:
            raise Deviation(f"the job is {names[0]}, expected the plan's {self.spec.job_name}")
        return f"{count} job(s)" + (f": {names[0]} {found[0]['status']}" if found else "")

    def create_job_again(self) -> str:
        response = self._create_job()
        self.expect_jobs(1)
        return f"same physical id {response['PhysicalResourceId']}; still one job"

    # -- Custom::ServingLifecycle and job events ---------------------------------------------------

    @property
    def _stack_id(self) -> str:
        return (
            f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{self.config.stack_name}/"
            f"{uuid.uuid5(uuid.NAMESPACE_URL, self.config.stack_name)}"
        )

    def _serving_properties(self, mode: str | None = None) -> dict[str, str]:
        environment = self.config.environment
        return {
            "Environment": self.environment,
            "FineTuning": self.fine_tuning,
            "Region": self.region,
            "Mode": mode or self.serving_mode,
            "ModelUnits": str(self.config.serving.model_units),
            "Commitment": self.config.serving.commitment,
            "IdleAlarmHours": str(self.config.serving.idle_alarm_hours),
            "TopicArn": self.topic_arn,
            "StopJobsOnDestroy": "true" if environment.stop_jobs_on_destroy else "false",
            "DeleteModelsOnDestroy": "true" if environment.removal_policy == "destroy" else "false",
            "StackId": self._stack_id,
        }

    def _serving_environment(self) -> None:
        """FINETUNE_SERVING and FINETUNE_TOPIC_ARN as ServingLifecycle sets them."""
        environment = self.config.environment
        os.environ["FINETUNE_SERVING"] = json.dumps(
            {
                "environment": self.environment,
                "fine_tuning": self.fine_tuning,
                "region": self.region,
                "mode": self.serving_mode,
                "model_units": self.config.serving.model_units,
                "commitment": self.config.serving.commitment,
                "idle_alarm_hours": self.config.serving.idle_alarm_hours,
                "stop_jobs_on_destroy": environment.stop_jobs_on_destroy,
                "delete_models_on_destroy": environment.removal_policy == "destroy",
                "stack_id": self._stack_id,
            }
        )
        os.environ["FINETUNE_TOPIC_ARN"] = self.topic_arn

    def _serving_event(self, request_type: str, mode: str | None = None) -> dict[str, Any]:
        physical_id = None if request_type == "Create" else f"{self.environment}-{self.fine_tuning}-serving"
        return self._cfn_event(
            request_type,
            "Custom::ServingLifecycle",
            "ServingLifecycleResource",
            "ServingLifecycle",
            self._serving_properties(mode),
            physical_id,
        )

    def create_serving(self) -> str:
        from finetune.runtime import serving_lifecycle as serving_handler

        self._serving_environment()
        response = self._invoke_custom_resource(
            serving_handler.handler, self._serving_event("Create"), "ServingLifecycle"
        )
        if response["Status"] != "SUCCESS":
            raise Deviation(
                f"Custom::ServingLifecycle Create answered {response['Status']}: {response['Reason']}"
            )
        endpoint = response["Data"].get("EndpointArn")
        if endpoint != serving_handler.NOT_SERVING:
            raise Deviation(
                f"EndpointArn {endpoint!r} before any job completed, expected {serving_handler.NOT_SERVING!r}"
            )
        return f"SUCCESS, mode {self.serving_mode}, EndpointArn {endpoint} (no completed job yet)"

    def complete_job(self) -> str:
        from moto.bedrock.models import bedrock_backends

        job = bedrock_backends[self.account][self.region].model_customization_jobs[self.spec.job_name]
        job.status = "Completed"
        job.end_time = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        status = self.clients["bedrock"].get_model_customization_job(jobIdentifier=self.spec.job_name)[
            "status"
        ]
        if status != "Completed":
            raise Deviation(f"GetModelCustomizationJob says {status}")
        return f"{self.spec.job_name} Completed (set in moto's backend: moto never finishes a job)"

    def _state_change_event(self) -> dict[str, Any]:
        """Bedrock's EventBridge event (shared/bedrock-reference.md section 2) for the job as it is now."""
        job = self.clients["bedrock"].get_model_customization_job(jobIdentifier=self.spec.job_name)

        def iso(value: Any) -> str:
            if isinstance(value, datetime):
                return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
            return str(value or "")

        detail = {
            "jobName": job["jobName"],
            "jobArn": job["jobArn"],
            "outputModelName": job.get("outputModelName", ""),
            "outputModelArn": job.get("outputModelArn", ""),
            "roleArn": job["roleArn"],
            "jobStatus": job["status"],
            "creationTime": iso(job.get("creationTime")),
            "endTime": iso(job.get("endTime")),
            "baseModelArn": job.get("baseModelArn", ""),
            "hyperParameters": job.get("hyperParameters", {}),
            "trainingDataConfig": job.get("trainingDataConfig", {}),
            "validationDataConfig": job.get("validationDataConfig", {}),
            "outputDataConfig": job.get("outputDataConfig", {}),
        }
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Model Customization Job State Change",
            "source": "aws.bedrock",
            "account": self.account,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [job["jobArn"]],
            "detail": detail,
        }

    def _check_serving(self, *, ready: bool) -> str:
        throughputs, deployments = self._endpoints()
        model_arn = self._parameter(serving.MODEL_ARN_PARAMETER)
        endpoint_arn = self._parameter(serving.ENDPOINT_ARN_PARAMETER)
        expected_model = self.completion_event["detail"]["outputModelArn"]
        if model_arn != expected_model:
            raise Deviation(f"custom-model-arn parameter is {model_arn!r}, expected {expected_model}")
        wanted = {"provisioned": (1, 0), "on_demand": (0, 1), "none": (0, 0)}[self.serving_mode]
        if (len(throughputs), len(deployments)) != wanted:
            raise Deviation(
                f"{len(throughputs)} provisioned throughput(s) and {len(deployments)} deployment(s) for mode "
                f"{self.serving_mode}, expected {wanted[0]} and {wanted[1]}"
            )
        endpoint = throughputs[0] if throughputs else deployments[0] if deployments else None
        if endpoint is None:
            if endpoint_arn is not None:
                raise Deviation(f"endpoint-arn parameter {endpoint_arn!r} while nothing serves (mode none)")
            return "no endpoint (mode none); custom-model-arn parameter set"
        if endpoint.model_arn != expected_model:
            raise Deviation(f"{endpoint.name} serves {endpoint.model_arn}, expected {expected_model}")
        if ready and endpoint_arn != endpoint.arn:
            raise Deviation(f"endpoint-arn parameter is {endpoint_arn!r}, expected {endpoint.arn}")
        if not ready and endpoint_arn is not None:
            raise Deviation(f"endpoint-arn parameter {endpoint_arn!r} names an endpoint not serving yet")
        units = f", {endpoint.model_units} unit(s)" if isinstance(endpoint, serving.Throughput) else ""
        parameter = "endpoint-arn parameter set" if ready else "endpoint-arn parameter not yet set"
        return f"{endpoint.name} {endpoint.status}{units}; {parameter}"

    def deliver_completion(self) -> str:
        from finetune.runtime import serving_lifecycle as serving_handler

        self.completion_event = self._state_change_event()
        answer = serving_handler.handler(self.completion_event, _Context(function_name="ServingLifecycle"))
        if answer.get("action") != "reconciled":
            raise Deviation(f"the serving handler answered {answer}, expected a reconcile")
        # The run waits while the endpoint comes up (the fake's time passes), then publishes it.
        return "reconciled: " + self._check_serving(ready=True)

    def endpoint_ready(self) -> str:
        from finetune.runtime import serving_lifecycle as serving_handler

        self.fake.settle()  # time passes: the local fake's PT / deployment finishes creating
        answer = serving_handler.handler(
            {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}},
            _Context(function_name="ServingLifecycle"),
        )
        changed = "changed" if answer.get("changed") else "no change"
        return f"scheduled reconcile ({changed}): " + self._check_serving(ready=True)

    def deliver_duplicate(self) -> str:
        from finetune.runtime import serving_lifecycle as serving_handler

        creates = len(self.fake.calls_of("create_provisioned_model_throughput")) + len(
            self.fake.calls_of("create_custom_model_deployment")
        )
        answer = serving_handler.handler(self.completion_event, _Context(function_name="ServingLifecycle"))
        after = len(self.fake.calls_of("create_provisioned_model_throughput")) + len(
            self.fake.calls_of("create_custom_model_deployment")
        )
        if after != creates:
            raise Deviation(f"the duplicate event created {after - creates} more endpoint(s)")
        return f"{answer.get('action')}: nothing new; " + self._check_serving(ready=True)

    def check_notifications(self) -> str:
        received = self._read_mailbox()
        ready = [subject for subject, _ in received if "model ready" in subject]
        if not ready:
            raise Deviation(f"no 'model ready' notification on the topic; got {[s for s, _ in received]}")
        return f"{len(received)} on the topic: " + "; ".join(
            dict.fromkeys(subject for subject, _ in received)
        )

    def _update_serving(self, mode: str) -> dict[str, Any]:
        from finetune.runtime import serving_lifecycle as serving_handler

        event = self._serving_event("Update", mode)
        event["OldResourceProperties"] = self._serving_properties()
        response = self._invoke_custom_resource(serving_handler.handler, event, "ServingLifecycle")
        if response["Status"] != "SUCCESS":
            raise Deviation(
                f"Custom::ServingLifecycle Update to {mode} answered {response['Status']}: {response['Reason']}"
            )
        return response

    def serve_nothing(self) -> str:
        self._update_serving("none")
        throughputs, deployments = self._endpoints()
        if throughputs or deployments:
            left = [throughput.name for throughput in throughputs] + [
                deployment.name for deployment in deployments
            ]
            raise Deviation(f"mode none still serves: {left}")
        if self._parameter(serving.ENDPOINT_ARN_PARAMETER) is not None:
            raise Deviation("the endpoint-arn parameter outlived mode none")
        return "Update to mode none: nothing serves, endpoint-arn parameter deleted"

    def serve_again(self) -> str:
        tokens_before = set(self.fake.tokens)
        response = self._update_serving(self.serving_mode)
        throughputs, deployments = self._endpoints()
        endpoints: list[serving.Throughput | serving.Deployment] = [*throughputs, *deployments]
        wanted = 0 if self.serving_mode == "none" else 1
        if len(endpoints) != wanted:
            raise Deviation(
                f"{len(endpoints)} endpoint(s) after switching back to {self.serving_mode}, expected {wanted}"
            )
        if not endpoints:
            return "Update back to mode none: nothing to serve"
        endpoint = endpoints[0]
        if response["Data"]["EndpointArn"] != endpoint.arn:
            raise Deviation(
                f"EndpointArn {response['Data']['EndpointArn']} is not the serving {endpoint.arn}"
            )
        if self._parameter(serving.ENDPOINT_ARN_PARAMETER) != endpoint.arn:
            raise Deviation("the endpoint-arn parameter does not name the new endpoint")
        fresh = set(self.fake.tokens) - tokens_before
        if not fresh:
            raise Deviation("the creation reused a request token: Bedrock would return the deleted endpoint")
        return f"Update back to {self.serving_mode}: {endpoint.name} {endpoint.status} (a new request token), served"

    def redeploy_job(self) -> str:
        response = self._create_job()
        return (
            f"the job resource's Create finds {response['PhysicalResourceId']} {response['Data']['Status']}"
        )

    def create_serving_failing(self) -> str:
        from finetune.runtime import serving_lifecycle as serving_handler

        read_back = (
            "get_provisioned_model_throughput"
            if self.serving_mode == "provisioned"
            else "get_custom_model_deployment"
        )
        self.fake.fail_next(read_back, "InternalServerException", "injected: Bedrock failed after creating")
        response = self._invoke_custom_resource(
            serving_handler.handler, self._serving_event("Create"), "ServingLifecycle"
        )
        if response["Status"] != "FAILED":
            raise Deviation(f"the Create answered {response['Status']} despite the injected fault")
        throughputs, deployments = self._endpoints()
        made = [throughput.name for throughput in throughputs] + [
            deployment.name for deployment in deployments
        ]
        if not made:
            raise Deviation("the failing Create made nothing: the fault came too early to test the rollback")
        expected = f"{self.environment}-{self.fine_tuning}-serving"
        if response["PhysicalResourceId"] != expected:
            raise Deviation(
                f"the failed Create answered physical id {response['PhysicalResourceId']!r}, not {expected!r}: its Delete would not tear down"
            )
        return (
            f"FAILED after creating {made} (physical id {expected}, so the rollback's Delete tears it down)"
        )

    def delete_serving(self) -> str:
        from finetune.runtime import serving_lifecycle as serving_handler

        response = self._invoke_custom_resource(
            serving_handler.handler, self._serving_event("Delete"), "ServingLifecycle"
        )
        if response["Status"] != "SUCCESS":
            raise Deviation(
                f"Custom::ServingLifecycle Delete answered {response['Status']}: {response['Reason']}"
            )
        throughputs, deployments = self._endpoints()
        if throughputs or deployments:
            left = [item.name for item in throughputs] + [item.name for item in deployments]
            raise Deviation(f"still serving after the teardown: {left}")
        if self._parameter(serving.ENDPOINT_ARN_PARAMETER) is not None:
            raise Deviation("the endpoint-arn parameter outlived the teardown")
        return "SUCCESS; no provisioned throughput or deployment left; endpoint-arn parameter deleted"

    def delete_job(self) -> str:
        from finetune.runtime import customization_job_trigger as trigger_job

        event = self._job_event("Delete", self.job_physical_id)
        response = self._invoke_custom_resource(trigger_job.handler, event, "CustomizationJobTrigger")
        if response["Status"] != "SUCCESS":
            raise Deviation(
                f"Custom::CustomizationJob Delete answered {response['Status']}: {response['Reason']}"
            )
        throughputs, deployments = self._endpoints()
        if throughputs or deployments:
            raise Deviation("a provisioned throughput or deployment exists after the delete")
        status = self.clients["bedrock"].get_model_customization_job(jobIdentifier=self.job_physical_id)[
            "status"
        ]
        return f"SUCCESS; job {status}; nothing serving"

    # -- bad data ----------------------------------------------------------------------------------

    def create_job_rejected(self) -> str:
        from finetune.runtime import customization_job_trigger as trigger_job

        response = self._invoke_custom_resource(
            trigger_job.handler, self._job_event("Create"), "CustomizationJobTrigger"
        )
        self.job_physical_id = str(response["PhysicalResourceId"])
        if response["Status"] != "FAILED":
            raise Deviation(
                f"Custom::CustomizationJob Create answered {response['Status']} on corrupted data"
            )
        location = f"{self.staged['training'][0]}:{self.bad_line}"
        if location not in response["Reason"]:
            raise Deviation(f"the reason does not name {location}: {response['Reason']}")
        first = next((line for line in response["Reason"].splitlines() if location in line), location)
        return f"FAILED as expected: {first}"

    def rollback_delete(self) -> str:
        from finetune.runtime import customization_job_trigger as trigger_job
        from finetune.runtime import responder as custom_resource

        if not custom_resource.is_failed_create(self.job_physical_id):
            raise Deviation(f"the failed Create's physical id {self.job_physical_id!r} is not a placeholder")
        event = self._job_event("Delete", self.job_physical_id)
        response = self._invoke_custom_resource(trigger_job.handler, event, "CustomizationJobTrigger")
        if response["Status"] != "SUCCESS":
            raise Deviation(f"the rollback's Delete answered {response['Status']}: {response['Reason']}")
        return f"SUCCESS for placeholder {self.job_physical_id}: nothing to delete"

    @property
    def _incoming_key(self) -> str:
        return f"{INCOMING_PREFIX}{self.config.training_data.path.name}"

    def upload_rejected(self) -> str:
        from finetune.runtime import customization_job_trigger as trigger_job

        os.environ["FINETUNE_JOB_TEMPLATE"] = json.dumps(self._job_template())
        os.environ["FINETUNE_TOPIC_ARN"] = self.topic_arn
        os.environ["FINETUNE_INCOMING_PREFIX"] = INCOMING_PREFIX
        os.environ["FINETUNE_TRAINING_PREFIX"] = TRAINING_PREFIX
        content = self._asset_bytes("training")
        s3 = self.clients["s3"]
        put = s3.put_object(Bucket=self.bucket, Key=self._incoming_key, Body=content)
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": self.account,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [f"arn:aws:s3:::{self.bucket}"],
            "detail": {
                "version": "0",
                "bucket": {"name": self.bucket},
                "object": {
                    "key": self._incoming_key,
                    "size": len(content),
                    "etag": str(put.get("ETag", "")).strip('"'),
                    "version-id": put.get("VersionId", ""),
                    "sequencer": "0",
                },
                "request-id": "rehearsal",
                "requester": self.account,
                "reason": "PutObject",
            },
        }
        answer = trigger_job.handler(event, _Context(function_name="CustomizationJobTrigger"))
        outcomes = [result.get("outcome") for result in answer.get("results", [])]
        if outcomes != ["rejected"]:
            raise Deviation(f"the upload's outcome is {outcomes}, expected ['rejected']")
        return f"s3://{self.bucket}/{self._incoming_key}: rejected"

    def upload_tagged(self) -> str:
        from finetune.runtime import customization_job_trigger as trigger_job

        tags = {
            tag["Key"]: tag["Value"]
            for tag in self.clients["s3"].get_object_tagging(Bucket=self.bucket, Key=self._incoming_key)[
                "TagSet"
            ]
        }
        if tags.get(trigger_job.STATUS_TAG) != "rejected":
            raise Deviation(f"the upload's tags are {tags}, expected {trigger_job.STATUS_TAG}=rejected")
        return f"{trigger_job.STATUS_TAG}=rejected"

    def upload_notified(self) -> str:
        received = self._read_mailbox()
        location = f"s3://{self.bucket}/{self._incoming_key}:{self.bad_line}"
        naming = [(subject, message) for subject, message in received if location in message]
        if not naming:
            raise Deviation(f"no notification names {location}; got {[subject for subject, _ in received]}")
        subject, message = naming[0]
        line = next(line for line in message.splitlines() if location in line)
        return f"{subject!r}: {line}"


def rehearse(
    plans: tuple[FineTuningPlan, ...],
    environment: str,
    fine_tuning: str,
    *,
    bad_data: bool = False,
    serving_mode: ModeChoice | None = None,
    verbose: bool = False,
    out: Callable[[str], None] = print,
) -> Result:
    """Rehearse `<environment>/<fine_tuning>` (see the module docstring); LookupError when unknown."""
    plan = find_plan(plans, environment, fine_tuning)
    mode: ModeChoice = serving_mode or plan.config.serving.mode
    rehearsal = Rehearsal(plan, serving_mode=mode, bad_data=bad_data, verbose=verbose, out=out)
    return rehearsal.run()


def rehearse_project(project_root: Path, environment: str, fine_tuning: str, **options: Any) -> Result:
    """`rehearse()` for the plans of the project at `project_root` (raises ConfigError, LookupError)."""
    from finetune.core.project import load_plans

    plans, _warnings = load_plans(project_root)
    return rehearse(plans, environment, fine_tuning, **options)
