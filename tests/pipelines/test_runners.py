"""Spreading a job's work: bins of equal weight for Dask's partitions."""

from albertprep.pipelines import runners


def test_bins_have_near_equal_weight_and_hold_every_piece_once():
    pieces = [("a", 9), ("b", 1), ("c", 1), ("d", 1), ("e", 8), ("f", 2), ("g", 7), ("h", 3)]
    bins = runners.balanced_bins(pieces, lambda p: p[1], 3)
    assert sorted(p for b in bins for p in b) == sorted(pieces)
    assert sorted(sum(w for _, w in b) for b in bins) == [10, 11, 11]  # 32 in three: as even as it goes
    assert bins == runners.balanced_bins(pieces, lambda p: p[1], 3)  # the same every time


def test_there_are_never_more_bins_than_pieces_nor_empty_ones():
    assert runners.balanced_bins(["x", "y"], len, 8) == [["x"], ["y"]]
    assert runners.balanced_bins(["only"], len, 1) == [["only"]]
