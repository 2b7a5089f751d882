"""The MNIST image -> pen-stroke sequence builder, on images with known answers and on real digits."""

from __future__ import annotations

import numpy as np
import pytest

from isl.data.pipeline import (build, choose_threshold, encode, image_to_sequence, skeleton, trace,
                              zhang_suen)
from isl.data.published import read_inputdata
from isl.data.sequences import check_sequence
from conftest import SAMPLES_DIR, needs_samples


def blank():
    return np.zeros((28, 28), np.uint8)


def pen_lifts(seq):
    return int(seq[:-1, 2].sum())


def test_horizontal_line_is_one_stroke_from_its_left_end():
    img = blank()
    img[5, 3:11] = 255
    seq = image_to_sequence(img)
    expected = [[4, 6, 0, 0]] + [[1, 0, 0, 0]] * 7 + [[0, 0, 1, 1]]  # 1-based x = col + 1
    assert seq.tolist() == expected


def test_l_shape_starts_at_top_and_turns_the_corner():
    img = blank()
    img[2:9, 3] = 255
    img[8, 3:10] = 255
    seq = image_to_sequence(img)
    expected = [[4, 3, 0, 0]] + [[0, 1, 0, 0]] * 6 + [[1, 0, 0, 0]] * 6 + [[0, 0, 1, 1]]
    assert seq.tolist() == expected


def test_thick_ring_thins_to_one_closed_stroke():
    rows, cols = np.mgrid[:28, :28]
    radius = np.hypot(rows - 14, cols - 14)
    img = np.where((radius >= 6) & (radius <= 9), 255, 0).astype(np.uint8)
    skel = skeleton(img)
    seq = image_to_sequence(img)
    check_sequence(seq, "ring")
    assert pen_lifts(seq) == 0                              # no endpoint, no jump: one stroke
    points = np.cumsum(seq[:-1, :2], axis=0) - 1            # back to 0-based (x, y)
    assert len({tuple(p) for p in points}) == len(points) == skel.sum()  # each pixel once
    assert np.abs(np.diff(points, axis=0)).max() == 1       # unit moves only
    assert np.abs(points[-1] - points[0]).max() <= 2        # and it closes on itself
    r = np.hypot(points[:, 1] - 14, points[:, 0] - 14)
    assert r.min() >= 6 and r.max() <= 9                    # thinned inside the band
    assert skel.sum() < ((radius >= 6) & (radius <= 9)).sum() / 2


def test_two_strokes_give_a_pen_lift_before_the_jump():
    img = blank()
    img[4, 2:7] = 255
    img[20, 10:15] = 255
    seq = image_to_sequence(img)
    assert pen_lifts(seq) == 1
    lift = int(np.flatnonzero(seq[:, 2])[0])
    assert seq[lift].tolist() == [0, 0, 1, 0]
    assert seq[lift + 1, :2].tolist() == [10 - 6, 20 - 4]   # the jump follows the lift row


def test_specks_of_one_or_two_pixels_are_removed_but_three_are_kept():
    img = blank()
    img[10, 2:12] = 255
    img[20, 20] = 255                 # 1 pixel
    img[24, 5:7] = 255                # 2 pixels
    assert skeleton(img).sum() == 10
    img[24, 5:8] = 255                # now 3 pixels: a stroke of its own
    assert skeleton(img).sum() == 13


def test_threshold_stops_before_a_faint_bridge_breaks():
    img = blank()
    img[5:20, 5:9] = 200
    img[5:20, 12:16] = 200
    img[10, 9:12] = 30                # connects the two bars until t >= 30
    assert choose_threshold(img) == 25


def test_threshold_keeps_at_least_half_the_ink():
    img = blank()
    img[5:20, 5:9] = 255              # 40% strong ink
    img[5:20, 9:15] = 100             # 60% faint ink, touching: topology never changes
    assert choose_threshold(img) == 75   # t = 100 would leave only 40%


def test_threshold_of_solid_ink_stops_at_the_top_of_the_range():
    img = blank()
    img[5:20, 5:9] = 255
    assert choose_threshold(img) == 225


def test_empty_image_is_refused_clearly():
    with pytest.raises(ValueError, match="no ink"):
        image_to_sequence(blank())


def test_encode_is_in_1_based_coordinates_with_a_lift_before_each_jump():
    seq = encode(np.array([[0, 0], [0, 1], [5, 5], [5, 6]]))   # (row, col)
    assert seq.tolist() == [[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [4, 5, 0, 0], [1, 0, 0, 0],
                            [0, 0, 1, 1]]


def test_a_jump_into_the_last_point_has_no_lift_as_in_the_published_pipeline():
    seq = encode(np.array([[0, 0], [0, 1], [5, 5]]))
    assert seq.tolist() == [[1, 1, 0, 0], [1, 0, 0, 0], [4, 5, 0, 0], [0, 0, 1, 1]]


@needs_samples
@pytest.mark.parametrize("index", [2, 58])
def test_real_digits_match_the_published_sequences_exactly(mnist_images, index):
    """Fidelity: MNIST training images 2 and 58 give the published files, row for row."""
    published = read_inputdata(SAMPLES_DIR / f"trainimg-{index}-inputdata.txt")
    ours = image_to_sequence(mnist_images[0][index])
    assert ours.tolist() == published.tolist()


def test_parallel_build_equals_serial_build(mnist_images):
    images, labels = mnist_images[0][:1200], mnist_images[1][:1200]
    serial, parallel = build(images, labels, workers=1), build(images, labels, workers=2)
    assert np.array_equal(serial.steps, parallel.steps)
    assert np.array_equal(serial.starts, parallel.starts)
    assert np.array_equal(serial.labels, labels)
    for i in range(0, 1200, 97):
        check_sequence(serial.sequence(i), f"image {i}")
        assert np.array_equal(serial.sequence(i), image_to_sequence(images[i]))


def test_trace_visits_every_skeleton_pixel_once(mnist_images):
    rng = np.random.default_rng(0)
    for image in mnist_images[0][:200]:
        skel = skeleton(image)
        path = trace(skel, rng)
        assert len(path) == skel.sum()
        assert len({tuple(p) for p in path}) == len(path)


def test_thinning_stops_after_two_iterations_and_spares_the_border():
    bar = np.zeros((28, 28), bool)
    bar[4:24, 5:14] = True                                    # 9 pixels wide
    widths = {it: zhang_suen(bar, iterations=it)[14].sum() for it in (1, 2, None)}
    assert widths[None] == 1 and widths[1] > widths[2] > 1   # two iterations: not fully thin
    edge = np.zeros((28, 28), bool)
    edge[20:28, 10:13] = True                                 # touches the bottom border
    assert zhang_suen(edge, iterations=None)[27, 10:13].sum() >= 1


def test_ties_are_broken_at_random_but_reproducibly_per_image():
    img = blank()
    img[4:20, 10] = 255                                       # a plus: the tour must branch
    img[12, 3:18] = 255
    first = image_to_sequence(img)
    assert all(np.array_equal(first, image_to_sequence(img.copy())) for _ in range(3))
    tours = {trace(skeleton(img), np.random.default_rng(seed)).tobytes() for seed in range(20)}
    assert len(tours) > 1                                     # the seed does matter
