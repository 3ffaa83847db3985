"""The one rule of faceage's typed configs: unknown keys refused, retired options read only when off."""

from dataclasses import dataclass

import pytest

from faceage.config import from_dict, to_dict


@dataclass
class Example:
    rate: float = 1.0
    betas: tuple = (0.0, 0.99)
    span: tuple[float, float] = (0.0, 90.0)


def test_known_keys_build_the_config_and_lists_become_tuples():
    cfg = from_dict(Example, {"rate": 2.0, "betas": [0.5, 0.9], "span": [1, 2]})
    assert cfg == Example(2.0, (0.5, 0.9), (1, 2))
    assert to_dict(cfg) == {"rate": 2.0, "betas": [0.5, 0.9], "span": [1, 2]}


def test_an_unknown_key_is_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown \[x\] keys: \['rte'\].*valid keys: \['betas', 'rate', 'span'\]"):
        from_dict(Example, {"rte": 2.0}, where="[x]")


def test_a_retired_option_is_read_when_off_and_refused_when_on():
    assert from_dict(Example, {"rate": 3.0, "context": 0}, retired={"context": 0}) == Example(3.0)
    with pytest.raises(ValueError, match="context=8 was removed"):
        from_dict(Example, {"context": 8}, retired={"context": 0})
