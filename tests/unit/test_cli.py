"""The CLI's parser and its command table name the same subcommands."""

import argparse

from frugaldiff.cli import COMMANDS
from frugaldiff.cli_parser import build_parser


def test_every_subcommand_has_a_command_and_back() -> None:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == set(COMMANDS)
    args = parser.parse_args(["preflight", "--config", "configs/cifar10.yaml"])
    assert (args.command, args.device, args.iterations, args.batch) == ("preflight", "auto", 2, 2)
