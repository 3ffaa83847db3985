"""Settings as text (the app's copy box, URL parameters) and from a result PNG: round trip and clear errors."""

import pytest

from faceage.errors import BadParameterError
from faceage.settings import from_png, parse, to_text


def test_round_trip():
    text = to_text(70, 8, 4.5, "replace", "34, 61", 2)
    assert text == "age=70&sigma_m=8&sigma_g=4.5&mode=replace&face=2&source_age=34,61"
    assert parse(text) == {
        "age": 70.0,
        "sigma_m": 8.0,
        "sigma_g": 4.5,
        "mode": "replace",
        "face": 2,
        "source_age": "34,61",
    }
    assert parse("?" + to_text(30, 0, 0)) == {"age": 30.0, "sigma_m": 0.0, "sigma_g": 0.0, "mode": "detail", "face": -1}
    assert parse("http://127.0.0.1:7860/?age=20&face=all") == {"age": 20.0, "face": -1}


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "no settings"),
        ("age=200", "target age must be a number from 0 to 100"),
        ("age=70&colour=red", "unknown setting colour"),
        ("mode=sharp", "mode must be one of"),
        ("face=-4", "face must be 'all' or a face number"),
        ("source_age=old", "the face's own age must be"),
        ("sigma_m=-1", "sigma"),
    ],
)
def test_bad_settings_name_what_is_wrong(text, words):
    with pytest.raises(BadParameterError, match=words):
        parse(text)


def test_from_a_result_png(tmp_path):
    import numpy as np

    from faceage.io import save_png

    img = np.zeros((8, 8, 3), np.uint8)
    save_png(
        img,
        tmp_path / "r.png",
        {
            "model": "cusp",
            "age": 55,
            "sigma_m": 6,
            "sigma_g": 2,
            "face": "all",
            "mode": "detail",
            "source_ages": [33.5],
        },
    )
    assert from_png(tmp_path / "r.png") == {
        "age": 55.0,
        "sigma_m": 6.0,
        "sigma_g": 2.0,
        "face": -1,
        "mode": "detail",
        "source_age": "33.5",
    }
    save_png(img, tmp_path / "a.png", {"model": "amgan", "age": 55})
    with pytest.raises(BadParameterError, match="no CUSP settings"):
        from_png(tmp_path / "a.png")
    save_png(img, tmp_path / "p.png", {"model": "cusp", "age": [10, 20], "sigma_m": 0, "sigma_g": 0})
    with pytest.raises(BadParameterError, match="progression"):
        from_png(tmp_path / "p.png")
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(BadParameterError, match="cannot read"):
        from_png(tmp_path / "x.png")
