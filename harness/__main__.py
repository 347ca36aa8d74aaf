"""`python -m harness validate|cells|summary`."""

from harness.cli import main

raise SystemExit(main())
