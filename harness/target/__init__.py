"""Code that runs inside a stack's environment: stdlib + torch + transformers only."""
