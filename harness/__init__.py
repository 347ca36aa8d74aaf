"""Validation and benchmark harness for transformers x torch upgrades."""
