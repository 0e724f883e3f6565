"""Lambda entry points, one module per construct and named like it, and the CloudFormation
responder. Each handler parses its event, calls `finetune.aws`, and answers.
"""

import logging

# Lambda's root logger takes the handlers' JSON lines (`finetune.aws.log`) at INFO and above.
logging.getLogger().setLevel(logging.INFO)
