"""Environments: a sandboxed workspace per rollout, checked out at the task's base commit."""
