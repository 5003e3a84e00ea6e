"""Series values too large for instance normalisation (its sum of squares overflows float32 from about 1e19)
are refused where series files are read, naming the file, the limit and what to do (rescale); they gave null
forecasts and bogus anomaly scores."""

import numpy as np
import pytest

from masklab.data.series import load_series
from masklab.data.series_files import MAX_ABS_VALUE, as_series


@pytest.mark.parametrize("value", [1e19, -3e20, 3e38])
def test_values_normalisation_cannot_hold_are_refused_naming_the_file(tmp_path, value):
    values = np.ones((2, 16, 1), dtype=np.float32)
    values[1, 3, 0] = value
    np.save(tmp_path / "big.npy", values)
    with pytest.raises(ValueError, match=r"big\.npy.*1e\+15.*rescale"):
        load_series(str(tmp_path / "big.npy"))


def test_values_up_to_the_limit_are_read():
    values = np.array([MAX_ABS_VALUE, -MAX_ABS_VALUE, 0.0, np.nan])
    out = as_series(values, "here")
    assert out.shape == (4, 1) and np.isnan(out[3, 0])
    # their normalisation statistics stay finite in float32 (what the model computes in)
    x = np.repeat(out[:3], 1000, axis=0)
    assert np.isfinite(((x - x.mean()) ** 2).sum(dtype=np.float32))
