"""Admitting serials: tokens written once and only their hashes stored, refusals before anything is written,
and what a failed run added taken back."""

from __future__ import annotations

import json
import stat

import pytest

from base.errors import AlreadyExistsError, InvalidInputError
from fleet.admission import (
    admit,
    binding_code_hash,
    check_serials,
    numbered_serials,
    serials_from_file,
    token_hash,
)


class FakeTable:
    """The fleet table's calls, in memory; ``fail_after`` makes the nth write raise."""

    def __init__(self, rows: dict[str, str] | None = None, fail_after: int | None = None) -> None:
        self.rows = dict(rows or {})
        self.fail_after = fail_after
        self.writes = 0
        self.codes: dict[str, str | None] = {}

    def _write(self) -> None:
        self.writes += 1
        if self.fail_after is not None and self.writes > self.fail_after:
            raise RuntimeError("DynamoDB went away")

    def existing(self, serials: list[str]) -> set[str]:
        return {s for s in serials if s in self.rows}

    def admit(self, serial: str, hashed: str, now: int, code_hash: str | None = None) -> bool:
        self._write()
        if serial in self.rows:
            return False
        self.rows[serial] = hashed
        self.codes[serial] = code_hash
        return True

    def rotate(self, serial: str, hashed: str) -> bool:
        self._write()
        if serial not in self.rows:
            return False
        self.rows[serial] = hashed
        return True

    def remove(self, serial: str) -> None:
        self.rows.pop(serial, None)


def test_tokens_go_to_a_private_file_once_and_only_their_hashes_to_the_table(tmp_path):
    table = FakeTable()
    out = tmp_path / "tokens.json"
    admitted = admit(table, "s", ["a-1", "a-2"], out, rotate=False, now=0)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    written = {d["serial"]: d["token"] for d in json.loads(out.read_text())["devices"]}
    assert written == {a.serial: a.token for a in admitted}
    assert table.rows == {serial: token_hash(token) for serial, token in written.items()}
    assert len(set(written.values())) == 2 and all(len(t) >= 43 for t in written.values())


def test_each_device_gets_a_binding_code_of_80_bits_kept_only_as_a_hash(tmp_path):
    table = FakeTable()
    out = tmp_path / "tokens.json"
    admit(table, "s", ["a-1", "a-2"], out, rotate=False, now=0)
    codes = {d["serial"]: d["bindingCode"] for d in json.loads(out.read_text())["devices"]}
    for code in codes.values():
        groups = code.split("-")
        assert len(groups) == 4 and all(len(g) == 4 for g in groups)
        assert not set("".join(groups)) & set("ILOU")  # Crockford's base32: nothing to misread
    assert codes["a-1"] != codes["a-2"]
    assert table.codes == {serial: binding_code_hash(code) for serial, code in codes.items()}
    # read as printed: case, blanks and dashes do not count
    assert binding_code_hash(codes["a-1"].lower().replace("-", " ")) == table.codes["a-1"]


def test_a_rotated_serial_keeps_its_binding_code(tmp_path):
    table = FakeTable({"a-1": "old"})
    out = tmp_path / "t.json"
    admit(table, "s", ["a-1"], out, rotate=True, now=0)
    assert json.loads(out.read_text())["devices"][0]["bindingCode"] is None and "a-1" not in table.codes


def test_serials_admitted_already_are_refused_before_anything_is_written(tmp_path):
    table = FakeTable({"a-1": "old"})
    with pytest.raises(AlreadyExistsError, match="--rotate-token"):
        admit(table, "s", ["a-1", "a-2"], tmp_path / "t.json", rotate=False, now=0)
    assert table.rows == {"a-1": "old"} and not (tmp_path / "t.json").exists()


def test_rotate_gives_admitted_serials_new_tokens_and_admits_the_rest(tmp_path):
    table = FakeTable({"a-1": "old"})
    admitted = admit(table, "s", ["a-1", "a-2"], tmp_path / "t.json", rotate=True, now=0)
    assert [(a.serial, a.rotated) for a in admitted] == [("a-1", True), ("a-2", False)]
    assert table.rows["a-1"] == token_hash(admitted[0].token)


def test_a_failed_write_takes_back_the_rows_this_run_added(tmp_path):
    table = FakeTable(fail_after=2)
    out = tmp_path / "t.json"
    with pytest.raises(RuntimeError):
        admit(table, "s", ["a-1", "a-2", "a-3"], out, rotate=False, now=0)
    assert table.rows == {} and not out.exists()


def test_an_existing_tokens_file_is_never_overwritten(tmp_path):
    out = tmp_path / "t.json"
    out.write_text("precious")
    with pytest.raises(AlreadyExistsError, match="written once"):
        admit(FakeTable(), "s", ["a-1"], out, rotate=False, now=0)
    assert out.read_text() == "precious"


@pytest.mark.parametrize(
    ("serials", "message"),
    [
        ([], "No serials"),  # nothing to admit
        (["ok", "ok"], "twice"),  # the same serial twice
        (["has space"], "Invalid thing name"),  # not a thing name
    ],
)
def test_bad_serial_lists_are_refused(serials, message):
    with pytest.raises(InvalidInputError, match=message):
        check_serials(serials)


def test_numbered_serials_and_serial_files(tmp_path):
    assert numbered_serials("box-", 2, start=9) == ["box-000009", "box-000010"]
    path = tmp_path / "serials.txt"
    path.write_text("# factory line 3\nsn-1\n\n  sn-2  \n")
    assert serials_from_file(path) == ["sn-1", "sn-2"]
