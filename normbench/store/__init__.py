"""normbench.store: the run folder (files, summary keys, history columns, runs.csv) and a run's identity.

Which layer may import which: docs/layers.md (tests/test_layers_contract.py enforces it)."""
