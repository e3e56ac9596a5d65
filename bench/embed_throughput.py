"""Embedding throughput: Tether's OnnxEmbedder.embed against onnxruntime called directly.

Same model (the packaged all-MiniLM-L6-v2 int8 ONNX), same tokenizer settings (truncation 256, padding
to the longest text of a batch), same texts (SciFact chunks as ingest embeds them: title > section, then
the text), same batch size, same intra-op thread count. The direct loop is the shortest correct one:
tokenize a batch, run the session, mean-pool over the attention mask, L2-normalise. It runs twice: on
the batches Tether forms (texts sorted by length, which is what Tether does) and in input order (the
naive loop, with more padding). Runs alternate (Tether, direct, Tether, ...) and the best of the rounds
counts, so that a busy machine hurts both sides alike. Outputs are checked to be the same vectors.

    python bench/embed_throughput.py [--texts 1000] [--batch-size 8] [--threads 0] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from _common import SHARED, need
from tether.evals import BeirData
from tether.ingest._chunk import chunk_document
from tether.ingest._pipeline import embedding_text
from tether.ingest.parsers import parse_file
from tether.models._embedder import OnnxEmbedder, packaged_model_files


def chunk_texts(root: Path, n: int) -> list[str]:
    out: list[str] = []
    for _, title, text in BeirData(root=root, split="").corpus():
        parsed = parse_file(Path("record.txt"), text.encode("utf-8")).model_copy(update={"title": title})
        for ch in chunk_document(parsed, 200, 32):
            out.append(embedding_text(parsed.title, ch.section, ch.text))
            if len(out) >= n:
                return out
    return out


class Direct:
    """onnxruntime + tokenizers, nothing else."""

    def __init__(self, model: Path, tokenizer: Path, threads: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(tokenizer))
        self.tok.enable_truncation(max_length=256)
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])

    def batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        encs = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        hidden = self.sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden[0] * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        out: npt.NDArray[np.float32] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out

    def run(self, texts: list[str], batch_size: int, order: list[int]) -> npt.NDArray[np.float32]:
        out = np.zeros((len(texts), 384), np.float32)
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            out[idx] = self.batch([texts[i] for i in idx])
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: all cores, Tether's default)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    texts = chunk_texts(need(SHARED / "scifact"), args.texts)
    threads = args.threads or (os.cpu_count() or 1)
    model, tok = packaged_model_files()
    tether = OnnxEmbedder(model, tok, "bench", batch_size=args.batch_size, threads=threads)
    direct = Direct(model, tok, threads)
    by_length = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    as_given = list(range(len(texts)))
    tether.embed(texts[:64])  # load and warm both sessions
    direct.run(texts[:64], args.batch_size, list(range(64)))

    times: dict[str, list[float]] = {"tether": [], "direct_same_batches": [], "direct_input_order": []}
    outs: dict[str, npt.NDArray[np.float32]] = {}
    for _ in range(args.rounds):
        for name in times:
            t0 = time.perf_counter()
            if name == "tether":
                outs[name] = tether.embed(texts)
            else:
                outs[name] = direct.run(texts, args.batch_size, by_length if "same" in name else as_given)
            times[name].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    report = {
        "texts": len(texts),
        "batch_size": args.batch_size,
        "threads": threads,
        "rounds": args.rounds,
        "texts_per_s": {k: round(len(texts) / v, 1) for k, v in best.items()},
        "tether_vs_direct_same_batches": round(best["direct_same_batches"] / best["tether"], 3),
        "tether_vs_direct_input_order": round(best["direct_input_order"] / best["tether"], 3),
        "max_abs_diff_vs_direct": float(np.abs(outs["tether"] - outs["direct_same_batches"]).max()),
        "all_round_seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return
    for k, v in report.items():
        print(f"{k:32s} {v}")


if __name__ == "__main__":
    main()
