"""The README and docs/ stay true: every `rrhf ...` command they show parses against the real command line
(flags exist, are not former spellings, choices are valid), every `make` target exists, and every relative
link resolves, anchors included."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main

from rrhf_cli.app import app

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`(rrhf [^`]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
LAUNCHED = re.compile(r"-m rrhf_cli (.*)$")  # torchrun ... -m rrhf_cli CMD, accelerate launch ... -m rrhf_cli CMD


@dataclass(frozen=True)
class Command:
    """One documented command line: where it is, and rrhf's arguments after `rrhf`."""

    where: str
    args: tuple[str, ...]
    complete: bool  # from a code block, so required arguments must be there too (an inline span may elide them)


def _logical_lines(block: str) -> list[str]:
    """A shell block's lines with backslash continuations joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True) if line.strip() else []
        lines.append(shlex.join(words))
    return lines


def rrhf_args(line: str) -> tuple[str, ...] | None:
    """rrhf's arguments in one shell line (`rrhf ...` or a launcher's `-m rrhf_cli ...`), cut at the first pipe,
    `&&`, `;` or `&`; None when the line runs no rrhf command.

    >>> rrhf_args("rrhf inspect f.jsonl --json | jq .summary")
    ('inspect', 'f.jsonl', '--json')
    >>> rrhf_args("torchrun --nproc_per_node 8 -m rrhf_cli train s.jsonl -o out/")
    ('train', 's.jsonl', '-o', 'out/')
    """
    words = shlex.split(line, comments=True)
    if not words:
        return None
    if words[0] == "rrhf":
        rest = words[1:]
    elif "-m" in words and words[words.index("-m") + 1 : words.index("-m") + 2] == ["rrhf_cli"]:
        rest = words[words.index("-m") + 2 :]
    else:
        return None
    for i, word in enumerate(rest):
        if word in {"|", "&&", ";", "&", "||"} or word.startswith((">", "<")):
            return tuple(rest[:i])
    return tuple(rest)


def documented_commands(page: Path, root: Path = ROOT) -> list[Command]:
    """Every rrhf command a page shows: code-block lines and inline `rrhf ...` spans."""
    text = page.read_text()
    name = page.relative_to(root).as_posix()
    found = []
    for block in FENCE.finditer(text):
        first_line = text.count("\n", 0, block.start(1)) + 1
        for offset, line in enumerate(_logical_lines(block.group(1))):
            args = rrhf_args(line) if line.startswith(("rrhf ", "torchrun ", "accelerate ")) else None
            if args:
                found.append(Command(f"{name}:{first_line + offset}", args, complete=True))
    outside = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for span in INLINE.finditer(outside):
        args = rrhf_args(span.group(1))
        if args and args[0] != "...":
            found.append(Command(f"{name}:{outside.count(chr(10), 0, span.start()) + 1}", args, complete=False))
    return found


def check_command(command: Any, args: tuple[str, ...], complete: bool) -> str | None:
    """Why `args` would not parse as `rrhf ARGS`, or None when they do: an unknown or former flag, a value that is
    not one of its choices, or (when `complete`) a missing required argument."""
    path = ["rrhf"]
    rest = list(args)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):  # a group: descend to its command
        name = rest.pop(0)
        if name not in command.commands:
            return f"No such command '{name}' in {' '.join(path)}"
        command, path = command.commands[name], [*path, name]
    if hasattr(command, "commands"):
        return "names no command"
    try:
        command.make_context(" ".join(path), rest, resilient_parsing=False)
    except typer.Exit:  # --help, --version
        return None
    except Exception as err:  # click's usage errors (Typer vendors click, so they are matched by what they have)
        if not hasattr(err, "format_message"):
            raise
        return None if type(err).__name__ == "MissingParameter" and not complete else err.format_message()
    used = {opt for opt in args if opt.startswith("-")}
    for param in command.params:
        if getattr(param, "hidden", False) and used & set(param.opts + param.secondary_opts):
            return f"{'/'.join(param.opts)} is a former spelling"
    return None


CLI = typer.main.get_command(app)
COMMANDS = [command for page in PAGES for command in documented_commands(page)]


@pytest.mark.parametrize("doc", COMMANDS, ids=lambda c: c.where)
def test_documented_command_parses(doc: Command) -> None:
    problem = check_command(CLI, doc.args, doc.complete)
    assert problem is None, f"{doc.where}: rrhf {shlex.join(doc.args)}: {problem}"


def test_every_command_is_documented() -> None:
    shown = {doc.args[0] for doc in COMMANDS}
    assert set(CLI.commands) - shown == set()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "complete", "problem"),
    [
        (("rank", "a.jsonl", "-o", "b.jsonl"), True, None),
        (("rank", "a.jsonl", "-o", "b.jsonl", "--no-such-flag"), True, "No such option"),
        (("rank", "a.jsonl", "-o", "b.jsonl", "--pairs", "bogus"), True, "'bogus' is not one of"),
        (("rank", "a.jsonl"), True, "Missing option"),
        (("rank", "--pairs", "all"), False, None),
        (("nosuchcommand",), True, "No such command"),
        (("sample", "p.jsonl", "-o", "s.jsonl", "--backend", "vllm"), True, "former spelling"),
    ],
)
def test_checker_catches_what_it_should(args: tuple[str, ...], complete: bool, problem: str | None) -> None:
    found = check_command(CLI, args, complete)
    assert (found is None) if problem is None else (found is not None and problem in found), found


def test_commands_are_found_in_blocks_spans_and_launchers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Run `rrhf rank --pairs all` here.\n\n```bash\nrrhf sample p.jsonl \\\n  -o s.jsonl  # a comment\n"
        "torchrun --nproc_per_node 2 -m rrhf_cli score s.jsonl -o t.jsonl\nmake demo\n```\n"
    )
    found = documented_commands(page, root=tmp_path)
    assert [(c.where, c.args, c.complete) for c in found] == [
        ("page.md:4", ("sample", "p.jsonl", "-o", "s.jsonl"), True),
        ("page.md:5", ("score", "s.jsonl", "-o", "t.jsonl"), True),
        ("page.md:1", ("rank", "--pairs", "all"), False),
    ]


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens.

    >>> _slug("vLLM (`--engine vllm`)")
    'vllm---engine-vllm'
    """
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


LINKS = [
    (page, target)
    for page in PAGES
    for target in LINK.findall(FENCE.sub("", page.read_text()))
    if not re.match(r"[a-z]+:", target)
]


@pytest.mark.parametrize(("page", "target"), LINKS, ids=lambda v: v.name if isinstance(v, Path) else v)
def test_relative_link_resolves(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    resolved = (page.parent / path).resolve() if path else page
    assert resolved.exists(), f"{page.name}: {target} does not exist"
    if anchor and resolved.suffix == ".md":
        assert anchor in _anchors(resolved), f"{page.name}: no heading #{anchor} in {resolved.name}"


def _make_targets(makefile: Path) -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", makefile.read_text(), re.M))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_documented_make_targets_exist(page: Path) -> None:
    for block in FENCE.finditer(page.read_text()):
        for line in _logical_lines(block.group(1)):
            words = line.split()
            if not words or words[0] != "make":
                continue
            folder = ROOT / words[words.index("-C") + 1] if "-C" in words else ROOT
            targets = [w for w in words[1:] if re.fullmatch(r"[a-z][\w-]*", w) and w != folder.name]
            missing = set(targets) - _make_targets(folder / "Makefile")
            assert not missing, f"{page.name}: `{line}` names no such target {sorted(missing)}"
