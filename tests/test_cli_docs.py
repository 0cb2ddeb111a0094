"""Every command has help and is documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from flows.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def commands(group: typer.Typer = app, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the CLI, sub-commands included."""
    found = [(*prefix, c.name or c.callback.__name__.replace("_", "-")) for c in group.registered_commands]
    for sub in group.registered_groups:
        found += commands(sub.typer_instance, (*prefix, sub.name))
    return found


@pytest.mark.parametrize("path", commands(), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


@pytest.mark.parametrize("path", commands(), ids=" ".join)
def test_every_command_is_documented_in_the_readme(path: tuple[str, ...]) -> None:
    assert f"multipolar {' '.join(path)}" in README


def options(name: str) -> set[str]:
    return {option for param in typer.main.get_command(app).commands[name].params for option in param.opts}


def test_a_commands_paragraph_names_only_its_options_or_those_of_a_command_its_sentence_names() -> None:
    """A sentence about another command's option, left in a command's paragraph, reads as that command's."""
    names = list(typer.main.get_command(app).commands)
    stray = []
    for paragraph in README.split("\n\n"):
        if (opening := re.match(r"`multipolar ([a-z]+) [^`]*`", paragraph)) is None:
            continue
        for sentence in re.split(r"(?<=\.)\s+(?=[A-Z`])", " ".join(paragraph.split())):
            named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", sentence))
            others = set().union(*(options(name) for name in names if re.search(rf"\b{name}\b", sentence)))
            stray += [(opening[1], option, sentence) for option in sorted(named - options(opening[1]) - others)]
    assert stray == []


def test_every_option_of_every_command_is_named_in_the_readme() -> None:
    def walk(command, path=()):
        if hasattr(command, "commands"):  # a group of commands
            for name, sub in command.commands.items():
                yield from walk(sub, (*path, name))
        else:
            yield path, command

    unnamed = [
        (" ".join(path), option)
        for path, command in walk(typer.main.get_command(app))
        for param in command.params
        for option in param.opts
        if option.startswith("--") and option not in README
    ]
    assert unnamed == []
