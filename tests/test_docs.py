"""The README and docs/ as a reader uses them: the quick start's commands run as written, every
`python -m newsrec` command in the docs parses, and every relative link points at a file that exists."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def quick_start() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Quick start")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def bash_commands(markdown: str) -> list[str]:
    """Commands of the ```bash blocks, continuation lines and multi-line quoted arguments joined, comments dropped."""
    commands = []
    for language, block in FENCE.findall(markdown):
        if language != "bash":
            continue
        pending = ""
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip() if pending else line.split(" #")[0].strip()
            if not line or (not pending and line.startswith("#")):
                continue
            pending = f"{pending} {line}" if pending else line
            try:
                shlex.split(pending)
            except ValueError:  # a quote still open: the argument goes on on the next line
                continue
            commands.append(pending)
            pending = ""
    return commands


def newsrec_argv(command: str) -> list[str] | None:
    """The arguments after `python -m newsrec`, or None for other commands (pip, chroma, vllm, ray …)."""
    words = shlex.split(re.sub(r"\$\([^)]*\)", "X", command))  # $(date +%F) stands for one word
    while words and re.match(r"^[A-Z_]+=", words[0]):  # leading VAR=value assignments
        words.pop(0)
    if words[:3] != ["python", "-m", "newsrec"]:
        return None
    ends = [i for i, word in enumerate(words) if word in {"|", ">", ">>", "&&", ";"}]  # a pipe or redirect
    return words[3 : ends[0] if ends else None]


def test_readme_keeps_the_space_header_and_a_short_quick_start():
    text = README.read_text(encoding="utf-8")
    assert text.startswith("---\ntitle: newsrec\n") and "app_file: app.py" in text.split("---")[1]
    for words in ("requirements.txt", "app.py", "pytest"):
        assert words in text
    assert len(text[: text.index("## Modes")].splitlines()) < 80  # the quick start, screenshots included


@pytest.mark.slow
def test_readme_quick_start_commands_run(tmp_path):
    commands = [c for c in bash_commands(quick_start()) if newsrec_argv(c) is not None]
    assert len(commands) >= 2, commands
    env = {**os.environ, "NEWSREC_HOME": str(tmp_path), "NEWSREC_EMBEDDER": "lite", "NEWSREC_RERANKER": "lite"}
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-m", "newsrec", *newsrec_argv(command)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, (command, done.stderr[-1500:])
        assert done.stdout.strip(), command


def test_every_documented_newsrec_command_parses():
    from newsrec.cli import build_parser

    parser = build_parser()
    checked = 0
    for page in [README, *DOCS]:
        for command in bash_commands(page.read_text(encoding="utf-8")):
            argv = newsrec_argv(command)
            if argv is None or "…" in command:  # an elided path is a placeholder, not a command
                continue
            try:
                parser.parse_args(argv)
            except SystemExit as error:
                pytest.fail(f"{page.name}: `{command}` does not parse (exit {error.code})")
            checked += 1
    assert checked >= 10


def test_relative_links_point_at_files():
    for page in [README, *DOCS]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
