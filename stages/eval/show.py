"""`rrhf eval`'s result on stdout: the report as a table, the paired difference and the win rate, or JSON."""

from __future__ import annotations

from stages.eval.report import EvalReport
from stages.runtime.console import output_console, print_json


def show_report(report: EvalReport, json_output: bool = False) -> None:
    """Print an eval's report: a table, the paired reward difference and the win rate, or JSON on stdout."""
    if json_output:
        print_json(report.model_dump(mode="json"))
        return
    from rich.table import Table

    console = output_console()
    title = f"rrhf eval: {report.prompts} prompts"
    table = Table("", "mean reward", "responses", "reference perplexity", title=title, title_justify="left")
    for label, item in (("model", report.model), ("baseline", report.baseline)):
        if item is not None:
            ppl = "n/a" if item.reference_perplexity is None else f"{item.reference_perplexity:.3f}"
            table.add_row(f"{label}: {item.model}", f"{item.mean_reward:.4f}", str(item.responses), ppl)
    console.print(table)
    if (gain := report.reward_over_baseline) is not None:
        note = "" if gain.se is None else " (± 1 s.e.; ahead by more than 2 s.e.)" if gain.ahead else " (± 1 s.e.)"
        console.print(f"reward of the model over the baseline, paired over {gain.prompts} prompts: {gain}{note}",
                      soft_wrap=True)  # one line whatever the width, for grep and logs
    if report.win_rate is not None:
        console.print(f"win rate of the model over the baseline: {report.win_rate:.3f} (ties count half)")
