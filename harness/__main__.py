"""`python -m harness validate|cells|summary`."""

from harness.commands.cli import main

raise SystemExit(main())
