"""`python -m finetune ...`: see finetune/cli/main.py."""

import sys

from finetune.cli.main import main

sys.exit(main())
