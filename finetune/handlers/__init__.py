"""Lambda entry points: thin adapters from an event to a `finetune` operation and back."""
