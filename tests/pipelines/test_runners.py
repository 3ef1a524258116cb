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


def test_the_dask_partitions_are_read_whether_or_not_the_dask_runner_was_imported():
    import apache_beam.runners.dask.dask_runner  # noqa: F401  (as the CLI has, to check the runner's flags)
    from apache_beam.options.pipeline_options import PipelineOptions

    assert runners.dask_npartitions_of(PipelineOptions(["--dask_npartitions=8"])) == 8
    assert runners.dask_npartitions_of(PipelineOptions([])) is None


def test_on_dask_every_partition_gets_one_bin_of_equal_weight(dask_cluster, tmp_path):
    """The pieces reach the DoFns as the bins of balanced_bins, one element
    each, not hashed into partitions one piece at a time."""
    import json

    import apache_beam as beam
    from conftest import dask_args

    pieces = [("a", 9), ("b", 1), ("c", 1), ("d", 1), ("e", 8), ("f", 2), ("g", 7), ("h", 3)]
    args = [*dask_args(dask_cluster), "--dask_npartitions=3"]
    pipeline = runners.make_pipeline(args, parallel_tasks=len(pieces))

    def record(element):
        key, group = element
        (tmp_path / f"{key}.json").write_text(json.dumps(group))

    _ = pipeline | runners.Distribute(pieces, lambda p: p[1]) | beam.Map(record)
    result = pipeline.run()
    result.wait_until_finish()
    result.client.close()  # else it outlives the session's cluster, and retries it at exit with a traceback
    seen = [[tuple(p) for p in json.loads(f.read_text())] for f in sorted(tmp_path.glob("*.json"))]
    assert seen == runners.balanced_bins(pieces, lambda p: p[1], 3)
