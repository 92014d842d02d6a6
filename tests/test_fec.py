"""The FEC triplet reader on a file written in the dataset's exact layout (28 columns, no header)."""
import numpy as np
import pytest

from data.fec import read_fec, write_fec

ROWS = [
    # image 1 URL, left, right, top, bottom; image 2 ...; image 3 ...; type; 6 x (annotator, label)
    '"http://farm1.staticflickr.com/a/1_b.jpg",0.1,0.5,0.2,0.7,"http://farm4.staticflickr.com/c/2_d.jpg",'
    '0.3,0.6,0.1,0.45,"http://farm9.staticflickr.com/e/3_f.jpg",0.05,0.95,0,1,ONE_CLASS_TRIPLET,'
    '12,3,40,3,7,3,13,2,55,3,9,3',
    'http://x/4.jpg,0.2,0.4,0.3,0.5,http://x/5.jpg,0.2,0.4,0.3,0.5,http://x/6.jpg,0.2,0.4,0.3,0.5,'
    'THREE_CLASS_TRIPLET,1,1,2,1,3,2,4,1,5,2,6,1',
]


def _write(tmp_path, rows):
    path = tmp_path / "faceexp-comparison-data-train-public.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_reads_every_field(tmp_path):
    t = read_fec(_write(tmp_path, ROWS))
    assert len(t) == 2
    assert t.urls[0] == ("http://farm1.staticflickr.com/a/1_b.jpg", "http://farm4.staticflickr.com/c/2_d.jpg",
                         "http://farm9.staticflickr.com/e/3_f.jpg")
    np.testing.assert_array_equal(t.boxes[0], [[0.1, 0.5, 0.2, 0.7], [0.3, 0.6, 0.1, 0.45], [0.05, 0.95, 0, 1]])
    assert t.types == ["ONE_CLASS_TRIPLET", "THREE_CLASS_TRIPLET"]
    assert t.annotators[0] == ["12", "40", "7", "13", "55", "9"]
    np.testing.assert_array_equal(t.labels, [[3, 3, 3, 2, 3, 3], [1, 1, 2, 1, 2, 1]])


def test_majority_odd_one_out_orders_anchor_positive_negative(tmp_path):
    t = read_fec(_write(tmp_path, ROWS))
    odd, agreement = t.odd_one_out()
    assert odd.tolist() == [2, 0] and agreement.tolist() == [5 / 6, 4 / 6]
    assert t.ordered().tolist() == [[0, 1, 2], [1, 2, 0]]


@pytest.mark.parametrize("change, message", [
    (lambda r: r.rsplit(",", 1)[0], "27 columns"),
    (lambda r: r.replace("ONE_CLASS_TRIPLET", "ONE_CLASS"), "column 16: triplet type 'ONE_CLASS'"),
    (lambda r: r[::-1].replace("3", "4", 1)[::-1], "must each be 1, 2 or 3"),
    (lambda r: r.replace("0.1,0.5,0.2,0.7", "0.5,0.1,0.2,0.7"), "face box of image 1"),
    (lambda r: r.replace("0.1,0.5,0.2,0.7", "0.1,half,0.2,0.7"), "column 3: 'half' is not a number"),
])
def test_a_bad_row_is_an_error_naming_file_and_line(tmp_path, change, message):
    path = _write(tmp_path, [ROWS[1], change(ROWS[0])])
    with pytest.raises(ValueError, match=message) as err:
        read_fec(path)
    assert f"{path}:2" in str(err.value)


def test_write_then_read_is_identity(tmp_path):
    t = read_fec(_write(tmp_path, ROWS))
    write_fec(t, tmp_path / "again.csv")
    back = read_fec(tmp_path / "again.csv")
    assert back.urls == t.urls and back.types == t.types and back.annotators == t.annotators
    np.testing.assert_array_equal(back.boxes, t.boxes)
    np.testing.assert_array_equal(back.labels, t.labels)
    assert len((tmp_path / "again.csv").read_text().splitlines()[0].split(",")) == 28


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_fec(tmp_path / "nope.csv")
