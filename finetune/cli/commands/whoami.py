"""`python -m finetune whoami [ENV]`: which AWS account the standard credential chain reaches.

`make diff`, `make deploy` and `make destroy` run it before the CDK CLI, so that missing or expired
credentials give one hint (how to configure them, and that `make synth` needs none) instead of the
CDK CLI's "Unable to resolve AWS account" printed per stack.

Decisions:
- One STS GetCallerIdentity call, which needs no permission: it only proves the credentials work.
- With ENV, STS is asked in the environment's region, and an `account` set in cdk.json must be the
  credentials' account: deploying another account's credentials would fail later, per stack.
- A fresh boto3 session per run: the credentials are resolved now, never from a cached session.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from finetune.cli.aws_access import usage_error_for
from finetune.cli.main import EXIT_INVALID, EXIT_OK, UsageError, project_input


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "whoami",
        help="check the AWS credentials: which account and identity they reach",
        description="Calls STS GetCallerIdentity with the standard credential chain and prints the "
        "account and identity. With ENV, asks in the environment's region and checks the account "
        "cdk.json sets for it. Exit 0 ok; 1 the credentials are for another account than cdk.json's; "
        "2 no or refused credentials (with how to configure them), unknown ENV.",
    )
    parser.add_argument(
        "environment", metavar="ENV", nargs="?", help="an environment of cdk.json (default: none)"
    )
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the project folder (default: here)")
    parser.add_argument("--endpoint-url", default=None, help="another STS endpoint (e.g. moto's server)")
    parser.set_defaults(handler=run)


def sts_client(region: str | None, endpoint_url: str | None) -> Any:
    import boto3

    return boto3.session.Session(region_name=region).client("sts", endpoint_url=endpoint_url)


def run(args: argparse.Namespace) -> int:
    region: str | None = None
    account: str | None = None
    if args.environment is not None:
        from finetune.core.project import load_config

        config = project_input(load_config, args.project)
        environments = {item.name: item for item in config.environments}
        if args.environment not in environments:
            raise UsageError(
                f"no environment {args.environment!r} in cdk.json; known: {', '.join(environments)}"
            )
        region, account = environments[args.environment].region, environments[args.environment].account
    try:
        identity = sts_client(region, args.endpoint_url).get_caller_identity()
    except (BotoCoreError, ClientError) as error:
        raise usage_error_for(error, "STS GetCallerIdentity") from error
    found = str(identity.get("Account", "?"))
    where = f" (STS in {region})" if region else ""
    print(f"AWS credentials: account {found}, {identity.get('Arn', '?')}{where}")
    if account is not None and account != found:
        print(
            f"error: the credentials are for account {found}, but cdk.json deploys environment "
            f"{args.environment!r} to account {account} (environments.{args.environment}.account): use "
            f"credentials of account {account}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    return EXIT_OK
