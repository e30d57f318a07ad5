"""The paper's three plot kinds for a study of quality against training iterations: each prompt's score across
the iterations, the mean score with its 95% confidence interval per iteration (with the losses on a second axis),
and all prompts side by side."""

from __future__ import annotations

from pathlib import Path

from finch.plotting import pyplot, save_figure


def plot_per_prompt_vs_steps(
    path: Path, per_prompt: dict[str, dict[str, float]], step_of: dict[str, int], score: str
) -> Path:
    """One line per prompt: its score (mean over samples and graders) at each step, the base at step 0."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    models = sorted(per_prompt, key=lambda label: step_of[label])
    prompts = sorted({p for scores in per_prompt.values() for p in scores}, key=lambda p: (len(p), p))
    for prompt in prompts:
        points = [(step_of[m], per_prompt[m][prompt]) for m in models if per_prompt[m].get(prompt) is not None]
        if points:
            ax.plot(*zip(*points), marker="o", label=f"prompt {prompt}")
    ax.set_xlabel("training iterations (0: the base model)")
    ax.set_ylabel(score)
    ax.set_title("score per prompt across iterations")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def plot_mean_vs_steps(path: Path, table: list[dict], score: str, log: list[dict]) -> Path:
    """The mean score with its 95% CI per iteration; the training and eval loss on a second axis."""
    plt = pyplot()
    ci = "grade_ci" if score == "mean_grade" else "key_fact_ci"
    rows = [row for row in table if row[score] is not None]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.errorbar(
        [r["step"] for r in rows],
        [r[score] for r in rows],
        yerr=[r[ci] or 0 for r in rows],
        marker="o",
        capsize=4,
        color="tab:blue",
        label=f"{score} (95% CI)",
    )
    ax.set_xlabel("training iterations (0: the base model)")
    ax.set_ylabel(score, color="tab:blue")
    losses = ax.twinx()
    losses.plot([r["step"] for r in log], [r["loss"] for r in log], color="tab:gray", linewidth=0.8, label="train loss")
    evals = [r for r in log if "eval_loss" in r]
    if evals:
        losses.plot(
            [r["step"] for r in evals], [r["eval_loss"] for r in evals], "s--", color="tab:red", label="eval loss"
        )
    losses.set_ylabel("loss (nats per labelled token)")
    handles = [h for a in (ax, losses) for h in a.get_legend_handles_labels()[0]]
    ax.legend(handles, [h.get_label() for h in handles], fontsize="small", loc="best")
    ax.set_title("mean score per iteration, with the losses")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def plot_prompts_side_by_side(path: Path, per_prompt: dict[str, dict[str, float]], score: str) -> Path:
    """Grouped bars: one group per prompt, one bar per model (the base and each checkpoint)."""
    from finch.evaluate.report import plot_per_prompt

    return plot_per_prompt(path, "study iterations", per_prompt, score)
