"""Every `frugal ...` command in the docs runs, and exits as the docs say.

Which commands: every fenced ``bash``, ``sh``, ``shell`` or ``console`` block of ``docs/*.md``
and ``README.md``. In a ``console`` block only the lines after a ``$`` prompt are commands (the
rest is output); in the others every line is. A trailing ``\\`` joins the next line, ``#`` starts
a comment, and a line is cut at ``&&``, ``||``, ``;`` and ``|`` into commands: those that start
with ``frugal`` or ``python -m frugal`` are tested; ``cd DIR`` moves the block's later commands.

Expected exit code: 0, unless the command's line ends with a comment ``# exits N``, or (console)
it is followed by ``$ echo $?`` and the number, or ends with ``; echo $?`` and the last line of
its output is the number.

Which are run, which skipped (the skip message says which rule):
- needs a running server or the network: ``serve``, ``route``, ``cache`` and ``demo`` (which
  starts servers), and any command with ``--url`` or a ``://`` address;
- uses the shell: ``$VAR``, ``$(...)``, backticks, or input redirected from a file;
- runs on files the page changed first, marked so by a trailing comment ``# after: <change>``
  (e.g. ``# after: price_usd_per_hour: 0.1071 in frugal.yaml``);
- its inputs are not in the repo: the command's arguments are parsed with frugal's own click
  commands, and every path parameter it reads (given, or left at a default such as
  ``frugal.yaml``; ``--config`` does not count when ``--ledger`` is given) must exist relative
  to the repo root, after the block's ``cd``. Output paths (``--out``, ``--out-dir``,
  ``--report``, ``--plot``, ``--workdir``, and ``check``'s ``--baseline`` with ``--update``) need
  not exist. An absolute path is never in the repo, except that ``/tmp/...`` means the test's
  temporary folder.
A command whose arguments do not parse is run anyway: its usage error is what the test is for.

Each runnable command runs as ``python -m frugal ...`` (no shell; a pipe or redirect after it
is dropped and its output captured) in a fresh copy of the repo's files under a temporary
folder, so a command that writes never touches the repo. Separately, ``frugal ... --help`` runs
for every command path that any fenced block shows (``text`` blocks included).
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from frugal.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
SHELL_BLOCKS = {"bash", "sh", "shell", "console"}
NEEDS_SERVER = {"serve", "route", "cache", "demo"}
OUTPUT_PARAMS = {"out", "out_dir", "report_path", "plot", "workdir"}
CONTROL = {"&&", "||", ";", "|", "&", "(", ")", "$(", "$"}
REDIRECT = {">", ">>", ">&", "&>", "<"}
# Not copied into the temporary folder: the package itself (the installed one must run), caches.
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "venv", "frugal", "tests", "__pycache__", "*.egg-info", ".*_cache", "*.db*"
)
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
FRUGAL = re.compile(r"^(?:\S*/)?(?:frugal|python3?\s+-m\s+frugal)(?=\s|$)")  # help_paths
EXITS_COMMENT = re.compile(r"#\s*exits\s+(\d+)\b")
AFTER_COMMENT = re.compile(r"#\s*after:\s*(.+?)\s*$")
ECHO_STATUS = re.compile(r";\s*echo\s+\$\?\s*$")


@dataclass(frozen=True)
class DocCommand:
    """One ``frugal`` command as a doc shows it, and what the doc expects of it."""

    page: str
    line: int
    args: tuple[str, ...]  # after `frugal`
    cwd: str  # relative to the repo root, from the block's `cd`
    expected: int
    skip: str | None  # why it is not run, or None
    text: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}: {self.text}"


# ---- extraction --------------------------------------------------------------------------------


def _logical_lines(body: str, console: bool) -> Iterator[tuple[int, str, list[str]]]:
    """(line offset, command text, output lines after it) with ``\\`` continuations joined."""
    lines = body.split("\n")
    i = 0
    while i < len(lines):
        raw = lines[i]
        start = i
        if console:
            if not raw.startswith("$ "):
                i += 1
                continue
            raw = raw[2:]
        text = raw
        while i + 1 < len(lines):
            if text.rstrip().endswith("\\"):
                text = text.rstrip()[:-1] + " " + lines[i + 1].strip()
            elif _open_quote(text):
                text += "\n" + lines[i + 1]  # a quoted string goes on to the next line
            else:
                break
            i += 1
        i += 1
        output: list[str] = []
        if console:
            while i < len(lines) and not lines[i].startswith("$ "):
                output.append(lines[i])
                i += 1
        yield start, text, output


def _open_quote(text: str) -> bool:
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return True
    return False


def _segments(text: str) -> Iterator[list[str]]:
    """The commands of one shell line, each as its words, redirections dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words: list[str] = []
    tokens = list(lexer)
    j = 0
    while j < len(tokens):
        token = tokens[j]
        if token in CONTROL:
            yield words
            words = []
        elif token in REDIRECT:
            if token == "<":
                words.append("<")  # marks input from a file: not reproducible
            j += 1  # the redirect's target
            if words and words[-1].isdigit() and token != "<":
                words.pop()  # `2>`: the digit belongs to the redirect
        else:
            words.append(token)
        j += 1
    yield words


def _expected_exit(text: str, output: list[str], next_line: str | None, next_out: list[str]) -> int:
    marked = EXITS_COMMENT.search(text)
    if marked:
        return int(marked.group(1))
    if ECHO_STATUS.search(text):
        numbers = [line.strip() for line in output if line.strip().isdigit()]
        return int(numbers[-1]) if numbers else 0
    if next_line is not None and next_line.strip() == "echo $?" and next_out:
        if next_out[0].strip().isdigit():
            return int(next_out[0].strip())
    return 0


def _command_path(args: list[str]) -> tuple[list[str], click.Command | None, list[str]]:
    """The sub-command words of ``args``, the click command they name, and the rest."""
    command: click.Command | None = main
    path: list[str] = []
    rest = list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        path.append(name)
        command = command.get_command(click.Context(main), name)
    return path, command, rest


def _parse(args: list[str]) -> click.Context | str | None:
    """The command's context from frugal's own parser; the usage error as text; None: --help."""
    path, command, rest = _command_path(args)
    # A group runs by itself only when it says so (`frugal simulate --trace ...`).
    runs_alone = isinstance(command, click.Group) and command.invoke_without_command
    if command is None or (isinstance(command, click.Group) and not runs_alone) or not path:
        return f"no command `frugal {' '.join(path)}`"
    parent = click.Context(main, info_name="frugal")
    for name in path[:-1]:
        group = parent.command
        assert isinstance(group, click.Group)
        sub = group.get_command(parent, name)
        assert sub is not None
        parent = click.Context(sub, info_name=name, parent=parent)
    try:
        return command.make_context(path[-1], rest, parent=parent)
    except click.exceptions.Exit:
        return None
    except click.UsageError as error:
        return error.format_message()


def _read_paths(ctx: click.Context) -> list[str]:
    """Paths the parsed command reads (given, or defaults), not those it writes."""
    params = ctx.params
    outputs = set(OUTPUT_PARAMS)
    if params.get("update"):
        outputs.add("baseline_path")
    if params.get("ledger_path") is not None:
        outputs.add("config_path")  # the config is not read when --ledger is given
    read = []
    for param in ctx.command.params:
        value = params.get(param.name or "")
        if not isinstance(param.type, click.Path) or param.name in outputs or value is None:
            continue
        read += [str(v) for v in value] if isinstance(value, tuple) else [str(value)]
    return read


def _skip_reason(args: list[str], raw: str, cwd: str) -> str | None:
    path, _, _ = _command_path(args)
    if path and path[0] in NEEDS_SERVER:
        return f"`frugal {path[0]}` needs a running server"
    if "--url" in args or any("://" in a for a in args):
        return "talks to a server over the network"
    after = AFTER_COMMENT.search(raw)
    if after:
        return f"runs after a change the page describes: {after.group(1)}"
    if re.search(r"\$\(|`", raw) or any("$" in a for a in args) or "<" in args:
        return "uses shell expansion or redirected input"
    ctx = _parse(args)
    if not isinstance(ctx, click.Context):
        return None  # --help, or it does not parse: run it, so that a usage error fails the test
    missing = [p for p in _read_paths(ctx) if p.startswith("/") or not (ROOT / cwd / p).exists()]
    if missing:
        return f"its inputs are not in the repo: {', '.join(missing)}"
    return None


def _frugal_args(words: list[str]) -> list[str] | None:
    """The arguments after ``frugal`` / ``python -m frugal``; None for another program."""
    if words[:1] and (words[0] == "frugal" or words[0].endswith("/frugal")):
        return words[1:]
    if re.fullmatch(r"(\S*/)?python3?", words[0] if words else "") and words[1:3] == [
        "-m",
        "frugal",
    ]:
        return words[3:]
    return None


def doc_commands() -> list[DocCommand]:
    """Every frugal command of every shell block, in page order."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for block in FENCE.finditer(text):
            lang = block.group(1)
            if lang not in SHELL_BLOCKS:
                continue
            first_line = text.count("\n", 0, block.start(2)) + 1
            console = lang == "console"
            cwd = "."
            lines = list(_logical_lines(block.group(2), console))
            for n, (offset, line, output) in enumerate(lines):
                after = lines[n + 1] if n + 1 < len(lines) else None
                expected = _expected_exit(
                    line, output, after[1] if after else None, after[2] if after else []
                )
                if not re.search(r"\bfrugal\b", line):
                    continue
                try:
                    segments = list(_segments(ECHO_STATUS.sub("", line)))
                except ValueError as error:  # an unclosed quote: the doc is wrong
                    segments = [["frugal", f"<unparsable shell line: {error}>"]]
                for words in segments:
                    while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):
                        words = words[1:]  # VAR=value before a command
                    if words[:1] == ["cd"] and len(words) == 2:
                        cwd = os.path.normpath(os.path.join(cwd, words[1]))
                        continue
                    args = _frugal_args(words)
                    if args is None:
                        continue
                    found.append(
                        DocCommand(
                            page=str(page.relative_to(ROOT)),
                            line=first_line + offset,
                            args=tuple(args),
                            cwd=cwd,
                            expected=expected,
                            skip=_skip_reason(args, line, cwd),
                            text=f"frugal {shlex.join(args)}"[:120],
                        )
                    )
    return found


def help_paths() -> list[tuple[str, ...]]:
    """Every command path (``keys create``...) that any fenced block shows, text blocks too."""
    paths: set[tuple[str, ...]] = set()
    for page in PAGES:
        for block in FENCE.finditer(page.read_text()):
            for line in block.group(2).split("\n"):
                if block.group(1) == "console" and not line.startswith("$ "):
                    continue  # output
                for part in re.split(r"&&|\|\||;|\|", line.removeprefix("$ ")):
                    match = FRUGAL.match(part.strip())
                    if match:
                        words = part.strip()[match.end() :].split()
                        names = itertools.takewhile(
                            lambda w: re.fullmatch(r"[a-z][\w-]*", w), words
                        )
                        paths.add(tuple(_command_path(list(names))[0]))
    return sorted(paths)


COMMANDS = doc_commands()


# ---- the tests ---------------------------------------------------------------------------------


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """The repo's docs, examples and bench files in a temporary folder (not the package)."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT, copy, ignore=NOT_COPIED)
    return copy


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_doc_command_exits_as_documented(command: DocCommand, repo_copy: Path) -> None:
    """The command, run in a copy of the repo, exits with the code its page shows."""
    if command.skip is not None:
        pytest.skip(command.skip)
    scratch = repo_copy.parent / "scratch"
    args = [str(scratch / a[len("/tmp/") :]) if a.startswith("/tmp/") else a for a in command.args]
    scratch.mkdir(exist_ok=True)
    env = os.environ | {"HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg", "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "frugal", *args],
        cwd=repo_copy / command.cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == command.expected, (
        f"{command.page}:{command.line}: `{command.text}` exited {done.returncode}, the page says "
        f"{command.expected}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    )


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_doc_command_parses(command: DocCommand) -> None:
    """Every command shown, run or skipped, has options and arguments frugal accepts.

    This is the check that reaches the commands the rules skip (those needing a server or files
    the repo does not hold); a command the page shows failing with exit 2 may be a usage error.
    """
    ctx = _parse(list(command.args))
    if isinstance(ctx, str):
        assert command.expected == 2, f"{command.page}:{command.line}: `{command.text}`: {ctx}"


@pytest.mark.parametrize("path", help_paths(), ids=lambda p: " ".join(("frugal", *p)))
def test_doc_command_help_runs(path: tuple[str, ...]) -> None:
    """`frugal ... --help` works for every command the docs show."""
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def _anchors(page: Path) -> set[str]:
    """GitHub's ids of a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    text = FENCE.sub("", page.read_text())
    headings = re.findall(r"^#+\s+(.*?)\s*$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_doc_links_and_paths_exist(page: Path) -> None:
    """Every relative link (and its #anchor) and every `frugal/...`, `bench/...`, `examples/...`,
    `tests/...` or `scripts/...` path in code spans names something the repo has."""
    text = FENCE.sub("", page.read_text())
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path) if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(target)
    for span in re.findall(r"`((?:frugal|bench|examples|tests|scripts)/[\w./*-]+)`", text):
        if not list(ROOT.glob(span.rstrip(".,:;"))):
            broken.append(span)
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def test_docs_have_commands_that_run() -> None:
    """The extraction finds the docs' commands, and enough of them run to be a check."""
    ran = [c for c in COMMANDS if c.skip is None]
    for c in COMMANDS:
        print(
            f"{'run ' if c.skip is None else 'skip'} {c.id}" + (f"  ({c.skip})" if c.skip else "")
        )
    assert len(COMMANDS) >= 40, len(COMMANDS)
    assert len(ran) >= 15, [c.id for c in ran]
    pages = {c.page for c in ran}
    assert {"docs/cli.md", "docs/toolkit.md", "docs/plan.md"} <= pages, pages
