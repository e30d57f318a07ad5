"""Reading a GGUF's metadata and tensor table: finch's reader (finch.models.gguf_file) against gguf-py's GGUFReader,
on the built-in student and teacher; with --export RUN, also a q4_k_m export of that run with each reader behind
finch's quantisation check (which reads its output once or twice per round).

    python benchmarks/gguf_read.py [--json OUT] [--export RUN_DIR]

Both readers read the same files in this process; the script checks they give the same fields and tensors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def gguf_py_read(path):
    """gguf-py's reader, in finch's GGUFFile shape."""
    from gguf import GGUFReader

    from finch.models.gguf_file import GGUFFile, GGUFTensor

    reader = GGUFReader(path)
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    tensors = [
        GGUFTensor(t.name, t.tensor_type, tuple(int(d) for d in t.shape), int(t.n_elements), t.data)
        for t in reader.tensors
    ]
    return GGUFFile(Path(path), 3, fields, tensors)


def timed(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--export", type=Path, help="a training run of the built-in student to export to q4_k_m")
    args = parser.parse_args()

    import finch.export.quantize as quantize
    from finch.config import load_settings
    from finch.export import export_model
    from finch.models.gguf_file import read_gguf
    from finch.models.prepare import ensure_builtin_gguf
    from finch.models.resolve import resolve_model

    models_dir = load_settings().path("models_dir")
    rows = []
    for name in ("gemma-3-270m", "teacher"):
        model = resolve_model(name, models_dir)
        gguf = ensure_builtin_gguf(model.name, model.gguf)
        ours, ours_s = timed(read_gguf, gguf)
        theirs, theirs_s = timed(gguf_py_read, gguf)
        same = ours.fields == theirs.fields and all(
            a.name == b.name and a.tensor_type == b.tensor_type and np.array_equal(a.data, b.data)
            for a, b in zip(ours.tensors, theirs.tensors, strict=True)
        )
        vocab = len(ours.fields.get("tokenizer.ggml.tokens", []))
        rows.append(
            {"task": f"read {gguf.name} ({vocab} tokens)", "finch_s": ours_s, "gguf_py_s": theirs_s, "same": same}
        )

    if args.export:
        run = resolve_model(str(args.export), models_dir)
        timings = {}
        for label, reader in (("finch_s", read_gguf), ("gguf_py_s", gguf_py_read)):
            quantize.read_gguf = reader
            with tempfile.TemporaryDirectory() as out:
                result, timings[label] = timed(export_model, run, "gguf", "q4_k_m", Path(out))
                timings[label.replace("_s", "_sha")] = hashlib.sha256(result.path.read_bytes()).hexdigest()
        quantize.read_gguf = read_gguf
        rows.append(
            {
                "task": f"q4_k_m export of {args.export.name}",
                "finch_s": timings["finch_s"],
                "gguf_py_s": timings["gguf_py_s"],
                "same": timings["finch_sha"] == timings["gguf_py_sha"],
            }
        )

    table = Table(title="GGUF reading: finch.models.gguf_file vs gguf-py GGUFReader")
    for column in ("task", "finch s", "gguf-py s", "speed-up", "same result"):
        table.add_column(column)
    for row in rows:
        speedup = row["gguf_py_s"] / row["finch_s"]
        table.add_row(
            row["task"], f"{row['finch_s']:.2f}", f"{row['gguf_py_s']:.2f}", f"{speedup:.1f}×", str(row["same"])
        )
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
