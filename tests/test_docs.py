"""Every command of README.md and docs/ runs from an empty folder, and every output they show
is the command's output; the CLI reference is the parsers'; every link resolves.

Blocks: ```bash lines starting with ``inferbench`` run in order (one empty folder per page,
so a page's commands may build on each other; ``NAME=value`` lines set a variable);
```console blocks start with ``$ inferbench …`` and show its standard output; ```python blocks
run as they are. A block after ``<!-- docs-test: skip, <why> -->`` is run elsewhere (the why
names where). Durations ("in 2.9 s") are the one thing not compared.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import warnings
from pathlib import Path

import pytest

from dse.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- docs-test: skip[^>]*-->\s*)?```(\w+)\n(.*?)```", re.S)
DURATION = re.compile(r"\b\d+(\.\d+)? s\b")

pytestmark = pytest.mark.docs


def blocks(page: Path) -> list[tuple[str, str]]:
    return [(kind, body) for skip, kind, body in BLOCK.findall(page.read_text(encoding="utf-8")) if not skip]


def lines_of(body: str) -> list[str]:
    """Logical lines: continuations joined, comments and blank lines dropped."""
    out, cur = [], ""
    for raw in body.splitlines():
        cur += raw.rstrip()
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        if cur.strip() and not cur.lstrip().startswith("#"):
            out.append(cur.strip())
        cur = ""
    return out


def run(argv: list[str]) -> str:
    """Standard output of one command, run as a user runs it (its warnings are printed, not raised)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), warnings.catch_warnings():
        warnings.simplefilter("default")
        code = main(argv)
    assert code == 0, f"inferbench {shlex.join(argv)} exited {code}"
    return buf.getvalue()


def normal(text: str) -> str:
    return "\n".join(DURATION.sub("… s", ln.rstrip()) for ln in text.strip().splitlines())


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_runs_from_an_empty_folder(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env: dict[str, str] = {}
    for kind, body in blocks(page):
        if kind == "python":
            exec(compile(body, f"{page.name} (python block)", "exec"), {"__name__": "__docs__"})
        elif kind == "console":
            first, _, shown = body.partition("\n")
            assert first.startswith("$ inferbench "), first
            assert normal(run(shlex.split(first[2:])[1:])) == normal(shown), f"{page.name}: {first}"
        elif kind in ("bash", "sh"):
            for line in lines_of(body):
                if re.fullmatch(r"[A-Z_]+=\S+", line):
                    key, value = line.split("=", 1)
                    env[key] = value
                elif line.startswith("inferbench "):
                    argv = shlex.split(os.path.expandvars(line) if not env else _expand(line, env), comments=True)
                    run(argv[1:])
                else:  # installation and the test suite itself
                    assert line.startswith(("pip ", "python -m pytest", "mkdocs ")), f"{page.name}: {line}"


def _expand(line: str, env: dict[str, str]) -> str:
    for k, v in env.items():
        line = line.replace(f"${k}", v)
    return line


def test_the_cli_reference_is_the_parsers():
    from dse.cli._reference import reference

    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == reference(), (
        "docs/cli.md is stale: python -m dse.cli._reference > docs/cli.md"
    )


def test_every_relative_link_and_cited_anchor_resolves():
    link = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")
    for page in PAGES:
        for target, _ in link.findall(page.read_text(encoding="utf-8")):
            if not re.match(r"[a-z]+://", target):
                assert (page.parent / target).exists(), f"{page.name}: broken link {target}"
    anchors = {m.lower() for m in re.findall(r"^## (.+)$", (ROOT / "docs" / "references.md").read_text(), re.M)}
    cited = re.compile(r"docs/references\.md#([a-z0-9-]+)")
    for path in [*ROOT.glob("models/**/*.py"), *ROOT.glob("models/**/*.yaml"), *ROOT.glob("dse/**/*.py"),
                 *ROOT.glob("calibration/**/*.py"), *ROOT.glob("sweeps/*.yaml")]:  # fmt: skip
        for anchor in cited.findall(path.read_text(encoding="utf-8")):
            assert anchor in anchors, f"{path.relative_to(ROOT)} cites docs/references.md#{anchor}: no such section"


def regenerate(page: Path, folder: Path) -> None:
    """Rewrite the outputs of ``page``'s console blocks with what the commands print now, its
    bash blocks run before them in order as the test runs them (``python tests/test_docs.py
    [PAGE...]``; from the checkout, the commands in a scratch folder)."""
    text = page.read_text(encoding="utf-8")
    cwd = os.getcwd()
    os.chdir(folder)

    def block(m: re.Match) -> str:
        skip, kind, body = m.group(1), m.group(2), m.group(3)
        if skip:
            return m.group(0)
        if kind in ("bash", "sh"):
            for line in lines_of(body):
                if line.startswith("inferbench "):
                    run(shlex.split(line, comments=True)[1:])
        if kind != "console":
            return m.group(0)
        first = body.partition("\n")[0]
        out = run(shlex.split(first[2:])[1:])
        return f"```console\n{first}\n{out.rstrip()}\n```"

    try:
        page.write_text(BLOCK.sub(block, text), encoding="utf-8")
    finally:
        os.chdir(cwd)


if __name__ == "__main__":
    import sys
    import tempfile

    for name in sys.argv[1:] or [str(p) for p in PAGES]:
        with tempfile.TemporaryDirectory() as tmp:
            regenerate(Path(name).resolve(), Path(tmp))
