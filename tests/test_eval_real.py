"""The real-photo evaluation (train/eval/real.py): the committed photos, the measures and the report."""

import json

import numpy as np
import pytest

from train.eval import real as eval_real


def test_manifest_photos_are_here_or_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv(eval_real.CACHE_ENV, str(tmp_path / "empty"))
    entries = {e["id"]: e for e in eval_real.manifest()}
    assert len(entries) >= 20
    for e in entries.values():
        assert e.get("derived") or {"registry", "package", "version", "path", "licence"} <= set(e)
        if e.get("file"):  # committed only where the package's licence allows it
            assert e["redistributable"] and (eval_real.PHOTOS / e["file"]).is_file()
    photos = [eval_real.resolve(e, entries) for e in entries.values()]
    present = [p for p in photos if p.image is not None]
    assert sum(e.get("faces", 0) for e in entries.values() if e.get("file")) >= 20
    assert all(p.image.dtype == np.uint8 and p.image.shape[2] == 3 for p in present)
    missing = [p for p in photos if p.image is None]
    assert missing and all("fetch.sh" in p.missing or "pip install" in p.missing for p in missing)
    grey = next(p for p in present if p.name == "smile_grey").image
    assert np.array_equal(grey[..., 0], grey[..., 2])
    sepia = next(p for p in present if p.name == "luispedro_sepia").image
    assert not np.array_equal(sepia[..., 0], sepia[..., 2])


@pytest.mark.slow
def test_evaluate_measures_both_paths(tiny_weights, tmp_path, one_thread):
    entries = {e["id"]: e for e in eval_real.manifest()}
    photos = [eval_real.resolve(entries[i], entries) for i in ("smile", "smile_grey")]
    result = eval_real.evaluate(photos, "cusp", (20, 60), tmp_path, weights=tiny_weights, sheet_max=128)
    assert [r["photo"] for r in result["faces"]] == ["smile", "smile_grey"]
    for r in result["faces"]:
        assert 0 <= r["read_age"] <= 100 and (tmp_path / r["sheet"]).is_file()
        for key in ("detail@20", "detail@60", "replace@20", "replace@60"):
            m = r[key]
            assert m["identity"] >= 0 and m["sharpness"] > 0 and m["seam"] >= 0 and 0 <= m["age_A"] <= 100
            assert 0 <= m["age_C"] <= 100
    grey = result["faces"][1]
    assert grey["grey"] and grey["detail@60"]["grey_spread"] == 0  # a grey photo stays grey
    assert grey["replace@60"]["grey_spread"] > 0  # pasting the generated face back colours it
    assert result["summary"]["detail"]["goals"]["grey_stays_grey"] is True
    report = eval_real.report(result)
    assert "## Path: detail" in report and "smile_grey" in report
    json.dumps(result)  # results.json is plain JSON
