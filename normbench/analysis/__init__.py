"""normbench.analysis: reading runs back and judging them: runs, stats, results, tables, explain.

Which layer may import which: docs/layers.md (tests/test_layers_contract.py enforces it)."""
