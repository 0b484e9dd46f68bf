import numpy as np
from pycocotools import mask as coco_mask

from annotator import masks


def random_masks(n: int = 5, h: int = 37, w: int = 53) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.random((n, h, w)) > 0.6


def test_batch_round_trip_is_bit_exact() -> None:
    m = random_masks()
    rles = masks.encode_batch(m)
    assert len(rles) == 5 and all(isinstance(r, str) for r in rles)
    back = masks.decode_batch(rles, 37, 53)
    assert back.dtype == bool and np.array_equal(back, m)
    assert np.array_equal(masks.decode(rles[2], 37, 53), m[2])


def test_area_bbox_and_union_agree_with_pixels() -> None:
    m = np.zeros((2, 20, 30), dtype=bool)
    m[0, 2:5, 3:10] = True
    m[1, 4:8, 8:12] = True
    a, b = masks.encode_batch(m)
    assert masks.area(a, 20, 30) == 21
    assert masks.bbox(a, 20, 30) == [3.0, 2.0, 7.0, 3.0]
    merged = masks.decode(masks.union([a, b], 20, 30), 20, 30)
    assert np.array_equal(merged, m[0] | m[1])


def test_strings_are_standard_coco_rle() -> None:
    m = random_masks(1)[0]
    counts = masks.encode(m)
    decoded = coco_mask.decode({"size": [37, 53], "counts": counts})
    assert np.array_equal(decoded.astype(bool), m)


def test_empty_mask_and_empty_batch() -> None:
    empty = np.zeros((1, 8, 9), dtype=bool)
    (rle,) = masks.encode_batch(empty)
    assert masks.area(rle, 8, 9) == 0
    assert masks.decode_batch([], 8, 9).shape == (0, 8, 9)
