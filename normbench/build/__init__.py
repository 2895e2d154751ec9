"""normbench.build: the registries that build a run: norms, Keras layers, models, your model, optimizers, data sets, the data cache, preprocessing, augmentation.

Which layer may import which: docs/layers.md (tests/test_layers_contract.py enforces it)."""
