"""Tiny real ONNX pair classifiers for the plug-in tests: each logit counts occurrences of one token id.

They are built with the ``onnx`` package and run by onnxruntime exactly as a user's cross-encoder or
NLI model would be (same inputs, [batch, labels] output).
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from tether.models._embedder import packaged_model_files


def tokenizer_path() -> Path:
    return packaged_model_files()[1]


def token_id(word: str) -> int:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path()))
    tok.no_padding()
    ids = tok.encode(word, add_special_tokens=False).ids
    assert len(ids) == 1, f"{word!r} is not one word piece"
    return int(ids[0])


def write_counter_model(path: Path, words: list[str], *, with_token_types: bool = True, rank: int = 2) -> Path:
    """logits[:, i] = how often ``words[i]`` occurs in the pair (rank 1: a flat [batch] output)."""
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"]),
    ]
    if with_token_types:
        inputs.append(helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["b", "s"]))
    nodes, outs, inits = [], [], []
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    inits.append(axes)
    for i, w in enumerate(words):
        inits.append(helper.make_tensor(f"tok{i}", TensorProto.INT64, [], [token_id(w)]))
        nodes += [
            helper.make_node("Equal", ["input_ids", f"tok{i}"], [f"eq{i}"]),
            helper.make_node("Cast", [f"eq{i}"], [f"f{i}"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", [f"f{i}", "axes"], [f"c{i}"], keepdims=1),
        ]
        outs.append(f"c{i}")
    nodes.append(helper.make_node("Concat", outs, ["logits2d"], axis=1))
    if rank == 1:
        nodes.append(helper.make_node("ReduceSum", ["logits2d", "axes"], ["logits"], keepdims=0))
        out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b"])
    else:
        nodes.append(helper.make_node("Identity", ["logits2d"], ["logits"]))
        out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", len(words)])
    graph = helper.make_graph(nodes, "counter", inputs, [out], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
