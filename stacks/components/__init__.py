"""Reusable pieces of the stacks: hardened pod specs and the model-server track component."""
