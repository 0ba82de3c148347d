"""How deployed things are named: construct ids and physical names, derived from logical names and the stage."""

from __future__ import annotations

from infra.constants import RESOURCE_PREFIX, STACK_PREFIX


def pascal_id(name: str) -> str:
    """``api_keys`` or ``api-keys`` -> ``ApiKeys``: a construct id for a logical name."""
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_"))


def stack_name(stage: str) -> str:
    return f"{STACK_PREFIX}-{stage}"


def resource_name(stage: str, *parts: str) -> str:
    """``earshot-<stage>-<parts...>``: physical names people read in the console and in alarms."""
    return "-".join((RESOURCE_PREFIX, stage, *parts))
