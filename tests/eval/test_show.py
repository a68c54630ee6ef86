"""`rrhf eval`'s result on stdout: the table names both models, the paired reward difference and the win rate;
--json is the report itself."""

import json

from stages.eval.report import EvalReport, ModelReport
from stages.eval.show import show_report
from stages.report.paired import PairedDifference

REPORT = EvalReport(prompts=3, model=ModelReport(model="out", mean_reward=0.5, responses=6, reference_perplexity=2.0),
                    baseline=ModelReport(model="base", mean_reward=0.4, responses=6), win_rate=0.6,
                    reward_over_baseline=PairedDifference(mean=0.1, se=0.04, prompts=3))


def test_the_table_names_each_model_and_the_win_rate(capsys):
    show_report(REPORT)
    out = capsys.readouterr().out
    assert "model: out" in out and "0.5000" in out and "2.000" in out
    assert "baseline: base" in out and "n/a" in out  # no reference answers scored under the baseline
    assert "win rate of the model over the baseline: 0.600 (ties count half)" in out
    assert "paired over 3 prompts: +0.100 ± 0.040 (± 1 s.e.; ahead by more than 2 s.e.)" in out


def test_a_difference_within_two_standard_errors_or_without_one_is_not_called_ahead(capsys):
    for gain, shown in ((PairedDifference(mean=0.05, se=0.04, prompts=3), "+0.050 ± 0.040 (± 1 s.e.)\n"),
                        (PairedDifference(mean=0.4, se=None, prompts=1), "paired over 1 prompts: +0.400\n")):
        show_report(REPORT.model_copy(update={"reward_over_baseline": gain}))
        out = capsys.readouterr().out
        assert shown in out and "ahead" not in out


def test_json_is_the_report(capsys):
    show_report(REPORT, json_output=True)
    assert EvalReport.model_validate(json.loads(capsys.readouterr().out)) == REPORT
