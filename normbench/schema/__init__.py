"""normbench.schema: the config: YAML into frozen dataclasses, --set, --smoke; each section is handed to its registry's check.

Which layer may import which: docs/layers.md (tests/test_layers_contract.py enforces it)."""
