"""normbench.training: one run: the training path and its callbacks.

Which layer may import which: docs/layers.md (tests/test_layers_contract.py enforces it)."""
