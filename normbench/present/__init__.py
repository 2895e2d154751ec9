"""normbench.present: what users open: plots, frames, export, listing, report.

Which layer may import which: docs/layers.md (tests/test_layers_contract.py enforces it)."""
