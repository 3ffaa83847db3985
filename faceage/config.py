"""Typed configs: every config in faceage and train/ is a dataclass built with :func:`from_dict`.

One rule everywhere: a key the dataclass does not have is refused with the list of valid keys (a typo in
a TOML file or a ``--set`` override fails loudly instead of training something else). A retired option
(one that no shipped model or paper default uses any more) is still read from older checkpoints when it
holds the value that meant "off"; any other value is refused, since these weights would need the code
that was removed.
"""

from __future__ import annotations

import json
import typing
from dataclasses import asdict, fields
from typing import Any, TypeVar

T = TypeVar("T")


def from_dict(cls: type[T], d: dict, retired: dict[str, Any] | None = None, where: str = "") -> T:
    """``cls(**d)`` after checking the keys; lists become tuples where the field is a tuple.

    ``retired`` maps removed option names to their "off" value: such a key is dropped when it holds that
    value and refused otherwise. ``where`` names the config in messages (for example ``"[amgan]"``).
    """
    names = {f.name for f in fields(cls)}
    retired = retired or {}
    where = f"{where} " if where else ""
    kept = {}
    for key, value in d.items():
        if key in names:
            kept[key] = value
        elif key in retired:
            if value != retired[key]:
                raise ValueError(
                    f"{where}option {key}={value!r} was removed (only {retired[key]!r}, off, is "
                    "still read): these settings need an older faceage"
                )
        else:
            raise ValueError(
                f"unknown {where}keys: {sorted(set(d) - names - set(retired))}; valid keys: {sorted(names)}"
            )
    hints = typing.get_type_hints(cls)
    for key, value in kept.items():
        if isinstance(value, list) and tuple in (hints[key], typing.get_origin(hints[key])):
            kept[key] = tuple(value)
    return cls(**kept)


def to_dict(cfg) -> dict:
    """A config as plain JSON types (tuples become lists), as saved in checkpoints and manifests."""
    return json.loads(json.dumps(asdict(cfg)))
