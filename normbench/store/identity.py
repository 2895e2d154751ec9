"""A run's identity: one hash of what determines its training, so that the same run
found in two folders (a study's run folder copied, or a tune's confirmation run that a
fixed-rate study already made) is recognised as one observation, never two.

    identity(config, summary) -> "sha256:..." or None

What goes in (`parts`): the resolved config, flattened to dotted keys, without the keys
that name or place a run rather than train it (`name`, `output.*`, `sweep.*`, a tune's
`role`, and `data.path`: where the data was read, not what it was; the fingerprint
stands for the data); the seed (a config key); summary.json's `data_fingerprint`;
`versions.normbench` (a version can change what a config trains); the backend
(`versions.backend`, else `train.backend`); and `model_sha256` for a user's model (the
file can change under one config). A run without a data fingerprint (from before
summary.json recorded it) has no identity: its data cannot be told apart.

train.py records it in summary.json (`identity`); for run folders from before that key,
`normbench.analysis.runs.load_run` computes it from config.yaml and summary.json, with the same
function, so old committed studies are recognised too. Nothing here imports
TensorFlow, Keras or click.
"""

from __future__ import annotations

import hashlib
import json

ROLE_KEY = "role"  # normbench.analysis.runs.ROLE_KEY: a tune member's role, kept with its config
# config keys that name or place a run, never what it trains (besides name, output.*, sweep.*)
NOT_TRAINING = ("name", ROLE_KEY, "data.path")


def not_training(key: str) -> bool:
    """Config keys left out of the identity."""
    return key in NOT_TRAINING or key.split(".")[0] in ("output", "sweep")


def parts(config: dict, summary: dict) -> dict | None:
    """What the identity hashes, as a JSON-able dict; None without a data fingerprint."""
    fp = summary.get("data_fingerprint")
    if not isinstance(fp, str) or not fp:
        return None
    versions = summary.get("versions") if isinstance(summary.get("versions"), dict) else {}
    return {
        "config": {k: v for k, v in config.items() if not not_training(k)},
        "data_fingerprint": fp,
        "normbench": versions.get("normbench"),
        "backend": versions.get("backend") or config.get("train.backend"),
        "model_sha256": summary.get("model_sha256"),
    }


def identity(config: dict, summary: dict) -> str | None:
    """sha256 of `parts` (JSON with sorted keys); None without a data fingerprint.
    `config`: the resolved config flattened to dotted keys (config.resolve_flat)."""
    p = parts(config, summary)
    if p is None:
        return None
    text = json.dumps(p, sort_keys=True, default=str, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def short(ident: str | None) -> str:
    """'sha256:0123abcd...' -> '0123abcd'; None -> 'none'."""
    return ident.split(":", 1)[-1][:8] if ident else "none"
