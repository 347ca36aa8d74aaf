"""`python -m harness COMMAND ...`: the same code as the `harness` console script."""

from harness.commands import main

raise SystemExit(main())
