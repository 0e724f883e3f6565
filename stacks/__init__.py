"""Stacks: compose constructs and wire grants; no business logic."""
