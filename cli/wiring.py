"""The composition root's choices: which implementation of an interface a command gets.

Only here does the CLI look at the environment to pick between AWS and the local emulator; the
commands and the packages below them take what they are given.
"""

from __future__ import annotations

import os

from base import config
from cloud.stacks import CloudFormationStacks, StackSource


def stack_source(session) -> StackSource:
    """Stacks from the local emulator's record when AWS_ENDPOINT_URL points the kit at an endpoint of
    its own (``jitr local up``), else from CloudFormation."""
    if os.environ.get(config.ENV_AWS_ENDPOINT_URL):
        # imported here, not at the top: every other command would pay for the emulator's deployer
        from emulator.cloudformation.deploy import EmulatorStacks

        return EmulatorStacks(session)
    return CloudFormationStacks(session)
