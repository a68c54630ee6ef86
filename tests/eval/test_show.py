"""`rrhf eval`'s result on stdout: the table names both models and the win rate; --json is the report itself."""

import json

from stages.eval.report import EvalReport, ModelReport
from stages.eval.show import show_report

REPORT = EvalReport(prompts=3, model=ModelReport(model="out", mean_reward=0.5, responses=6, reference_perplexity=2.0),
                    baseline=ModelReport(model="base", mean_reward=0.4, responses=6), win_rate=0.6)


def test_the_table_names_each_model_and_the_win_rate(capsys):
    show_report(REPORT)
    out = capsys.readouterr().out
    assert "model: out" in out and "0.5000" in out and "2.000" in out
    assert "baseline: base" in out and "n/a" in out  # no reference answers scored under the baseline
    assert "win rate of the model over the baseline: 0.600 (ties count half)" in out


def test_json_is_the_report(capsys):
    show_report(REPORT, json_output=True)
    assert EvalReport.model_validate(json.loads(capsys.readouterr().out)) == REPORT
