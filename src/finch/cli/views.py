"""Views several commands share: the data-generation bars and summary table, the training bar."""

from __future__ import annotations

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from finch.cli.ui import err, out


class RichProgress:
    """One bar per leaf and stage, with ETA and kept/rejected counts (finch.sdg.generate.Progress)."""

    def __init__(self):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("kept {task.fields[kept]} rejected {task.fields[rejected]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=err,
        )
        self.task = None

    def start(self, leaf: str, stage: str, total: int, done: int) -> None:
        self.progress.start()  # once: later calls do nothing; the caller stops it when the run ends
        self.task = self.progress.add_task(f"{leaf}: {stage}", total=total, completed=done, kept=0, rejected=0)

    def advance(self, kept: int, rejected: int) -> None:
        fields = self.progress.tasks[-1].fields
        self.progress.update(self.task, advance=1, kept=fields["kept"] + kept, rejected=fields["rejected"] + rejected)

    def grow(self, calls: int) -> None:
        self.progress.update(self.task, total=self.progress.tasks[-1].total + calls)

    def finish(self) -> None:
        if self.task is not None:  # the stage ended, done or not: its clock and ETA stop where they are
            self.progress.stop_task(self.task)


def print_summary(report: dict) -> None:
    table = Table(title="generated data", show_lines=False)
    for column in ("leaf", "stage", "generated", "kept", "rejected", "seconds"):
        table.add_column(column, justify="right" if column in ("generated", "kept", "seconds") else "left")
    for leaf in report["leaves"]:
        for i, stage in enumerate(leaf["stages"] or [{"stage": leaf["status"]}]):
            rejected = ", ".join(f"{k} {v}" for k, v in sorted(stage.get("rejected", {}).items()))
            if stage.get("abstained"):
                rejected += f"{', ' if rejected else ''}(judge abstained on {stage['abstained']} kept)"
            if stage.get("facts"):
                total, before, after = stage["facts"]
                rejected += f"{', ' if rejected else ''}(document facts stated: {before} -> {after} of {total})"
            if stage.get("seed_copies"):
                rejected += f"{', ' if rejected else ''}({stage['seed_copies']} kept repeat a seed example)"
            table.add_row(
                escape(leaf["leaf"]) if i == 0 else "",
                stage["stage"],
                str(stage.get("generated", "")),
                str(stage.get("kept", "")),
                rejected,
                str(stage.get("seconds", "")),
            )
    out.print(table)
    out.print(
        f"{report['output']}: train {report['train']} rows, test {report['test']}, "
        f"knowledge MCQ {report['knowledge_mcq']}, replay {report['replay']}; {report['seconds']} s"
    )
    empty = [leaf["leaf"] for leaf in report["leaves"] if leaf["status"] == "complete" and leaf["train"] == 0]
    if empty:
        out.print(
            f"[yellow]no sample passed for {', '.join(empty)}[/]: see the rejections above (the teacher's rejected "
            "answers are in the .work journals); a stronger teacher (--teacher URL) or a larger --scale helps."
        )
    abstained = sum(s.get("abstained", 0) for leaf in report["leaves"] for s in leaf["stages"])
    if abstained:
        out.print(
            f"[yellow]{abstained} samples kept unrated[/]: the teacher's judge rated spoiled seed examples as high "
            "as the real ones, so its ratings could not filter; a stronger teacher (--teacher URL) judges them."
        )


class TrainProgress:
    """A rich bar over optimiser steps with loss, tokens/s and ETA; starts at the first step."""

    def __init__(self) -> None:
        self.progress = None
        self.task = None

    def update(self, record: dict) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        if self.progress is None:
            self.progress = Progress(
                TextColumn("[bold]training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=err,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=record.get("total_steps"), stats="")
        stats = f"loss {record['loss']:.4f}  {record['tokens_per_s']:.0f} tok/s"
        if "eval_loss" in record:
            stats += f"  eval {record['eval_loss']:.4f}"
        self.progress.update(self.task, completed=record["step"], total=record.get("total_steps"), stats=stats)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
