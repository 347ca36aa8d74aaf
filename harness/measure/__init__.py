"""Host side of a run: environments, workers, the runner, budgets, fit, shards."""
