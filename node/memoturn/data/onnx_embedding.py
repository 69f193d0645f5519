"""all-MiniLM-L6-v2's encoder as an ONNX graph, run by onnxruntime: the same weights, faster.

The numpy forward pass of :mod:`memoturn.data.embedding` spends its time in small GEMMs and in
elementwise passes (GELU, layer norm, softmax, one numpy call each, one core). onnxruntime runs
the same computation with fused kernels on every core. Nothing is downloaded and there is no
exporter (no PyTorch here): :func:`build_graph` writes the graph node by node with
``onnx.helper`` from the ``model.safetensors`` the numpy path reads: embeddings and their layer
norm, 6 BERT layers, mean pooling over the attention mask and L2 normalisation. The layers use
onnxruntime's own BERT kernels (``Attention`` with Q, K, V packed, ``SkipLayerNormalization``,
``BiasGelu``); ``fused=False`` writes them with standard ONNX operators instead, step for step
the numpy code (the tests hold the two graphs and numpy to the same vectors). The graph is
cached as a file keyed by the weights' SHA-256 and :data:`GRAPH_VERSION`, so only the first
start on a machine builds it (~2 s).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Unavailable

log = logging.getLogger(__name__)

# Bump when build_graph changes what it writes: the cached files carry it in their name.
GRAPH_VERSION = 1
HEADS = 12
LAYERS = 6
HIDDEN = 384
OPSET = 17  # LayerNormalization is an ONNX operator from 17 on


def default_cache_dir() -> Path:
    """Where built graphs are kept: ``$XDG_CACHE_HOME/memoturn/embedder`` (``~/.cache/…``)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "memoturn" / "embedder"


def build_graph(weights: dict[str, np.ndarray], *, fused: bool = True) -> Any:
    """The ONNX model (``onnx.ModelProto``) of the encoder, mean pooling and L2 normalisation.

    Inputs ``input_ids`` and ``attention_mask`` (int64, ``[batch, seq]``); output
    ``embeddings`` (float32, ``[batch, 384]``, unit rows). Token type ids are always 0 here,
    so that embedding row is folded into the position embeddings.
    """
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []
    names: set[str] = set()

    def const(name: str, value: np.ndarray) -> str:
        if name not in names:
            names.add(name)
            inits.append(numpy_helper.from_array(value, name))
        return name

    def scalar(value: float) -> str:
        return const(f"c_{value!r}", np.array(value, dtype=np.float32))

    def ints(name: str, values: list[int]) -> str:
        return const(name, np.array(values, dtype=np.int64))

    def op(kind: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out

    def w(name: str) -> str:
        return const(name, np.ascontiguousarray(weights[name], dtype=np.float32))

    def dense(x: str, name: str, out: str) -> str:
        # torch Linear stores (out, in); MatMul wants (in, out).
        wt = const(name + ".weight.T", np.ascontiguousarray(weights[name + ".weight"].T, dtype=np.float32))
        return op("Add", [op("MatMul", [x, wt], out + "_mm"), w(name + ".bias")], out)

    def layer_norm(x: str, prefix: str, out: str) -> str:
        return op("LayerNormalization", [x, w(prefix + ".weight"), w(prefix + ".bias")], out, axis=-1, epsilon=1e-12)

    def wt(name: str) -> str:
        return const(name + ".weight.T", np.ascontiguousarray(weights[name + ".weight"].T, dtype=np.float32))

    def fused_layer(x: str, p: str, i: int, mask_i32: str) -> str:
        # onnxruntime's own BERT kernels (com.microsoft domain): one Attention op with Q, K and
        # V packed in one weight, then bias + residual + layer norm, and bias + exact GELU, each
        # as one kernel. The same arithmetic as the plain operators below.
        qkv = [f"{p}.attention.self.{n}" for n in ("query", "key", "value")]
        packed_w = np.concatenate([weights[n + ".weight"].T for n in qkv], axis=1)
        packed_b = np.concatenate([weights[n + ".bias"] for n in qkv])
        ctx = ms(
            "Attention",
            [
                x,
                const(f"{p}.qkv.weight", np.ascontiguousarray(packed_w, dtype=np.float32)),
                const(f"{p}.qkv.bias", packed_b.astype(np.float32)),
                mask_i32,
            ],
            f"l{i}_ctx",
            num_heads=HEADS,
        )
        attn = op("MatMul", [ctx, wt(f"{p}.attention.output.dense")], f"l{i}_attn")
        ln = f"{p}.attention.output.LayerNorm"
        x = ms(
            "SkipLayerNormalization",
            [attn, x, w(ln + ".weight"), w(ln + ".bias"), w(f"{p}.attention.output.dense.bias")],
            f"l{i}_ln1",
            epsilon=1e-12,
        )
        h = op("MatMul", [x, wt(f"{p}.intermediate.dense")], f"l{i}_h")
        gelu = ms("BiasGelu", [h, w(f"{p}.intermediate.dense.bias")], f"l{i}_gelu")
        out = op("MatMul", [gelu, wt(f"{p}.output.dense")], f"l{i}_out")
        ln = f"{p}.output.LayerNorm"
        return ms(
            "SkipLayerNormalization",
            [out, x, w(ln + ".weight"), w(ln + ".bias"), w(f"{p}.output.dense.bias")],
            f"l{i}_ln2",
            epsilon=1e-12,
        )

    def plain_layer(x: str, p: str, i: int, bias: str) -> str:
        # Standard ONNX operators only, step for step the numpy forward pass.
        hd = HIDDEN // HEADS
        heads_shape = ints("heads_shape", [0, 0, HEADS, hd])
        q = op("Reshape", [dense(x, f"{p}.attention.self.query", f"l{i}_q"), heads_shape], f"l{i}_q4")
        k = op("Reshape", [dense(x, f"{p}.attention.self.key", f"l{i}_k"), heads_shape], f"l{i}_k4")
        v = op("Reshape", [dense(x, f"{p}.attention.self.value", f"l{i}_v"), heads_shape], f"l{i}_v4")
        q = op("Transpose", [q], f"l{i}_qt", perm=[0, 2, 1, 3])
        k = op("Transpose", [k], f"l{i}_kt", perm=[0, 2, 3, 1])
        v = op("Transpose", [v], f"l{i}_vt", perm=[0, 2, 1, 3])
        scores = op("Div", [op("MatMul", [q, k], f"l{i}_qk"), scalar(math.sqrt(hd))], f"l{i}_scaled")
        probs = op("Softmax", [op("Add", [scores, bias], f"l{i}_masked")], f"l{i}_probs", axis=-1)
        ctx = op("Transpose", [op("MatMul", [probs, v], f"l{i}_ctx4")], f"l{i}_ctxt", perm=[0, 2, 1, 3])
        ctx = op("Reshape", [ctx, ints("hidden_shape", [0, 0, HIDDEN])], f"l{i}_ctx")
        attn = dense(ctx, f"{p}.attention.output.dense", f"l{i}_attn")
        x = layer_norm(op("Add", [attn, x], f"l{i}_res1"), f"{p}.attention.output.LayerNorm", f"l{i}_ln1")
        h = dense(x, f"{p}.intermediate.dense", f"l{i}_h")
        # Exact GELU: x * 0.5 * (1 + erf(x / √2)).
        erf = op("Erf", [op("Div", [h, scalar(math.sqrt(2.0))], f"l{i}_h_scaled")], f"l{i}_erf")
        gelu_x = op("Mul", [h, op("Add", [erf, scalar(1.0)], f"l{i}_erf1")], f"l{i}_gelu_x")
        gelu = op("Mul", [gelu_x, scalar(0.5)], f"l{i}_gelu")
        out = dense(gelu, f"{p}.output.dense", f"l{i}_out")
        return layer_norm(op("Add", [out, x], f"l{i}_res2"), f"{p}.output.LayerNorm", f"l{i}_ln2")

    def ms(kind: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(kind, inputs, [out], name=out, domain="com.microsoft", **attrs))
        return out

    # Embeddings: word + position (+ token type 0), then layer norm.
    positions = np.ascontiguousarray(
        weights["embeddings.position_embeddings.weight"] + weights["embeddings.token_type_embeddings.weight"][0],
        dtype=np.float32,
    )
    seq = op("Gather", [op("Shape", ["input_ids"], "ids_shape"), const("one", np.array(1, dtype=np.int64))], "seq")
    pos_ids = op("Range", [const("zero", np.array(0, dtype=np.int64)), seq, "one"], "pos_ids")
    words = op("Gather", [w("embeddings.word_embeddings.weight"), "input_ids"], "words")
    pos = op("Gather", [const("positions", positions), pos_ids], "pos")
    x = layer_norm(op("Add", [words, pos], "emb_sum"), "embeddings.LayerNorm", "emb")

    mask = op("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    if fused:
        mask_i32 = op("Cast", ["attention_mask"], "mask_i32", to=TensorProto.INT32)
        for i in range(LAYERS):
            x = fused_layer(x, f"encoder.layer.{i}", i, mask_i32)
    else:
        # Additive attention mask: 0 where a token is, -10000 on padding (exp underflows to 0).
        mask4 = op("Unsqueeze", [mask, ints("axes_1_2", [1, 2])], "mask4")
        bias = op("Mul", [op("Sub", [scalar(1.0), mask4], "mask_inv"), scalar(-10000.0)], "mask_bias")
        for i in range(LAYERS):
            x = plain_layer(x, f"encoder.layer.{i}", i, bias)

    # Mean pooling over real tokens, then unit length (sentence-transformers' Pooling + Normalize).
    mask3 = op("Unsqueeze", [mask, ints("axis_2", [2])], "mask3")
    summed = op("ReduceSum", [op("Mul", [x, mask3], "masked"), ints("axis_1", [1])], "summed", keepdims=0)
    count = op("Max", [op("ReduceSum", [mask3, "axis_1"], "count_raw", keepdims=0), scalar(1e-9)], "count")
    pooled = op("Div", [summed, count], "pooled")
    norm = op("Max", [op("ReduceL2", [pooled], "norm_raw", axes=[1], keepdims=1), scalar(1e-12)], "norm")
    op("Div", [pooled, norm], "embeddings")

    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", HIDDEN])],
        inits,
    )
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="memoturn")
    model.ir_version = 8
    return model


def weights_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cached_model(weights_path: Path, cache_dir: Path | None = None, *, fused: bool = True) -> bytes:
    """The serialized graph for these weights: from the cache, or built (and cached if it can be)."""
    cache_dir = cache_dir or default_cache_dir()
    kind = "fused" if fused else "plain"
    target = cache_dir / f"all-MiniLM-L6-v2-{weights_digest(weights_path)[:16]}-g{GRAPH_VERSION}-{kind}.onnx"
    try:
        return target.read_bytes()
    except OSError:
        pass
    from safetensors.numpy import load_file

    model = build_graph(load_file(str(weights_path)), fused=fused)
    data: bytes = model.SerializeToString()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)  # whole or absent: two processes building at once both succeed
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:  # a read-only home: build it again next start
        log.warning("could not cache the embedder's ONNX graph in %s: %s", cache_dir, exc)
    return data


class OnnxEncoder:
    """``(input_ids, attention_mask) -> unit embeddings`` through an onnxruntime session."""

    def __init__(self, weights_path: Path, cache_dir: Path | None = None, *, threads: int = 0) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise Unavailable(
                "the onnx embedder runtime needs the package onnxruntime; or set MEMOTURN_EMBEDDER_RUNTIME=numpy",
                type="embedder-unavailable",
            ) from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads  # 0: one per physical core
        # Idle pool threads sleep instead of spinning: the node's other threads need those cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            graph = cached_model(weights_path, cache_dir)
        except ImportError:  # no cached graph, and nothing to write one with
            raise Unavailable(
                "the onnx embedder runtime needs the package onnx to build its graph once; "
                "or set MEMOTURN_EMBEDDER_RUNTIME=numpy",
                type="embedder-unavailable",
            ) from None
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def __call__(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = self.session.run(["embeddings"], {"input_ids": ids, "attention_mask": mask})
        unit: np.ndarray = np.asarray(out[0], dtype=np.float32)
        return unit
