import io
import json

from albertprep.pipelines.textformats import (
    plan_byte_ranges,
    plan_line_ranges,
    read_jsonl_records,
    read_sentence_documents,
)

SENTENCE_FILE = (
    "\ufeffFirst doc, first sentence.\nFirst doc, second.\n\n"
    "Second doc only sentence.\n \t \n\n"
    "Third doc.\r\nWith CRLF.\r\n\r\n"
    "Fourth doc, no trailing newline."
).encode("utf-8")


def _records(reader, data, start, end):
    return list(reader(io.BytesIO(data), start, end))


def test_sentence_documents_whole_file():
    records = _records(read_sentence_documents, SENTENCE_FILE, 0, len(SENTENCE_FILE))
    assert [r.lines for r in records] == [
        ["First doc, first sentence.", "First doc, second."],
        ["Second doc only sentence."],
        ["Third doc.", "With CRLF."],
        ["Fourth doc, no trailing newline."],
    ]


def test_every_split_point_reads_each_document_exactly_once():
    whole = _records(read_sentence_documents, SENTENCE_FILE, 0, len(SENTENCE_FILE))
    for cut in range(len(SENTENCE_FILE) + 1):
        parts = (_records(read_sentence_documents, SENTENCE_FILE, 0, cut)
                 + _records(read_sentence_documents, SENTENCE_FILE, cut, len(SENTENCE_FILE)))
        assert parts == whole, f"split at byte {cut}"


def test_jsonl_split_points_and_bad_lines():
    lines = [json.dumps({"id": i, "text": f"Record {i}."}) for i in range(5)]
    lines.insert(2, "{not json")
    lines.insert(4, "[1, 2]")
    data = ("\n".join(lines) + "\n").encode()
    whole = _records(read_jsonl_records, data, 0, len(data))
    assert [r.fields["id"] for r in whole if r.fields] == [0, 1, 2, 3, 4]
    errors = [r for r in whole if r.error]
    assert len(errors) == 2 and errors[0].offset == data.index(b"{not json")
    for ranges in (plan_byte_ranges(len(data), 7), plan_byte_ranges(len(data), 40)):
        assert [r for s, e in ranges for r in _records(read_jsonl_records, data, s, e)] == whole


def test_plan_byte_ranges_cover_the_file():
    assert plan_byte_ranges(0, 10) == [(0, 0)]
    ranges = plan_byte_ranges(1000, 300)
    assert ranges[0][0] == 0 and ranges[-1][1] == 1000 and len(ranges) == 4
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_line_ranges_start_lines_hold_the_same_lines_and_are_never_empty():
    lines = [b"x" * n + b"\n" for n in (900, 3, 3, 5000, 10, 1)]
    data = b"".join(lines)
    f = io.BytesIO(data)
    for target in (1, 50, 1000, 4000, 1 << 20):
        ranges = plan_line_ranges(f, len(data), target)
        starts = {0}
        for line in lines[:-1]:
            starts.add(max(starts) + len(line))
        assert all(start in starts for start, _ in ranges) and ranges[-1][1] == len(data)
        assert all(start < end for start, end in ranges)
        by_line = [[r.offset for r in read_jsonl_records(f, s, e)] for s, e in ranges]
        by_byte = [[r.offset for r in read_jsonl_records(f, s, e)]
                   for s, e in plan_byte_ranges(len(data), target)]
        assert sum(by_line, []) == sum(by_byte, [])  # the same lines, each once
        assert all(by_line)  # no range without a line
    assert plan_line_ranges(io.BytesIO(b""), 0, 100) == [(0, 0)]
