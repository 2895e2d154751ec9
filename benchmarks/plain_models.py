"""The tutorial's two models written out as a user would, in plain Keras (no normbench
code): the baseline every plain-script benchmark trains (step_time.py, cnn_limit.py,
plain_imdb.py). One copy, so the baselines cannot drift apart."""


def tutorial_model(model, norm, unroll=False):
    """imdb_rnn: Embedding, SimpleRNN(32) x 2, Dense(1); cifar10_cnn: three Conv2D blocks,
    Dense(128), Dense(10); `norm` batch, layer or none after each block, as the tutorial."""
    import keras
    from keras import layers

    def nrm(where):
        if norm == "batch":
            return layers.BatchNormalization()
        if norm == "layer":
            return layers.LayerNormalization(axis=[1, 2, 3] if where == "conv" else -1)
        return layers.Identity()

    if model == "imdb_transformer":
        return text_transformer(nrm)
    if model == "imdb_rnn":
        return keras.Sequential(
            [
                keras.Input(shape=(200,), dtype="int32"),
                layers.Embedding(10000, 128),
                layers.SimpleRNN(32, return_sequences=True, unroll=unroll),
                nrm("sequence"),
                layers.SimpleRNN(32, unroll=unroll),
                nrm("vector"),
                layers.Dense(1, activation="sigmoid"),
            ]
        )
    blocks = []
    for filters in (32, 64, 128):
        blocks += [layers.Conv2D(filters, (3, 3), activation="relu"), nrm("conv"), layers.MaxPooling2D((2, 2))]
    return keras.Sequential(
        [
            keras.Input(shape=(32, 32, 3)),
            *blocks,
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            nrm("vector"),
            layers.Dense(10, activation="softmax"),
        ]
    )


def text_transformer(nrm, maxlen=200, vocab=10000, embed=32, heads=2, ff=64, rate=0.1):
    """imdb_transformer at its defaults (one pre-norm block, final norm), as a user writes
    it after keras.io's "Text classification with Transformer": a token-and-position
    embedding layer, a functional block with Keras' MultiHeadAttention, mean pooling."""
    import keras
    from keras import layers, ops

    class TokenAndPosition(layers.Layer):
        def __init__(self):
            super().__init__()
            self.tokens = layers.Embedding(vocab, embed)
            self.positions = layers.Embedding(maxlen, embed)

        def call(self, x):
            return self.tokens(x) + self.positions(ops.arange(ops.shape(x)[-1]))

    inputs = keras.Input(shape=(maxlen,), dtype="int32")
    x = TokenAndPosition()(inputs)
    h = nrm("sequence")(x)
    x = x + layers.Dropout(rate)(layers.MultiHeadAttention(heads, embed // heads)(h, h))
    h = nrm("sequence")(x)
    x = x + layers.Dropout(rate)(layers.Dense(embed)(layers.Dense(ff, activation="relu")(h)))
    x = nrm("sequence")(x)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
