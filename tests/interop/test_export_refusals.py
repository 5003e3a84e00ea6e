"""What a Hugging Face class cannot represent is refused by ``export-hf`` with the field named (no training)."""

import pytest

from masklab.models.mae import MAE
from masklab.recipes.export import save_mae_folder


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"variant": "simmim"}, "variant='simmim'"), ({"objective": "classify", "num_classes": 3}, "objective='classify'"),
     ({"image_size": (16, 8)}, "square")],
)  # fmt: skip
def test_mae_settings_vitmae_cannot_hold_are_refused(tmp_path, overrides, field):
    model = MAE.from_preset("mae-tiny", **overrides)
    with pytest.raises(ValueError, match=field):
        save_mae_folder(model, tmp_path / "hf")
    assert not (tmp_path / "hf" / "config.json").exists()


def test_mae_mask_kind_is_a_note_not_a_refusal(tmp_path):
    _, notes = save_mae_folder(MAE.from_preset("mae-tiny", mask_kind="block"), tmp_path / "hf")
    assert any("mask_kind='block'" in note for note in notes)
    assert (tmp_path / "hf" / "config.json").is_file()
