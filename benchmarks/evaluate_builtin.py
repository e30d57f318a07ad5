"""Wall time of finch's evaluation on the built-in model, offline: `--benchmark mt_bench --judge gemma-3-270m
--limit 2` (2 questions x 2 turns answered, 4 judgements), and the quickstart's base-vs-tuned table
(quick_base_vs_tuned: 3 seed questions per sample-taxonomy leaf, base and a LoRA run, ROUGE-L).

    FINCH_HOME=... HF_HUB_OFFLINE=1 python benchmarks/evaluate_builtin.py [--json OUT] [--max-tokens N]
        [--judge-max-tokens N] [--run RUN_DIR]

Without --run, the tuned model is a LoRA with random weights on the built-in model: the worst case for time, as its
answers run to the token limit.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--max-tokens", type=int, default=None, help="mt_bench answer tokens (default: finch's)")
    parser.add_argument("--judge-max-tokens", type=int, default=None)
    parser.add_argument("--run", type=Path, help="a trained run directory for the quickstart table")
    args = parser.parse_args()

    from finch.config import load_settings
    from finch.evaluate.branch import quick_base_vs_tuned
    from finch.evaluate.run import evaluate
    from finch.models.prepare import prepare_model
    from finch.models.resolve import resolve_model
    from finch.taxonomy import check_taxonomy, sample_taxonomy_dir
    from finch.taxonomy.seed_rows import seed_rows

    models_dir = load_settings().path("models_dir")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        results = evaluate(
            {"gemma-3-270m": "gemma-3-270m"},
            "mt_bench",
            None,
            Path(tmp) / "mt",
            models_dir,
            limit=2,
            max_tokens=args.max_tokens,
            judge="gemma-3-270m",
            judge_max_tokens=args.judge_max_tokens,
        )
        rows.append(
            {
                "task": "mt_bench --limit 2, built-in model and judge",
                "seconds": time.perf_counter() - start,
                **results["gemma-3-270m"],
            }
        )
        run = args.run
        if run is None:
            from tests.tiny_models import write_tiny_lora

            hf_dir = prepare_model(resolve_model("gemma-3-270m", models_dir))
            run = write_tiny_lora(hf_dir, Path(tmp) / "run", targets=("q_proj", "v_proj"))
        start = time.perf_counter()
        verdicts = quick_base_vs_tuned(
            "gemma-3-270m",
            str(run),
            seed_rows(check_taxonomy([sample_taxonomy_dir()], skip_documents=True)),
            models_dir,
        )
        rows.append(
            {
                "task": "quick_base_vs_tuned, 3 questions x 3 leaves",
                "seconds": time.perf_counter() - start,
                "verdicts": {v.leaf: v.verdict for v in verdicts},
            }
        )
    for row in rows:
        print(f"{row['task']}: {row['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
