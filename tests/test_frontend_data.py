"""Data loading: formats, scaling, layout, selection and bad files."""

import numpy as np
import pytest

from hdsl.data import load_dataset
from hdsl.diagnostics import HdslError
from hdsl.ir import Dataset


def _csv(tmp_path, rows):
    p = tmp_path / "d.csv"
    p.write_text("\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    return str(p)


def test_csv_label_scale_and_hwc_to_chw(tmp_path):
    # one 2x2 RGB image in HWC order: pixel (h, w) has channels (10h+w, 100+10h+w, 200+10h+w)
    hwc = [[10 * h + w + 100 * c for c in range(3)] for h in range(2) for w in range(2)]
    row = [3] + [v for px in hwc for v in px]
    path = _csv(tmp_path, [row, row])
    ds = Dataset("d", path, "csv", (1,), (("label_column", "0"), ("scale", "1/255"),
                                         ("shape", "3,2,2"), ("layout", "hwc->chw")))
    out = load_dataset(ds)
    assert out.x.shape == (1, 3, 2, 2) and out.x.dtype == np.float32
    assert out.y.tolist() == [3] and out.y.dtype == np.int64
    assert out.x[0, 1, 1, 0] == pytest.approx((100 + 10) / 255)


def test_npz_default_keys_and_indices(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x=np.arange(12, dtype=np.float64).reshape(4, 3), y=np.array([0, 1, 2, 1]))
    out = load_dataset(Dataset("d", str(p), "npz", (2, 0)))
    assert out.x.tolist() == [[6, 7, 8], [0, 1, 2]] and out.y.tolist() == [2, 0]


def test_npy_has_no_labels(tmp_path):
    p = tmp_path / "d.npy"
    np.save(p, np.ones((2, 5)))
    out = load_dataset(Dataset("d", str(p), "npy", options=(("shape", "5"),)))
    assert out.y is None and out.x.shape == (2, 5)


@pytest.mark.parametrize("fmt,content,code", [
    ("csv", "1,2,x\n", "E404"),
    ("npz", b"not a zip", "E404"),
    ("npy", b"garbage", "E404"),
])
def test_bad_files_are_diagnostics(tmp_path, fmt, content, code):
    p = tmp_path / f"d.{fmt}"
    (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
    with pytest.raises(HdslError) as e:
        load_dataset(Dataset("d", str(p), fmt))
    assert e.value.diagnostics[0].code == code


def test_missing_file_shape_mismatch_and_bad_index(tmp_path):
    with pytest.raises(HdslError) as e:
        load_dataset(Dataset("d", str(tmp_path / "nope.csv"), "csv"))
    assert e.value.diagnostics[0].code == "E401"
    path = _csv(tmp_path, [[1, 2, 3]])
    with pytest.raises(HdslError) as e:
        load_dataset(Dataset("d", path, "csv", options=(("shape", "2,2"),)))
    assert e.value.diagnostics[0].code == "E409"
    with pytest.raises(HdslError) as e:
        load_dataset(Dataset("d", path, "csv", (5,)))
    assert e.value.diagnostics[0].code == "E406"


def test_csv_header_delimiter_and_chw_to_hwc(tmp_path):
    p = tmp_path / "d.csv"
    chw = list(range(12))  # C=3, H=2, W=2 in CHW order
    p.write_text("label;" + ";".join(f"p{i}" for i in range(12)) + "\n" + "1;" + ";".join(map(str, chw)) + "\n")
    ds = Dataset("d", str(p), "csv", None, (("header", "1"), ("delimiter", ";"), ("label_column", "0"),
                                            ("shape", "2,2,3"), ("layout", "chw->hwc")))
    out = load_dataset(ds)
    assert out.x.shape == (1, 2, 2, 3) and out.y.tolist() == [1]
    assert out.x[0, 1, 0].tolist() == [2, 6, 10]  # pixel (h=1, w=0): channel c at c*4 + 1*2 + 0


def test_unknown_option_and_non_integer_labels(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((2, 3)), y=np.array([0.5, 1.0]))
    with pytest.raises(HdslError) as e:
        load_dataset(Dataset("d", str(p), "npz"))
    assert e.value.diagnostics[0].code == "E405"
    with pytest.raises(HdslError) as e:
        load_dataset(Dataset("d", str(p), "npz", options=(("colour", "red"),)))
    assert e.value.diagnostics[0].code == "E402"


@pytest.mark.parametrize("rows,options,row", [
    ([[0, 1, 2], [1, 3, 1e300]], (("label_column", "0"),), 1),        # beyond float32 on reading
    ([[0, 1, 2], [1, 3, 4]], (("label_column", "0"), ("scale", "1e308")), 0),  # beyond float32 after scale
    ([[0, 1, 2], [1, 3, float("nan")]], (("label_column", "0"),), 1),
])
def test_non_finite_inputs_are_diagnostics(tmp_path, rows, options, row):
    """A NaN or an infinity would reach the bounds (and the proofs) as an input: refused, with the row."""
    with pytest.raises(HdslError) as e:
        load_dataset(Dataset("d", _csv(tmp_path, rows), "csv", options=options))
    d = e.value.diagnostics[0]
    assert d.code == "E405" and f"row {row} " in d.message


def test_non_finite_row_is_named_in_the_file_not_the_selection(tmp_path):
    path = _csv(tmp_path, [[0, 1, 2], [1, 3, 4], [2, float("inf"), 0]])
    with pytest.raises(HdslError) as e:
        load_dataset(Dataset("d", path, "csv", (0, 2), options=(("label_column", "0"),)))
    assert "row 2 " in e.value.diagnostics[0].message
