"""Deterministic local text embedding: signed feature hashing, no model download.

Features: word unigrams (weight 1.0), word bigrams (0.5) and character 3- and
4-grams of each word (0.3), hashed with BLAKE2b into DIM buckets with a hash-derived
sign, then L2-normalised.  Same text -> same vector on every host and Python run.
"""

from __future__ import annotations

import hashlib
import math
import re

DIM = 384
_TOKEN = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)?")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "or",
        "the",
        "of",
        "for",
        "in",
        "on",
        "with",
        "to",
        "by",
        "from",
        "at",
        "as",
        "is",
        "are",
        "this",
        "that",
        "it",
        "its",
        "new",
        "set",
        "pack",
        "pcs",
        "piece",
        "pieces",
        "x",
    ]
)


def normalise(text: str) -> str:
    """Lower-cased, whitespace-collapsed text (also the cache key basis)."""
    return " ".join(text.lower().split())


def tokens(text: str) -> list[str]:
    out = []
    for tok in _TOKEN.findall(normalise(text)):
        if tok in _STOP:
            continue
        # crude singular: drills -> drill, batteries -> battery
        if len(tok) > 4 and tok.endswith("ies"):
            tok = tok[:-3] + "y"
        elif len(tok) > 3 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        out.append(tok)
    return out


def _bucket(feature: str) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "big")
    return value % DIM, (1.0 if (value >> 63) & 1 else -1.0)


def features(text: str) -> dict[str, float]:
    toks = tokens(text)
    feats: dict[str, float] = {}

    def add(name: str, weight: float) -> None:
        feats[name] = feats.get(name, 0.0) + weight

    for tok in toks:
        add("w:" + tok, 1.0)
        padded = f"<{tok}>"
        for n in (3, 4):
            for i in range(len(padded) - n + 1):
                add(f"c{n}:" + padded[i : i + n], 0.3)
    for a, b in zip(toks, toks[1:], strict=False):
        add(f"b:{a} {b}", 0.5)
    return feats


def embed(text: str) -> list[float]:
    vec = [0.0] * DIM
    for feat, weight in features(text).items():
        idx, sign = _bucket(feat)
        vec[idx] += sign * weight
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0.0:
        return vec
    return [v / norm for v in vec]
