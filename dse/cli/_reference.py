"""The command-line reference (``docs/cli.md``), generated from the parsers themselves:
``python -m dse.cli._reference > docs/cli.md``; a test keeps the file equal to it."""

from __future__ import annotations

import argparse

from ._main import build_parser


def _option(action: argparse.Action) -> str:
    names = ", ".join(f"`{o}`" for o in action.option_strings) or f"`{action.dest.upper()}`"
    if action.option_strings and action.nargs != 0:
        names += f" `{action.metavar or action.dest.upper()}`"
    text = (action.help or "").replace("%%", "%").replace("|", "\\|").replace("\n", " ")
    if action.choices and not isinstance(action.choices, dict):
        text += f" (one of: {', '.join(str(c) for c in action.choices)})"
    return f"| {names} | {text} |"


def reference() -> str:
    """Markdown: every subcommand with its description and its options."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    out = [
        "# Command-line reference",
        "",
        "Generated from the parsers (`python -m dse.cli._reference > docs/cli.md`); `inferbench COMMAND --help` "
        "prints the same.",
        "",
    ]
    for name, p in sub.choices.items():
        out += [f"## {name}", "", f"{helps.get(name) or ''}".strip() + ".", "", (p.description or "").strip(), ""]
        rows = [_option(a) for a in p._actions if not isinstance(a, argparse._HelpAction)]
        if rows:
            out += ["| argument | meaning |", "|---|---|", *rows, ""]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(reference(), end="")
