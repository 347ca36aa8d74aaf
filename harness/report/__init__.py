"""Tables, plots, the dashboard, claims and markdown of runs' records."""
