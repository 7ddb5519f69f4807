"""The packet filter, generated from the policy: compile (pure), render, apply."""
