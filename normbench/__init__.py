"""normbench: how does the normalization layer change how a Keras model trains?

Importing this package must stay cheap: nothing here imports TensorFlow or Keras.
The modules that need them (models, train, data loaders) import them inside functions.
"""

__version__ = "0.1.0"


class NormbenchError(Exception):
    """A failure the user can fix: the message is one line naming the file and the fix."""
