"""What the app says about the weights it runs: the model card's status beside each weights file."""

from pathlib import Path

import pytest

from faceage.provenance import card_status, weights_info, weights_note

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def test_card_status_reads_the_bold_status_sentence(tmp_path):
    w = tmp_path / "model.safetensors"
    assert card_status(w) == ""  # no card
    (tmp_path / "model.md").write_text("# Card\n\n**Status: preliminary:\nmarks, not\n  wrinkles.** More text.\n")
    assert card_status(w) == "preliminary: marks, not wrinkles."
    (tmp_path / "model.md").write_text("# Card without a status\n")
    assert card_status(w) == ""


def test_weights_note_names_the_file_step_and_status(tmp_path):
    w = tmp_path / "model.safetensors"
    (tmp_path / "model.md").write_text("**Status: weak.**")
    note = weights_note(weights_info(w, {"step": 1200}))
    assert (
        note == "Weights `model.safetensors`, step 1,200. **Status:** weak. Model card: `model.md`, beside the weights."
    )
    assert weights_note({"file": "x.safetensors"}) == "Weights `x.safetensors`."


@pytest.mark.parametrize("name", ["cusp_utkface128", "amgan_utkface128"])
def test_shipped_weights_cards_state_their_status(name):
    """The app shows this line above each tab: every shipped weights file's card must have one."""
    assert (ASSETS / f"{name}.safetensors").is_file()
    assert len(card_status(ASSETS / f"{name}.safetensors")) > 20
