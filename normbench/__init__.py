"""normbench: how does the normalization layer change how a Keras model trains?

Importing this package must stay cheap: nothing here imports TensorFlow or Keras.
The modules that need them (models, train, data loaders) import them inside functions.
"""

from normbench.core.errors import NormbenchError, one_line  # noqa: F401  (the public API: catch NormbenchError)
from normbench.core.version import __version__  # noqa: F401


def load_runs(paths):
    """Run folders under `paths` as a pandas DataFrame, one row per run (the flattened
    config, summary.json's figures, status, path): `normbench.present.frames.load_runs`."""
    from normbench.present.frames import load_runs

    return load_runs(paths)


def load_history(paths):
    """Every run's history.csv under `paths` as one long pandas DataFrame (run, path,
    epoch, metric columns): `normbench.present.frames.load_history`."""
    from normbench.present.frames import load_history

    return load_history(paths)
