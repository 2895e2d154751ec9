"""normbench.core: errors, version, strict YAML, atomic files, check helpers, the metric table, quiet imports, signals, run locks: imports nothing of normbench.

Which layer may import which: docs/layers.md (tests/test_layers_contract.py enforces it)."""
