"""Lambda entry points, one module per construct and named like it, and the CloudFormation
responder. Each handler parses its event, calls `finetune.aws`, and answers."""
