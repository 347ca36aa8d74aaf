"""matrix.yaml and expectations.yaml: the typed model and its loading (host)."""
