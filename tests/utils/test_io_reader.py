"""The one JSON/JSONL reader (rest_mcts.utils.io): every way a file can be wrong is one
FileFormatError line naming the file and line; the atomic writer gives files the umask's
mode."""

from __future__ import annotations

import json
import os
import stat

import pytest

from rest_mcts.config import ConfigError
from rest_mcts.data.records import DatasetError
from rest_mcts.loop.steps import StepRunner
from rest_mcts.search.tree import Tree
from rest_mcts.training.rows import read_solution_rows, read_value_rows
from rest_mcts.utils.io import (
    FileFormatError,
    jsonl_objects,
    read_json,
    read_jsonl,
    write_json,
    write_jsonl,
)


def test_the_reader_error_is_the_one_line_user_error():
    assert issubclass(FileFormatError, ConfigError)  # run.py: `error: ...`, exit status 2
    assert issubclass(DatasetError, FileFormatError)


@pytest.mark.parametrize("data, message", [
    (b"", "f.json: empty file (expected JSON)"),
    (b"  \n", "f.json: empty file (expected JSON)"),
    (b'{\n  "a": 1,\n  "b": \n}\n', "f.json:4: invalid JSON (Expecting value)"),
    (b'{\n "a": "caf\xe9"\n}', "f.json:2: not UTF-8 text (byte 0xe9 at column 11)"),
    (b"[1, 2]", "f.json: expected an object in JSON, got a list"),
    (b"null", "f.json: expected an object in JSON, got null"),
])
def test_read_json_names_the_file_and_line(tmp_path, data, message):
    path = tmp_path / "f.json"
    path.write_bytes(data)
    with pytest.raises(FileFormatError) as err:
        read_json(path, dict)
    assert str(err.value) == f"{tmp_path}/{message}"


def test_read_json_reads_any_value_unless_told(tmp_path):
    path = write_json(tmp_path / "f.json", [1, {"a": "é"}])
    assert read_json(path) == [1, {"a": "é"}]
    with pytest.raises(FileNotFoundError):
        read_json(tmp_path / "missing.json")


def test_read_jsonl_drops_only_a_torn_last_line(tmp_path):
    path = tmp_path / "r.jsonl"
    row = json.dumps({"id": "q1", "text": "é"}).encode()
    path.write_bytes(row + b"\n" + row[:-3])  # killed mid-line
    assert read_jsonl(path) == [{"id": "q1", "text": "é"}]
    cut = json.dumps({"id": "q2", "text": "é"}, ensure_ascii=False).encode()
    path.write_bytes(row + b"\n" + cut[: cut.index("é".encode()) + 1])  # killed inside "é"
    assert read_jsonl(path) == [{"id": "q1", "text": "é"}]
    assert read_jsonl(tmp_path / "none.jsonl") == []


@pytest.mark.parametrize("line, message", [
    (b'{"id": "q2"', "invalid JSON (Expecting ',' delimiter)"),
    (b'{"id": "\xff"}', "not UTF-8 text (byte 0xff at column 9)"),
    (b'"q2"', "expected a JSON object, got a string"),
    (b'{"question": "q2"}', "no field 'id'"),
])
def test_read_jsonl_names_a_bad_line(tmp_path, line, message):
    path = tmp_path / "r.jsonl"
    good = b'{"id": "q1"}\n'
    path.write_bytes(good + line + b"\n" + good)
    with pytest.raises(FileFormatError) as err:
        read_jsonl(path, required=("id",))
    assert str(err.value) == f"{path}:2: {message}"


def test_jsonl_objects_is_strict_and_raises_the_callers_error(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": ')  # no torn line in a file written whole
    with pytest.raises(DatasetError, match=r"d.jsonl:2: invalid JSON"):
        list(jsonl_objects(path, DatasetError))


def test_d_v_and_d_g_rows_are_reader_errors(tmp_path):
    d_v = tmp_path / "d_v.jsonl"
    d_v.write_text('{"question": "q", "steps": ["a\\n"], "target": 0.5}\n{"question": "q"}\n')
    with pytest.raises(FileFormatError, match=r"d_v.jsonl:2: field 'steps'"):
        read_value_rows(d_v)
    d_g = tmp_path / "d_g.jsonl"
    d_g.write_bytes(b'{"question": "q", "steps": ["\xe9"]}\n')
    with pytest.raises(FileFormatError, match=r"d_g.jsonl:1: not UTF-8 text"):
        read_solution_rows(d_g)


def test_a_tree_file_of_another_shape_is_named(tmp_path):
    path = write_json(tmp_path / "t.json", {"question_id": "q", "nodes": [{"id": 0}]})
    with pytest.raises(FileFormatError,
                       match=r"t.json: not a search tree \((KeyError|TypeError): "):
        Tree.load(path)


def test_a_step_manifest_without_outputs_is_named(tmp_path):
    runner = StepRunner(tmp_path)
    manifest = tmp_path / "iter_0" / "policy" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("")
    with pytest.raises(FileFormatError, match=rf"^{manifest}: empty file"):
        runner.outputs("iter_0/policy")
    manifest.write_text('{"outputs": [1]}')
    with pytest.raises(FileFormatError, match=rf"^{manifest}: field 'outputs' is a list, "
                                              "expected an object"):
        runner.outputs("iter_0/policy")


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)],
                         ids=["umask022", "umask027", "umask077"])
def test_atomic_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        written = [write_json(tmp_path / "a.json", {"a": 1}),
                   write_jsonl(tmp_path / "b.jsonl", [{"b": 2}])]
        with open(tmp_path / "plain.txt", "w"):  # what an ordinary open() makes
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == mode
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left
