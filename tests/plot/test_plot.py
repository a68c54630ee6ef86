"""`rrhf plot` writes real PNGs from training folders and scored files."""

import json

PNG = b"\x89PNG\r\n\x1a\n"


def test_training_curves_and_reward_histograms(tmp_path, write_jsonl, cli):
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": s, "loss": 2.0 / s, "rank_loss": 1.0 / s, "sft_loss": 1.0 / s, "rank_acc": None if s == 1 else 0.5}
            for s in range(1, 6)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = cli("plot", run, "-o", tmp_path / "curves.png")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG

    before = write_jsonl("before.jsonl", [{"prompt": "p", "responses": [{"text": "a", "score": 0.1},
                                                                          {"text": "b", "score": 0.3}]}])
    after = write_jsonl("after.jsonl", [{"prompt": "p", "responses": [{"text": "a", "score": 0.5},
                                                                        {"text": "b", "score": 0.7}]}])
    result = cli("plot", before, after, "-o", tmp_path / "rewards.png")
    assert result.exit_code == 0, result.stderr
    png = (tmp_path / "rewards.png").read_bytes()
    assert png[:8] == PNG and len(png) > 5000


def test_unscored_files_and_plain_folders_are_bad_input(tmp_path, write_jsonl, cli):
    result = cli("plot", write_jsonl("s.jsonl", [{"prompt": "p", "responses": ["a"]}]), "-o", tmp_path / "x.png")
    assert result.exit_code == 2 and "no scored responses" in result.stderr
    result = cli("plot", tmp_path, "-o", tmp_path / "x.png")
    assert result.exit_code == 2 and "no metrics.jsonl" in result.stderr
    assert not (tmp_path / "x.png").exists()
