"""`Custom::ServingLifecycle` as CloudFormation drives it, and the job events EventBridge delivers:
the endpoint comes up, a duplicate event changes nothing, serving goes to `none` and back, and a
Create that fails after creating its endpoint is rolled back to nothing."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any

from finetune.aws import trials
from finetune.aws.endpoints import Deployment, Throughput
from finetune.cli.rehearsal.sandbox import LambdaContext
from finetune.cli.rehearsal.state import RehearsalState
from finetune.cli.rehearsal.timeline import Deviation
from finetune.core import names
from finetune.core.contracts import ServingResource
from finetune.core.evaluation import LOWER_IS_BETTER
from finetune.runtime import serving_lifecycle


def serving_environment(state: RehearsalState) -> None:
    """FINETUNE_SERVING and FINETUNE_TOPIC_ARN as ServingLifecycle sets them."""
    os.environ[ServingResource.ENVIRONMENT_VARIABLE] = json.dumps(state.serving_resource().to_properties())
    os.environ["FINETUNE_TOPIC_ARN"] = state.topic_arn


def serving_event(state: RehearsalState, request_type: str, mode: str | None = None) -> dict[str, Any]:
    physical_id = None if request_type == "Create" else f"{state.environment}-{state.fine_tuning}-serving"
    return state.cfn_event(
        request_type,
        ServingResource.RESOURCE_TYPE,
        "ServingLifecycleResource",
        "ServingLifecycle",
        state.serving_resource(mode).to_properties(),
        physical_id,
    )


def create_serving(state: RehearsalState) -> str:
    serving_environment(state)
    response = state.invoke_custom_resource(
        serving_lifecycle.handler, serving_event(state, "Create"), "ServingLifecycle"
    )
    if response["Status"] != "SUCCESS":
        raise Deviation(
            f"Custom::ServingLifecycle Create answered {response['Status']}: {response['Reason']}"
        )
    endpoint = response["Data"].get("EndpointArn")
    if endpoint != serving_lifecycle.NOT_SERVING:
        raise Deviation(
            f"EndpointArn {endpoint!r} before any job completed, expected {serving_lifecycle.NOT_SERVING!r}"
        )
    return f"SUCCESS, mode {state.serving_mode}, EndpointArn {endpoint} (no completed job yet)"


def state_change_event(state: RehearsalState) -> dict[str, Any]:
    """Bedrock's EventBridge event for the job as it is now (the sample event of the Bedrock user
    guide, How EventBridge for Amazon Bedrock works)."""
    job = state.clients["bedrock"].get_model_customization_job(jobIdentifier=state.spec.job_name)

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
        "account": state.account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": state.region,
        "resources": [job["jobArn"]],
        "detail": detail,
    }


def model_to_serve(state: RehearsalState) -> str:
    """The model that must serve: the completed job's, or behind a gate the winner's."""
    if state.gated:
        winner = json.loads(state.parameter(names.WINNER_PARAMETER) or "{}")
        return str(winner.get("model_arn") or "")
    return str(state.completion_event["detail"]["outputModelArn"])


def check_serving(state: RehearsalState, *, ready: bool) -> str:
    throughputs, deployments = state.endpoints()
    model_arn = state.parameter(names.MODEL_ARN_PARAMETER)
    endpoint_arn = state.parameter(names.ENDPOINT_ARN_PARAMETER)
    expected_model = model_to_serve(state)
    if model_arn != expected_model:
        raise Deviation(f"custom-model-arn parameter is {model_arn!r}, expected {expected_model}")
    wanted = {"provisioned": (1, 0), "on_demand": (0, 1), "none": (0, 0)}[state.serving_mode]
    if (len(throughputs), len(deployments)) != wanted:
        raise Deviation(
            f"{len(throughputs)} provisioned throughput(s) and {len(deployments)} deployment(s) for mode "
            f"{state.serving_mode}, expected {wanted[0]} and {wanted[1]}"
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
    units = f", {endpoint.model_units} unit(s)" if isinstance(endpoint, Throughput) else ""
    parameter = "endpoint-arn parameter set" if ready else "endpoint-arn parameter not yet set"
    return f"{endpoint.name} {endpoint.status}{units}; {parameter}"


def deliver_completion(state: RehearsalState) -> str:
    state.completion_event = state_change_event(state)
    answer = serving_lifecycle.handler(
        state.completion_event, LambdaContext(function_name="ServingLifecycle")
    )
    if answer.get("action") != "reconciled":
        raise Deviation(f"the serving handler answered {answer}, expected a reconcile")
    # The run waits while the endpoint comes up (the fake's time passes), then publishes it.
    return "reconciled: " + check_serving(state, ready=True)


def scheduled_reconcile(state: RehearsalState) -> dict[str, Any]:
    state.settle()  # time passes: the fakes' PTs, deployments and evaluation jobs finish
    answer: dict[str, Any] = serving_lifecycle.handler(
        {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}},
        LambdaContext(function_name="ServingLifecycle"),
    )
    return answer


def endpoint_ready(state: RehearsalState) -> str:
    answer = scheduled_reconcile(state)
    changed = "changed" if answer.get("changed") else "no change"
    return f"scheduled reconcile ({changed}): " + check_serving(state, ready=True)


def deliver_duplicate(state: RehearsalState) -> str:
    creates = len(state.fake.calls_of("create_provisioned_model_throughput")) + len(
        state.fake.calls_of("create_custom_model_deployment")
    )
    answer = serving_lifecycle.handler(
        state.completion_event, LambdaContext(function_name="ServingLifecycle")
    )
    after = len(state.fake.calls_of("create_provisioned_model_throughput")) + len(
        state.fake.calls_of("create_custom_model_deployment")
    )
    if after != creates:
        raise Deviation(f"the duplicate event created {after - creates} more endpoint(s)")
    return f"{answer.get('action')}: nothing new; " + check_serving(state, ready=True)


# -- the evaluation gate --------------------------------------------------------------------------


def temporary_endpoints(state: RehearsalState) -> list[trials.TemporaryEndpoint]:
    return trials.find_temporary_endpoints(state.fake, state.environment, state.fine_tuning)


def gate_starts(state: RehearsalState) -> str:
    """The main job's completion event, every trial's job complete: nothing is served yet; each
    trial gets one temporary endpoint (with --gate-fails, their scores are set to miss the gate)."""
    state.completion_event = state_change_event(state)
    answer = serving_lifecycle.handler(
        state.completion_event, LambdaContext(function_name="ServingLifecycle")
    )
    if answer.get("action") != "reconciled":
        raise Deviation(f"the serving handler answered {answer}, expected a reconcile")
    serving_now = state.endpoint_names()
    if serving_now or state.parameter(names.MODEL_ARN_PARAMETER) is not None:
        raise Deviation(f"served before the gate decided: {serving_now}")
    temporary = temporary_endpoints(state)
    if sorted(endpoint.trial for endpoint in temporary) != sorted(
        trial.config.trial_name for trial in state.plan.trials
    ):
        raise Deviation(f"temporary endpoints {[e.name for e in temporary]}, expected one per trial")
    if state.gate_fails:
        settings = state.plan.evaluation.settings if state.plan.evaluation else None
        low = {
            metric: 0.9 if metric in LOWER_IS_BETTER else 0.1
            for metric in (settings.metrics if settings else ())
        }
        for endpoint in temporary:
            state.evaluation.set_scores(endpoint.arn, low)  # a PT is evaluated under its ARN
            state.evaluation.set_scores(
                endpoint.trial, low
            )  # a deployment's responses under the trial's name
    scores = "scores set to miss the gate" if state.gate_fails else "the fake's scores"
    made = ", ".join(f"{endpoint.name} ({endpoint.kind})" for endpoint in temporary)
    return f"nothing served; temporary endpoints: {made} ({scores})"


def gate_evaluates(state: RehearsalState) -> str:
    scheduled_reconcile(state)
    started = sorted(record["jobName"] for record in state.evaluation.jobs.values())
    if len(started) < len(state.plan.trials):
        raise Deviation(f"evaluation jobs {started}, expected one per trial (and the base model's)")
    if state.endpoint_names():
        raise Deviation(f"served before the gate decided: {state.endpoint_names()}")
    return f"evaluation jobs started: {started}"


def gate_decides(state: RehearsalState) -> str:
    scheduled_reconcile(state)
    state.settle()  # deletions finish
    winner = json.loads(state.parameter(names.WINNER_PARAMETER) or "null")
    if winner is None:
        raise Deviation("the gate named no winner and no reason: it did not decide")
    left = [endpoint.name for endpoint in temporary_endpoints(state)]
    if left:
        raise Deviation(f"temporary endpoints outlived the gate's decision: {left}")
    if state.gate_fails:
        if winner.get("trial") is not None or state.endpoint_names():
            raise Deviation(f"a model that failed the gate is served: {winner}, {state.endpoint_names()}")
        return f"no trial passed ({winner.get('reason')}); nothing served; temporary endpoints gone"
    if not winner.get("trial"):
        raise Deviation(f"no trial passed with the fake's scores: {winner}")
    return f"winner {winner['trial']}; temporary endpoints gone; " + check_serving(state, ready=True)


def nothing_billing(state: RehearsalState) -> str:
    """After the teardown: no temporary endpoint and no running evaluation job either."""
    state.settle()
    left = [endpoint.name for endpoint in temporary_endpoints(state)]
    running = [
        record["jobName"]
        for record in state.evaluation.jobs.values()
        if record["status"] in ("InProgress", "Stopping")
    ]
    if left or running:
        raise Deviation(
            f"still billing after the teardown: temporary endpoints {left}, evaluation jobs {running}"
        )
    return "no temporary endpoint, no running evaluation job"


def check_gate_notifications(state: RehearsalState) -> str:
    received = state.read_mailbox()
    gate = [(subject, message) for subject, message in received if "gate" in subject.lower()]
    if not gate:
        raise Deviation(f"no evaluation gate notification on the topic; got {[s for s, _ in received]}")
    if state.gate_fails and not any("missed by" in message for _, message in gate):
        raise Deviation("the gate's notification does not say which metric missed by how much")
    return f"{len(received)} on the topic: " + "; ".join(dict.fromkeys(subject for subject, _ in received))


def check_notifications(state: RehearsalState) -> str:
    received = state.read_mailbox()
    ready = [subject for subject, _ in received if "model ready" in subject]
    if not ready:
        raise Deviation(f"no 'model ready' notification on the topic; got {[s for s, _ in received]}")
    return f"{len(received)} on the topic: " + "; ".join(dict.fromkeys(subject for subject, _ in received))


def update_serving(state: RehearsalState, mode: str) -> dict[str, Any]:
    event = serving_event(state, "Update", mode)
    event["OldResourceProperties"] = state.serving_resource().to_properties()
    response = state.invoke_custom_resource(serving_lifecycle.handler, event, "ServingLifecycle")
    if response["Status"] != "SUCCESS":
        raise Deviation(
            f"Custom::ServingLifecycle Update to {mode} answered {response['Status']}: {response['Reason']}"
        )
    return response


def serve_nothing(state: RehearsalState) -> str:
    update_serving(state, "none")
    throughputs, deployments = state.endpoints()
    if throughputs or deployments:
        left = [throughput.name for throughput in throughputs] + [
            deployment.name for deployment in deployments
        ]
        raise Deviation(f"mode none still serves: {left}")
    if state.parameter(names.ENDPOINT_ARN_PARAMETER) is not None:
        raise Deviation("the endpoint-arn parameter outlived mode none")
    return "Update to mode none: nothing serves, endpoint-arn parameter deleted"


def serve_again(state: RehearsalState) -> str:
    tokens_before = set(state.fake.tokens)
    response = update_serving(state, state.serving_mode)
    throughputs, deployments = state.endpoints()
    endpoints: list[Throughput | Deployment] = [*throughputs, *deployments]
    wanted = 0 if state.serving_mode == "none" else 1
    if len(endpoints) != wanted:
        raise Deviation(
            f"{len(endpoints)} endpoint(s) after switching back to {state.serving_mode}, expected {wanted}"
        )
    if not endpoints:
        return "Update back to mode none: nothing to serve"
    endpoint = endpoints[0]
    if response["Data"]["EndpointArn"] != endpoint.arn:
        raise Deviation(f"EndpointArn {response['Data']['EndpointArn']} is not the serving {endpoint.arn}")
    if state.parameter(names.ENDPOINT_ARN_PARAMETER) != endpoint.arn:
        raise Deviation("the endpoint-arn parameter does not name the new endpoint")
    fresh = set(state.fake.tokens) - tokens_before
    if not fresh:
        raise Deviation("the creation reused a request token: Bedrock would return the deleted endpoint")
    return f"Update back to {state.serving_mode}: {endpoint.name} {endpoint.status} (a new request token), served"


def create_serving_failing(state: RehearsalState) -> str:
    read_back = (
        "get_provisioned_model_throughput"
        if state.serving_mode == "provisioned"
        else "get_custom_model_deployment"
    )
    state.fake.fail_next(read_back, "InternalServerException", "injected: Bedrock failed after creating")
    response = state.invoke_custom_resource(
        serving_lifecycle.handler, serving_event(state, "Create"), "ServingLifecycle"
    )
    if response["Status"] != "FAILED":
        raise Deviation(f"the Create answered {response['Status']} despite the injected fault")
    throughputs, deployments = state.endpoints()
    made = [throughput.name for throughput in throughputs] + [deployment.name for deployment in deployments]
    if not made:
        raise Deviation("the failing Create made nothing: the fault came too early to test the rollback")
    expected = f"{state.environment}-{state.fine_tuning}-serving"
    if response["PhysicalResourceId"] != expected:
        raise Deviation(
            f"the failed Create answered physical id {response['PhysicalResourceId']!r}, not {expected!r}: its Delete would not tear down"
        )
    return f"FAILED after creating {made} (physical id {expected}, so the rollback's Delete tears it down)"


def delete_serving(state: RehearsalState) -> str:
    response = state.invoke_custom_resource(
        serving_lifecycle.handler, serving_event(state, "Delete"), "ServingLifecycle"
    )
    if response["Status"] != "SUCCESS":
        raise Deviation(
            f"Custom::ServingLifecycle Delete answered {response['Status']}: {response['Reason']}"
        )
    throughputs, deployments = state.endpoints()
    if throughputs or deployments:
        left = [item.name for item in throughputs] + [item.name for item in deployments]
        raise Deviation(f"still serving after the teardown: {left}")
    if state.parameter(names.ENDPOINT_ARN_PARAMETER) is not None:
        raise Deviation("the endpoint-arn parameter outlived the teardown")
    return "SUCCESS; no provisioned throughput or deployment left; endpoint-arn parameter deleted"
