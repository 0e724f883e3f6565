"""The pure domain: configuration, model catalog, checks, data validation, cost, plans, names and
contracts. Standard library only (no boto3, no aws_cdk): synth, the CLI and Lambda all use it."""
