"""Hydra-style `key=value` words after a command's options.

argparse on Python 3.11 fills a `nargs="*"` positional at the first positional slot and rejects
later ones (`rnadiff refine IN --out D k=v` fails), so the unparsed `key=value` words are collected
after parsing instead and appended to `args.overrides`.
"""
from __future__ import annotations

import argparse


def is_override(word: str) -> bool:
    """`key=value` (or `+key=value`, `~key`) and not an option."""
    return not word.startswith("-") and ("=" in word or word.startswith("~"))


def accept_trailing_overrides(parser: argparse.ArgumentParser, dest: str = "overrides") -> None:
    """Make `parser` collect `key=value` words found anywhere among its arguments into `dest`."""
    original = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        ns, extras = original(args, namespace)
        trailing = [a for a in extras if "=" in a and not a.startswith("-")]
        setattr(ns, dest, list(getattr(ns, dest, None) or []) + trailing)
        return ns, [a for a in extras if a not in trailing]

    parser.parse_known_args = parse_known_args


def split_overrides(words: list[str]) -> tuple[list[str], list[str]]:
    """(inputs, overrides) from a mixed positional list (`IN1 IN2 k=v`): refine takes INPUT... and
    key=value words in the same positional slot."""
    inputs = [w for w in words if not is_override(w)]
    overrides = [w for w in words if is_override(w)]
    return inputs, overrides
