"""A local stand-in for Bedrock's provisioned-throughput and custom-model-deployment calls.

moto 5.2.5 implements customization jobs but none of these calls: under
`mock_aws` they raise NotImplementedError, and moto's server answers HTTP 500. `FakeBedrockServing`
wraps a real Bedrock client (moto's, over HTTP or in-process) and answers those calls itself, so the
serving reconciler (`finetune.aws.serving`) runs unchanged in the tests and in `python -m finetune
rehearse`. It is never used against AWS.

The fake takes the same keyword arguments as boto3, validates each request against botocore's
service model for Bedrock (types, required members, lengths: what botocore checks client-side) plus
the name patterns the service enforces, and raises `ClientError` with the error codes the service
model lists. Every other call goes to `backend`, the wrapped Bedrock client.

Behaviour modelled on the Bedrock user guide (https://docs.aws.amazon.com/bedrock/latest/userguide/prov-throughput.html,
https://docs.aws.amazon.com/bedrock/latest/userguide/deploy-custom-model-on-demand.html):
- a created PT is `Creating`, a deployment `Creating`; `settle()` brings everything to steady state
  (InService / Active, updates applied), as time would;
- `clientRequestToken` is idempotent: the same token returns the same resource;
- a PT whose commitment term runs cannot be deleted (ValidationException: the exact code AWS
  returns is not documented; the code under test never tries);
- a deleted resource stays visible for `delete_polls` Get calls (None: it never goes away).
Fault injection: `fail_next(operation, code, ...)` queues errors for an operation.

`FakeService` is what this fake shares with the evaluation and runtime fakes of
`finetune.cli.local_evaluation`: the recorded calls, the queued faults, the validation against a
botocore service model, the service's pattern checks and nextToken pagination.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError, ParamValidationError
from botocore.validate import ParamValidator

ACCOUNT = "123456789012"
REGION = "us-east-1"
NAME_PATTERN = re.compile(r"([0-9a-zA-Z][_-]?)+")
COMMITMENT_DAYS = {"OneMonth": 30, "SixMonths": 182}
STATUS_CODES = {
    "ThrottlingException": 429,
    "ResourceNotFoundException": 404,
    "AccessDeniedException": 403,
    "InternalServerException": 500,
    "ConflictException": 409,
    "ModelNotReadyException": 429,
    "ModelTimeoutException": 408,
    "ServiceUnavailableException": 503,
}


def client_error(operation: str, code: str, message: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": STATUS_CODES.get(code, 400)},
        },
        operation,
    )


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str] | None:
    """botocore's pattern compiled, or None for the few in Java syntax (`\\p{L}`) Python cannot read."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _violations(shape: Any, value: Any, path: str, tolerated: Mapping[str, frozenset[str]]) -> Iterator[str]:
    """What the service would refuse in `value` (of botocore shape `shape`), in its words."""
    where = path or shape.name
    shown = "***" if shape.metadata.get("sensitive") else value
    if shape.type_name == "structure" and isinstance(value, Mapping):
        for name, member in shape.members.items():
            if name in value:
                yield from _violations(member, value[name], f"{path}.{name}" if path else name, tolerated)
    elif shape.type_name == "list" and isinstance(value, list):
        if "max" in shape.metadata and len(value) > shape.metadata["max"]:
            yield (
                f"Value at '{where}' failed to satisfy constraint: Member must have length less than or "
                f"equal to {shape.metadata['max']}"
            )
        for index, item in enumerate(value):
            yield from _violations(shape.member, item, f"{where}.{index + 1}.member", tolerated)
    elif shape.type_name == "map" and isinstance(value, Mapping):
        for key, item in value.items():
            yield from _violations(shape.value, item, f"{where}.{key}", tolerated)
    elif shape.type_name == "string" and isinstance(value, str):
        pattern = _pattern(shape.metadata["pattern"]) if "pattern" in shape.metadata else None
        enum = shape.metadata.get("enum")
        if "max" in shape.metadata and len(value) > shape.metadata["max"]:
            yield (
                f"Value '{shown}' at '{where}' failed to satisfy constraint: Member must have length less "
                f"than or equal to {shape.metadata['max']}"
            )
        elif pattern is not None and not pattern.fullmatch(value):
            yield (
                f"Value '{shown}' at '{where}' failed to satisfy constraint: Member must satisfy regular "
                f"expression pattern: {pattern.pattern}"
            )
        elif enum and value not in enum and value not in tolerated.get(shape.name, frozenset()):
            yield (
                f"Value '{shown}' at '{where}' failed to satisfy constraint: Member must satisfy enum value "
                f"set: [{', '.join(enum)}]"
            )
    elif (
        shape.type_name in ("integer", "long", "float", "double")
        and isinstance(value, int | float)
        and value > shape.metadata.get("max", value)
    ):
        yield (
            f"Value '{shown}' at '{where}' failed to satisfy constraint: Member must have value less "
            f"than or equal to {shape.metadata['max']}"
        )


@dataclass
class _Deletion:
    polls_left: int | None  # None: never gone


class FakeService:
    """What the fakes share: the calls they saw (`calls`), faults queued by `fail_next`, requests
    validated against a botocore service model, and nextToken pagination `page_size` items a page.
    Thread-safe for the calls a thread pool makes (the fakes' own state changes under `_lock`)."""

    TOLERATED_ENUM_VALUES: Mapping[str, frozenset[str]] = {}

    def __init__(self, service_model: Any, *, page_size: int) -> None:
        self._service_model = service_model
        self._page_size = page_size
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._faults: dict[str, deque[ClientError]] = {}
        self._lock = threading.RLock()

    def fail_next(self, operation: str, code: str, message: str = "injected fault", times: int = 1) -> None:
        """Queue `times` errors `code` for the boto3 method `operation`."""
        op_name = self._operation_name(operation)
        with self._lock:
            queue = self._faults.setdefault(operation, deque())
            queue.extend(client_error(op_name, code, message) for _ in range(times))

    def calls_of(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]

    def _operation_name(self, method: str) -> str:
        return "".join(part.capitalize() for part in method.split("_"))

    def _enter(self, method: str, params: dict[str, Any]) -> str:
        """Record, validate against the service model, and raise a queued fault."""
        operation = self._operation_name(method)
        with self._lock:
            self.calls.append((method, dict(params)))
        shape = self._service_model.operation_model(operation).input_shape
        report = ParamValidator().validate(params, shape)
        if report.has_errors():
            raise ParamValidationError(report=report.generate_report())
        with self._lock:
            queue = self._faults.get(method)
            if queue:
                raise queue.popleft()
        return operation

    def _check_pattern(
        self, operation: str, field: str, value: str, pattern: re.Pattern[str], max_length: int | None = None
    ) -> None:
        """The service's own check of a member's pattern (and `max`), which botocore leaves to it,
        in the words Bedrock uses for it (quoted in aws/aws-cli#9027)."""
        if pattern.fullmatch(value) and (max_length is None or len(value) <= max_length):
            return
        constraint = f"Member must satisfy regular expression pattern: {pattern.pattern}"
        if max_length is not None and len(value) > max_length:
            constraint = f"Member must have length less than or equal to {max_length}"
        raise client_error(
            operation,
            "ValidationException",
            f"1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}",
        )

    def _check_constraints(self, operation: str, params: dict[str, Any]) -> None:
        """Every pattern, `max` and enum of the request's members, as the service checks them
        (botocore does not), reported the way Bedrock reports them. Enum values in
        `TOLERATED_ENUM_VALUES` pass: the service accepts them although the model does not list them."""
        shape = self._service_model.operation_model(operation).input_shape
        problems = list(_violations(shape, params, "", self.TOLERATED_ENUM_VALUES))
        if problems:
            count = len(problems)
            raise client_error(
                operation,
                "ValidationException",
                f"{count} validation error{'s' if count > 1 else ''} detected: " + "; ".join(problems),
            )

    def _page(
        self, operation: str, items: list[dict[str, Any]], params: dict[str, Any], key: str
    ) -> dict[str, Any]:
        start = int(params.get("nextToken") or 0)
        size = min(int(params.get("maxResults") or self._page_size), self._page_size)
        page = items[start : start + size]
        response: dict[str, Any] = {key: page}
        if start + size < len(items):
            response["nextToken"] = str(start + size)
        return response


class FakeBedrockServing(FakeService):
    """Bedrock PT and deployment calls in memory; everything else is `backend`'s (moto)."""

    def __init__(
        self, backend: Any, *, region: str = REGION, account: str = ACCOUNT, page_size: int = 2
    ) -> None:
        super().__init__(backend.meta.service_model, page_size=page_size)
        self._backend = backend
        self._region = region
        self._account = account
        self.throughputs: dict[str, dict[str, Any]] = {}
        self.deployments: dict[str, dict[str, Any]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.tokens: dict[str, str] = {}
        self.deleting: dict[str, _Deletion] = {}
        self.delete_polls: int | None = 0
        self._counter = 0
        self.now = datetime.now(UTC).replace(microsecond=0)  # commitments run from "now", as in AWS

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    # -- test controls -----------------------------------------------------------------------------

    def settle(self) -> None:
        """Let time pass: creations and updates finish."""
        for record in self.throughputs.values():
            if record["status"] in ("Creating", "Updating"):
                record["status"] = "InService"
                record["modelArn"] = record["desiredModelArn"]
                record["modelUnits"] = record["desiredModelUnits"]
        for record in self.deployments.values():
            if record["status"] == "Creating":
                record["status"] = "Active"
            details = record.get("updateDetails")
            if details and details["updateStatus"] == "Updating":
                details["updateStatus"] = "UpdateCompleted"
                record["modelArn"] = details["modelArn"]

    # -- plumbing ----------------------------------------------------------------------------------

    def _arn(self, kind: str, seed: str) -> str:
        self._counter += 1
        resource_id = hashlib.sha256(f"{seed}:{self._counter}".encode()).hexdigest()[:12]
        return f"arn:aws:bedrock:{self._region}:{self._account}:{kind}/{resource_id}"

    def _check_name(self, operation: str, field: str, name: str) -> None:
        self._check_pattern(operation, field, name, NAME_PATTERN)

    def _find(
        self, store: dict[str, dict[str, Any]], operation: str, identifier: str, name_key: str
    ) -> dict[str, Any]:
        for arn, record in store.items():
            if identifier in (arn, record[name_key]):
                return record
        raise client_error(operation, "ResourceNotFoundException", f"Resource {identifier} not found")

    def _poll_deletion(self, store: dict[str, dict[str, Any]], arn: str) -> None:
        """A Get of a resource being deleted: one poll closer to gone."""
        deletion = self.deleting.get(arn)
        if deletion is None or deletion.polls_left is None:
            return
        if deletion.polls_left <= 0:
            del store[arn]
            del self.deleting[arn]
            self.tags.pop(arn, None)
        else:
            deletion.polls_left -= 1

    def _start_deletion(self, store: dict[str, dict[str, Any]], arn: str) -> None:
        if arn in self.deleting:
            return
        if self.delete_polls == 0:
            del store[arn]
            self.tags.pop(arn, None)
        else:
            self.deleting[arn] = _Deletion(self.delete_polls)

    # -- provisioned throughput --------------------------------------------------------------------

    def create_provisioned_model_throughput(self, **params: Any) -> dict[str, Any]:
        operation = self._enter("create_provisioned_model_throughput", params)
        name = params["provisionedModelName"]
        self._check_name(operation, "provisionedModelName", name)
        token = params.get("clientRequestToken")
        if token and token in self.tokens:
            return {"provisionedModelArn": self.tokens[token]}
        if any(record["provisionedModelName"] == name for record in self.throughputs.values()):
            raise client_error(operation, "ValidationException", f"Provisioned model {name} already exists")
        arn = self._arn("provisioned-model", name)
        record: dict[str, Any] = {
            "provisionedModelName": name,
            "provisionedModelArn": arn,
            "modelArn": params["modelId"],
            "desiredModelArn": params["modelId"],
            "foundationModelArn": f"arn:aws:bedrock:{self._region}::foundation-model/amazon.nova-micro-v1:0",
            "modelUnits": params["modelUnits"],
            "desiredModelUnits": params["modelUnits"],
            "status": "Creating",
            "creationTime": self.now,
            "lastModifiedTime": self.now,
        }
        commitment = params.get("commitmentDuration")
        if commitment:
            record["commitmentDuration"] = commitment
            record["commitmentExpirationTime"] = self.now + timedelta(days=COMMITMENT_DAYS[commitment])
        self.throughputs[arn] = record
        self.tags[arn] = {tag["key"]: tag["value"] for tag in params.get("tags", [])}
        if token:
            self.tokens[token] = arn
        return {"provisionedModelArn": arn}

    def get_provisioned_model_throughput(self, **params: Any) -> dict[str, Any]:
        operation = self._enter("get_provisioned_model_throughput", params)
        record = self._find(self.throughputs, operation, params["provisionedModelId"], "provisionedModelName")
        arn = record["provisionedModelArn"]
        self._poll_deletion(self.throughputs, arn)
        if arn not in self.throughputs:
            raise client_error(operation, "ResourceNotFoundException", f"Provisioned model {arn} not found")
        return dict(record)

    def list_provisioned_model_throughputs(self, **params: Any) -> dict[str, Any]:
        operation = self._enter("list_provisioned_model_throughputs", params)
        items = [
            dict(record)
            for record in self.throughputs.values()
            if params.get("nameContains", "") in record["provisionedModelName"]
            and params.get("statusEquals", record["status"]) == record["status"]
            and params.get("modelArnEquals", record["modelArn"]) == record["modelArn"]
        ]
        return self._page(operation, items, params, "provisionedModelSummaries")

    def update_provisioned_model_throughput(self, **params: Any) -> dict[str, Any]:
        operation = self._enter("update_provisioned_model_throughput", params)
        record = self._find(self.throughputs, operation, params["provisionedModelId"], "provisionedModelName")
        if "desiredModelId" in params:
            record["desiredModelArn"] = params["desiredModelId"]
            record["status"] = "Updating"
        if "desiredProvisionedModelName" in params:
            self._check_name(operation, "desiredProvisionedModelName", params["desiredProvisionedModelName"])
            record["provisionedModelName"] = params["desiredProvisionedModelName"]
        record["lastModifiedTime"] = self.now
        return {}

    def delete_provisioned_model_throughput(self, **params: Any) -> dict[str, Any]:
        operation = self._enter("delete_provisioned_model_throughput", params)
        record = self._find(self.throughputs, operation, params["provisionedModelId"], "provisionedModelName")
        expires = record.get("commitmentExpirationTime")
        if expires is not None and expires > self.now:
            raise client_error(
                operation,
                "ValidationException",
                f"Provisioned model {record['provisionedModelName']} has a commitment until {expires.isoformat()}",
            )
        self._start_deletion(self.throughputs, record["provisionedModelArn"])
        return {}

    # -- on-demand custom model deployments --------------------------------------------------------

    def create_custom_model_deployment(self, **params: Any) -> dict[str, Any]:
        operation = self._enter("create_custom_model_deployment", params)
        name = params["modelDeploymentName"]
        self._check_name(operation, "modelDeploymentName", name)
        token = params.get("clientRequestToken")
        if token and token in self.tokens:
            return {"customModelDeploymentArn": self.tokens[token]}
        if any(record["modelDeploymentName"] == name for record in self.deployments.values()):
            raise client_error(operation, "ValidationException", f"Deployment {name} already exists")
        arn = self._arn("custom-model-deployment", name)
        self.deployments[arn] = {
            "customModelDeploymentArn": arn,
            "modelDeploymentName": name,
            "modelArn": params["modelArn"],
            "createdAt": self.now,
            "status": "Creating",
            "description": params.get("description", ""),
        }
        self.tags[arn] = {tag["key"]: tag["value"] for tag in params.get("tags", [])}
        if token:
            self.tokens[token] = arn
        return {"customModelDeploymentArn": arn}

    def get_custom_model_deployment(self, **params: Any) -> dict[str, Any]:
        operation = self._enter("get_custom_model_deployment", params)
        record = self._find(
            self.deployments, operation, params["customModelDeploymentIdentifier"], "modelDeploymentName"
        )
        arn = record["customModelDeploymentArn"]
        self._poll_deletion(self.deployments, arn)
        if arn not in self.deployments:
            raise client_error(operation, "ResourceNotFoundException", f"Deployment {arn} not found")
        return dict(record)

    def list_custom_model_deployments(self, **params: Any) -> dict[str, Any]:
        operation = self._enter("list_custom_model_deployments", params)
        items = [
            {
                "customModelDeploymentArn": record["customModelDeploymentArn"],
                "customModelDeploymentName": record["modelDeploymentName"],
                "modelArn": record["modelArn"],
                "createdAt": record["createdAt"],
                "status": record["status"],
            }
            for record in self.deployments.values()
            if params.get("nameContains", "") in record["modelDeploymentName"]
        ]
        return self._page(operation, items, params, "modelDeploymentSummaries")

    def update_custom_model_deployment(self, **params: Any) -> dict[str, Any]:
        operation = self._enter("update_custom_model_deployment", params)
        record = self._find(
            self.deployments, operation, params["customModelDeploymentIdentifier"], "modelDeploymentName"
        )
        record["updateDetails"] = {"modelArn": params["modelArn"], "updateStatus": "Updating"}
        record["lastUpdatedAt"] = self.now
        return {"customModelDeploymentArn": record["customModelDeploymentArn"]}

    def delete_custom_model_deployment(self, **params: Any) -> dict[str, Any]:
        operation = self._enter("delete_custom_model_deployment", params)
        record = self._find(
            self.deployments, operation, params["customModelDeploymentIdentifier"], "modelDeploymentName"
        )
        self._start_deletion(self.deployments, record["customModelDeploymentArn"])
        return {}

    # -- tags: ours for PTs and deployments, moto's for the rest -----------------------------------

    def list_tags_for_resource(self, **params: Any) -> dict[str, Any]:
        arn = params.get("resourceARN", "")
        if arn not in self.tags:
            return dict(self._backend.list_tags_for_resource(**params))
        self._enter("list_tags_for_resource", params)
        return {"tags": [{"key": key, "value": value} for key, value in sorted(self.tags[arn].items())]}

    def tag_resource(self, **params: Any) -> dict[str, Any]:
        arn = params.get("resourceARN", "")
        if arn not in self.tags:
            return dict(self._backend.tag_resource(**params))
        self._enter("tag_resource", params)
        self.tags[arn].update({tag["key"]: tag["value"] for tag in params["tags"]})
        return {}
