"""One module per `python -m finetune` command; each exposes `register(subparsers)`.

`register` adds its sub-parser and sets `handler=` to a function `(args) -> int` (the exit code).
"""
