"""`python -m finetune retry ENV FINE_TUNING [--job NAME]`: train a Failed or Stopped job again.

A job that Failed or was Stopped trained nothing; with an unchanged configuration and data, it is
trained again as its next generation (`<env>-<ft>-<9 hex>r<N>`). The stack's trigger function does
it (`finetune.aws.training.retry_job`): it checks the job is this fine-tuning's, dead, and of the
deployed configuration and data, validates the data again, starts the next generation, records it as
the deployed job and tells the topic. This command only finds the function and asks it:

1. the job: `--job NAME`, or the deployed job recorded in SSM `/finetune/<env>/<ft>/deployed-job`;
2. the function: the `AWS::Lambda::Function` of the stack `<env>-<ft>` whose logical id starts
   with `CustomizationJobTriggerFunction` (CloudFormation DescribeStackResources);
3. a synchronous Invoke with `{"finetune": "retry", "job": NAME}`, whose answer is printed.

Decisions:
- The function decides, with its own role and the deployed template, so the CLI user needs only
  cloudformation:DescribeStackResources, ssm:GetParameter (without --job) and lambda:InvokeFunction,
  and a retry runs the same validation and start code as a deploy.
- The Invoke waits as long as the function may run (15 minutes: validating a large file takes a
  while). The retry is idempotent (a retried Invoke finds the generation it started), so botocore's
  retries of the call are harmless.
- Exit 0 when a generation was started or already runs; 1 when the function refused (nothing to
  retry, another configuration or data) or the data or Bedrock rejected it, or the function failed;
  2 for usage errors (unknown fine-tuning, stack not deployed, no job recorded, no credentials).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from finetune.aws import jobs, training
from finetune.aws.errors import error_code, error_message
from finetune.cli.aws_access import aws_client, usage_error_for
from finetune.cli.main import EXIT_INVALID, EXIT_OK, UsageError, find_fine_tuning, project_input
from finetune.core import names

TRIGGER_FUNCTION_ID = "CustomizationJobTriggerFunction"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
# The trigger function's timeout (15 minutes) and a margin: the Invoke waits for its answer.
INVOKE_READ_TIMEOUT_SECONDS = 15 * 60 + 60


@dataclass(frozen=True)
class RetryClients:
    cloudformation: Any
    lambda_: Any
    ssm: Any


def clients_for(region: str, endpoint_url: str | None) -> RetryClients:
    """Clients by the standard credential chain; Lambda's waits as long as the function may run."""
    return RetryClients(
        cloudformation=aws_client("cloudformation", endpoint_url=endpoint_url, region=region),
        lambda_=aws_client(
            "lambda", endpoint_url=endpoint_url, region=region, read_timeout=INVOKE_READ_TIMEOUT_SECONDS
        ),
        ssm=aws_client("ssm", endpoint_url=endpoint_url, region=region),
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "retry",
        help="train a Failed or Stopped customization job again, as its next generation",
        description="Asks the stack's trigger function to retrain a customization job that Failed or was "
        "Stopped, with the deployed configuration and the same data: the job's next generation starts, "
        "becomes the deployed job and is announced on the topic. Default job: the deployed one. Exit 0 "
        "started (or already running); 1 refused or rejected (the answer says why); 2 usage errors.",
    )
    parser.add_argument("environment", metavar="ENV", help="an environment of cdk.json, e.g. dev")
    parser.add_argument(
        "fine_tuning", metavar="FINE_TUNING", help="a fine-tuning of cdk.json, e.g. support-assistant"
    )
    parser.add_argument(
        "--job",
        metavar="NAME",
        default=None,
        help="the job to retry (default: the deployed job, from SSM /finetune/ENV/FINE_TUNING/deployed-job)",
    )
    parser.add_argument(
        "--endpoint-url", default=None, help="another endpoint for every call (e.g. moto's server)"
    )
    parser.add_argument("--region", default=None, help="the stack's region (default: the fine-tuning's)")
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the project folder (default: here)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from finetune.core.project import load_config

    config = find_fine_tuning(project_input(load_config, args.project), args.environment, args.fine_tuning)
    environment, fine_tuning = config.environment.name, config.name
    region = args.region or config.region
    if args.job is not None and not names.owns_job(environment, fine_tuning, args.job):
        prefix = names.job_name_prefix(environment, fine_tuning)
        raise UsageError(
            f"--job {args.job}: not a job of {environment}/{fine_tuning}; its jobs are named {prefix}<12 hex> "
            f"(retries {prefix}<9 hex>r<N>)"
        )
    try:
        clients = clients_for(region, args.endpoint_url)
        job = args.job or deployed_job(clients.ssm, environment, fine_tuning)
        function = trigger_function(clients.cloudformation, config.stack_name, region)
        print(f"Asking {function} ({config.stack_name}, {region}) to retry {job} ...", flush=True)
        response = clients.lambda_.invoke(
            FunctionName=function,
            InvocationType="RequestResponse",
            Payload=json.dumps(training.retry_event(job)).encode(),
        )
    except (BotoCoreError, ClientError) as error:
        raise usage_error_for(error) from error
    return report(response, environment, fine_tuning)


def deployed_job(ssm: Any, environment: str, fine_tuning: str) -> str:
    """The deployed job's name from SSM; UsageError when none is recorded."""
    recorded = jobs.read_deployed_job(ssm, environment, fine_tuning)
    if recorded is None:
        parameter = names.ssm_parameter_name(environment, fine_tuning, names.DEPLOYED_JOB_PARAMETER)
        raise UsageError(
            f"no deployed job is recorded in SSM {parameter} (not deployed yet, or by older code): "
            "pass --job NAME (python -m finetune status lists the jobs)"
        )
    return recorded.job_name


def trigger_function(cloudformation: Any, stack_name: str, region: str) -> str:
    """The physical name of the stack's trigger function; UsageError when the stack has none."""
    try:
        resources = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
    except ClientError as error:
        if error_code(error) == "ValidationError":
            raise UsageError(
                f"no stack {stack_name} in {region}: deploy it first (make deploy), or pass --region "
                f"(CloudFormation: {error_message(error)})"
            ) from error
        raise
    for resource in resources:
        if (
            resource.get("ResourceType") == LAMBDA_FUNCTION
            and str(resource.get("LogicalResourceId", "")).startswith(TRIGGER_FUNCTION_ID)
            and resource.get("PhysicalResourceId")
            and resource.get("ResourceStatus") != "DELETE_COMPLETE"
        ):
            return str(resource["PhysicalResourceId"])
    raise UsageError(
        f"stack {stack_name} in {region} has no {LAMBDA_FUNCTION} {TRIGGER_FUNCTION_ID}...: is it a stack "
        "of this project, and deployed completely?"
    )


def report(response: Any, environment: str, fine_tuning: str) -> int:
    """Print the function's answer; the exit code it stands for."""
    body = response["Payload"].read()
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if response.get("FunctionError") or not isinstance(answer, dict):
        details = answer if isinstance(answer, dict) else {"errorMessage": body.decode("utf-8", "replace")}
        print(
            f"error: the trigger function failed: {details.get('errorType', 'error')}: "
            f"{details.get('errorMessage', '')} (its log group has the details)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    outcome = answer.get("outcome")
    follow = f"Follow it with: python -m finetune status {environment} {fine_tuning} --watch"
    if outcome == "started":
        print(
            f"Started {answer.get('newJob')} ({answer.get('status')}), the next generation of "
            f"{answer.get('job')}; it is the deployed job now, and its model is served once it completes."
        )
        print(follow)
        return EXIT_OK
    if outcome == "exists":
        print(
            f"{answer.get('newJob')} already retrains {answer.get('job')} ({answer.get('status')}): "
            "nothing new was started."
        )
        print(follow)
        return EXIT_OK
    if outcome in ("refused", "rejected"):
        what = "not retried" if outcome == "refused" else "rejected"
        print(f"error: {what}: {answer.get('reason')}", file=sys.stderr)
        return EXIT_INVALID
    print(f"error: the trigger function answered something unexpected: {json.dumps(answer)}", file=sys.stderr)
    return EXIT_INVALID
