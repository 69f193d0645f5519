"""The tables of ``docs/configuration.md``, rendered from the settings classes so they cannot drift.

``python -m memoturn.config_docs`` prints them, ``--write`` replaces the generated blocks of
``docs/configuration.md`` (between ``<!-- BEGIN GENERATED: NAME -->`` and ``<!-- END
GENERATED: NAME -->``, the prose around them is left alone), ``--check`` exits 1 when the file is
out of step with the code (``tests/test_configuration_docs.py`` runs it).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from .config import EnvSettings, GatewaySettings, Settings

# Block name in docs/configuration.md -> the class its table is rendered from.
BLOCKS: dict[str, type[EnvSettings]] = {"memoturnd": Settings, "memoturn-gateway": GatewaySettings}
DOC_PATH = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "configuration.md"))


def _default(settings_cls: type[EnvSettings], name: str) -> str:
    shown = settings_cls.field_extra(name, "shown_default")
    if shown is not None:
        return shown
    default = settings_cls.model_fields[name].default
    return "(unset)" if default is None else str(default)


def table(settings_cls: type[EnvSettings]) -> str:
    """The Markdown table of ``settings_cls``: variable (and flag), default, meaning, in field order.

    Variables of classes with flags are shown as plain text: ``tests/test_docs.py`` takes every
    backquoted ``MEMOTURN_*`` in the file for a ``memoturnd`` setting.
    """
    flags = any(settings_cls.field_extra(name, "flag") for name in settings_cls.model_fields)
    head = ["flag", "variable"] if flags else ["variable"]
    lines = ["| " + " | ".join([*head, "default", "meaning"]) + " |", "|" + "---|" * (len(head) + 2)]
    for name, field in settings_cls.model_fields.items():
        if not field.description:
            raise ValueError(f"{settings_cls.__name__}.{name} has no description")
        variable = settings_cls.env_names(name)[0]
        cells = [f"`{settings_cls.field_extra(name, 'flag')}`", variable] if flags else [f"`{variable}`"]
        cells += [f"`{_default(settings_cls, name)}`", field.description.replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _block(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- BEGIN GENERATED: {re.escape(name)} [^>]*-->\n)(.*?)(<!-- END GENERATED: {re.escape(name)} -->)",
        re.S,
    )


def render(doc: str) -> str:
    """``doc`` with every generated block replaced by the current table; each block must be present."""
    for name, settings_cls in BLOCKS.items():
        found = _block(name).search(doc)
        if found is None:
            raise ValueError(f"no generated block {name!r} in the configuration docs")
        doc = doc[: found.start(2)] + table(settings_cls) + doc[found.end(2) :]
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memoturn.config_docs", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update the generated blocks of the file")
    mode.add_argument("--check", action="store_true", help="exit 1 if the file is out of step with the code")
    parser.add_argument("--path", default=DOC_PATH, help="the Markdown file (default docs/configuration.md)")
    args = parser.parse_args(argv)
    if not (args.write or args.check):
        for name, settings_cls in BLOCKS.items():
            print(f"## {name}\n\n{table(settings_cls)}")
        return 0
    with open(args.path, encoding="utf-8") as f:
        current = f.read()
    wanted = render(current)
    if args.check:
        if wanted != current:
            print(f"{args.path} is out of date: run python -m memoturn.config_docs --write", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        with open(args.path, "w", encoding="utf-8") as f:
            f.write(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
