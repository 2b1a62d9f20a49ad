"""Declarative rules: YAML packs validated into frozen models, compiled onto durable-rules."""
