"""Upgrade decisions: statistics, verdicts between stacks, compare, walk, bisect."""
