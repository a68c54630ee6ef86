"""Artifact reading throughput: rrhf's validated reader against bare `json.loads`, on the same file.

Prints records per second for both and the ratio; the baseline is measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from stages.contract.artifacts import write_records
from stages.contract.inputs import load_records


def _synthetic(path: Path, records: int, k: int) -> None:
    rows = (
        {
            "prompt": [{"role": "user", "content": f"Question {i}: " + "word " * 40}],
            "responses": [
                {"text": f"answer {j} " + "token " * 60, "source": "policy", "score": (i * 7 + j) % 11 / 3}
                for j in range(k)
            ],
        }
        for i in range(records)
    )
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("-k", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scored.jsonl"
        _synthetic(path, args.records, args.k)
        megabytes = path.stat().st_size / 1e6

        def baseline(file: Path) -> None:
            with file.open(encoding="utf-8") as handle:
                for line in handle:
                    json.loads(line)

        copy = Path(folder) / "copy.jsonl"
        loaded = load_records(path)
        bare = _best_of(args.repeats, lambda: baseline(path))
        read = _best_of(args.repeats, lambda: load_records(path))
        write = _best_of(args.repeats, lambda: write_records(copy, loaded.records))
        # A stage's own output, where every record has its id: no ids to derive.
        bare_copy = _best_of(args.repeats, lambda: baseline(copy))
        read_copy = _best_of(args.repeats, lambda: load_records(copy))
    n = args.records
    print(f"bench io: {n} records x {args.k} responses ({megabytes:.0f} MB)")
    print(f"  baseline json.loads      {n / bare:10.0f} records/s")
    print(f"  rrhf load_records        {n / read:10.0f} records/s   ratio to baseline {bare / read:.2f}x  (no ids)")
    print(f"  rrhf write_records       {n / write:10.0f} records/s   ratio to baseline {bare / write:.2f}x")
    print(f"  baseline json.loads      {n / bare_copy:10.0f} records/s   (the written artifact)")
    print(f"  rrhf load_records        {n / read_copy:10.0f} records/s   ratio to baseline {bare_copy / read_copy:.2f}x"
          "  (ids given, as stages write them)")


if __name__ == "__main__":
    main()
