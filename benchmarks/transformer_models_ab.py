"""imdb_transformer (normbench) against the plain keras.io-style script of the same model
(plain_models.text_transformer), in one process: the same batch, train_on_batch 15 steps
per round, 6 rounds in alternating order, after 3 warm-up steps each. The model alone,
without either training path (step_time.py times those).

    PYTHONPATH=$PWD python benchmarks/transformer_models_ab.py
"""
import sys, time, numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
import keras
from plain_models import tutorial_model
from normbench.schema.config import from_dict
from normbench.build.models import build_model
keras.utils.set_random_seed(0)
cfg = from_dict({"name":"x","data":{"name":"synthetic_imdb"},"model":{"arch":"imdb_transformer","norm":"layer"}})
a = tutorial_model("imdb_transformer","layer"); b = build_model(cfg, 2)
print(a.count_params(), b.count_params())
x = np.random.default_rng(0).integers(0,10000,(64,200)).astype("int32"); y = np.random.default_rng(1).integers(0,2,64)
for m in (a,b):
    m.compile(optimizer="adam", loss="binary_crossentropy")
    for _ in range(3): m.train_on_batch(x,y)
res={"plain":[], "normbench":[]}
for r in range(6):
    for name,m in (("plain",a),("normbench",b)) if r%2==0 else (("normbench",b),("plain",a)):
        t=time.perf_counter()
        for _ in range(15): m.train_on_batch(x,y)
        res[name].append((time.perf_counter()-t)/15*1000)
for k,v in res.items(): print(k, [round(t,1) for t in v], "median", round(float(np.median(v)),1))
