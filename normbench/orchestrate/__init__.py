"""normbench.orchestrate: many runs: executors, sweep, tune, progress.

Which layer may import which: docs/layers.md (tests/test_layers_contract.py enforces it)."""
