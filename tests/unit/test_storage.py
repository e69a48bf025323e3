"""Internal storage addresses, batches of items, and read() marks (pausepoint/storage.py)."""

from __future__ import annotations

import pytest

from pausepoint.storage import (
    StorageError,
    check_uri,
    deferred_read,
    deferred_reads,
    has_mangled_read,
    namespace_file_uri,
    parse_size,
    resolve_reads,
    split_items,
    task_file_uri,
)

LINES = b"".join(f"{n}\n".encode() for n in range(10))


def test_rows_cut_whole_items_and_the_last_batch_takes_the_rest() -> None:
    batches = split_items(LINES, rows=4)
    assert batches == [b"0\n1\n2\n3\n", b"4\n5\n6\n7\n", b"8\n9\n"]
    assert b"".join(batches) == LINES


def test_one_item_per_batch_by_default_and_a_last_item_without_newline() -> None:
    assert split_items(b"a\nb\nc") == [b"a\n", b"b\n", b"c\n"]


def test_no_items_no_batches() -> None:
    assert split_items(b"", rows=3) == []


def test_partitions_share_the_items_evenly_and_never_make_empty_batches() -> None:
    batches = split_items(LINES, partitions=3)
    assert [batch.count(b"\n") for batch in batches] == [3, 3, 4]
    assert len(split_items(b"a\nb\n", partitions=5)) == 2


def test_bytes_bound_a_batch_but_never_cut_an_item() -> None:
    batches = split_items(b"aaaa\nbb\ncc\ndddddddd\n", size="8B")
    assert batches == [b"aaaa\nbb\n", b"cc\n", b"dddddddd\n"]
    assert parse_size("10KB") == 10240


def test_a_separator_of_its_own() -> None:
    assert split_items(b"a;b;c;", rows=2, separator=";") == [b"a;b;", b"c;"]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"rows": 0}, "batch.rows: must be 1 or more"),
        ({"rows": "x"}, "batch.rows: expected a whole number"),
        ({"partitions": -1}, "batch.partitions: must be 1 or more"),
        ({"size": "ten"}, "batch.bytes: expected a size"),
    ],
)
def test_bad_batch_rules_name_the_property(rule: dict[str, object], message: str) -> None:
    with pytest.raises(StorageError, match=message):
        split_items(LINES, **rule)  # type: ignore[arg-type]


def test_uris_are_kestras_and_refuse_climbing_out() -> None:
    uri = task_file_uri("io.kestra.tests", "flow", "e1", "each_split", "t3", "batch-0.txt")
    assert uri == "kestra:///io/kestra/tests/flow/executions/e1/tasks/each-split/t3/batch-0.txt"
    assert namespace_file_uri("team", "a/b.txt") == "kestra:///team/_files/a/b.txt"
    for bad in ("/etc/passwd", "kestra:///a/../b", "kestra:///a//b", "s3://x/y"):
        with pytest.raises(StorageError):
            check_uri(bad)
    with pytest.raises(StorageError):
        namespace_file_uri("team", "../secrets")


def test_read_marks_are_replaced_by_the_files_text_wherever_they_are() -> None:
    uri = "kestra:///team/_files/a.txt"
    spec = {"message": f"got: {deferred_read(uri)}", "list": [deferred_read(uri)], "n": 1}
    assert deferred_reads(spec) == {uri}
    assert resolve_reads(spec, {uri: "hello"}) == {
        "message": "got: hello",
        "list": ["hello"],
        "n": 1,
    }


def test_a_read_mark_changed_by_a_filter_is_found_not_passed_on() -> None:
    mark = deferred_read("kestra:///team/_files/a.txt")
    assert has_mangled_read({"x": [mark.upper()]})
    assert not has_mangled_read({"x": ["plain text"]})


def test_no_flow_files_land_among_a_namespaces_own_files() -> None:
    """A namespace ``x._files`` would put its executions' files under ``x``'s own files."""
    with pytest.raises(StorageError, match="_files"):
        task_file_uri("io.kestra._files", "f", "e1", "t", "t1", "a.txt")
