"""The default embedder's two runtimes: onnxruntime on a graph written from the weights, and numpy.

Both must give the same vectors (cosine ≥ 0.9999 per text), the graph must be cached by the
weights' hash, and a memoturnd running the onnx runtime must store and recall over HTTP.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import numpy as np
import pytest
from memoturn.config import Settings
from memoturn.data import onnx_embedding
from memoturn.data.embedding import MiniLMEmbedder, get_embedder
from memoturn.errors import BadRequest
from support.nodes import Memoturnd

WORDS = (
    "Alice Bob went to the market on Sunday and bought fresh bread tea coffee because her sister "
    "visited from Lisbon last week they talked about painting chess music school work travel plans "
    "photo dog garden birthday party café naïve résumé 東京 🎉 don't it's 3.14 2026"
).split()


def texts(n: int = 240, seed: int = 5) -> list[str]:
    """Sentences of 1 to 60 words, plus the edges: empty, one character, past the 256-piece cut."""
    rng = random.Random(seed)
    out = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 60))) for _ in range(n)]
    return [*out, "", "x", " ".join(WORDS * 12)]


@pytest.fixture(scope="module")
def numpy_embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder(runtime="numpy")


@pytest.fixture(scope="module")
def onnx_embedder(tmp_path_factory) -> MiniLMEmbedder:
    return MiniLMEmbedder(runtime="onnx", cache_dir=tmp_path_factory.mktemp("graphs"))


def test_onnx_and_numpy_give_the_same_vectors(numpy_embedder, onnx_embedder):
    sample = texts()
    expected = numpy_embedder.embed(sample)
    got = onnx_embedder.embed(sample)
    assert got.shape == expected.shape == (len(sample), 384) and got.dtype == np.float32
    cosine = (got * expected).sum(1)
    assert cosine.min() >= 0.9999, (cosine.argmin(), cosine.min())
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # Batching does not change a text's vector: one at a time, the same.
    alone = np.stack([onnx_embedder.embed([t])[0] for t in sample[:20]])
    assert (alone * got[:20]).sum(1).min() >= 0.9999


def test_the_plain_onnx_graph_matches_the_fused_one(numpy_embedder, tmp_path):
    """The standard-operator graph (step for step the numpy code) and onnxruntime's BERT kernels agree."""
    import onnxruntime as ort

    weights = Path(numpy_embedder.model_dir) / "model.safetensors"
    plain = ort.InferenceSession(onnx_embedding.cached_model(weights, tmp_path, fused=False))
    fused = ort.InferenceSession(onnx_embedding.cached_model(weights, tmp_path, fused=True))
    enc = numpy_embedder.tokenizer.encode_batch(texts(30))
    seq = max(len(e.ids) for e in enc)
    ids = np.zeros((len(enc), seq), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, e in enumerate(enc):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = 1
    feed = {"input_ids": ids, "attention_mask": mask}
    a, b = plain.run(["embeddings"], feed)[0], fused.run(["embeddings"], feed)[0]
    assert (a * b).sum(1).min() >= 0.9999
    assert (a * numpy_embedder._forward(ids, mask)).sum(1).min() >= 0.9999


def test_the_graph_is_cached_under_the_weights_hash(numpy_embedder, tmp_path):
    weights = Path(numpy_embedder.model_dir) / "model.safetensors"
    first = onnx_embedding.cached_model(weights, tmp_path)
    [cached] = tmp_path.glob("*.onnx")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    assert digest in cached.name and f"g{onnx_embedding.GRAPH_VERSION}" in cached.name
    stamp = cached.stat().st_mtime_ns
    assert onnx_embedding.cached_model(weights, tmp_path) == first == cached.read_bytes()
    assert cached.stat().st_mtime_ns == stamp  # read, not built again


def test_chunks_bound_the_padding(numpy_embedder):
    lengths = sorted([5] * 10 + [9] * 10 + [40] * 3 + [200])
    chunks = numpy_embedder.chunks(lengths)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(lengths)
    assert all(a < b and b == c for (a, b), (c, _) in zip(chunks, chunks[1:], strict=False))
    for a, b in chunks:
        run = lengths[a:b]
        assert b - a <= numpy_embedder.batch
        assert len(run) == 1 or max(run) * len(run) <= 1.25 * sum(run)


def test_the_runtime_setting(monkeypatch):
    assert Settings().embedder_runtime == "onnx"
    monkeypatch.setenv("MEMOTURN_EMBEDDER_RUNTIME", "numpy")
    assert Settings().embedder_runtime == "numpy"
    with pytest.raises(BadRequest, match="unknown embedder runtime"):
        get_embedder("default", runtime="tpu")
    monkeypatch.setenv("MEMOTURN_EMBEDDER_RUNTIME", "tpu")
    with pytest.raises(BadRequest, match="unknown embedder runtime"):
        get_embedder("default")


def test_memoturnd_with_the_onnx_runtime_stores_and_recalls(tmp_path):
    cache = tmp_path / "xdg-cache"
    data = tmp_path / "data"
    daemon = Memoturnd(
        str(data), f"file://{data}/store", env={"MEMOTURN_EMBEDDER_RUNTIME": "onnx", "XDG_CACHE_HOME": str(cache)}
    )
    try:
        daemon.wait_ready()
        base = "/v1/namespaces/acme/profiles/alice"
        for content in ("Alice plays chess on Sundays", "Alice drinks green tea", "The train to Porto was late"):
            r = daemon.client.post(base + "/memories", json={"content": content})
            assert r.status_code == 201, r.text
        r = daemon.client.post(base + "/recall", json={"query": "which board game does Alice play", "limit": 3})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["memory"]["content"] == "Alice plays chess on Sundays"
        assert daemon.client.get(base).json()["embedding_dim"] == 384
        assert len(list((cache / "memoturn" / "embedder").glob("*.onnx"))) == 1
    finally:
        daemon.close()
    assert "Traceback" not in open(os.path.join(data, "memoturnd.log")).read()
