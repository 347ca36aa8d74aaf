"""The harness CLI: argv -> call -> exit code."""
