"""`check --json` writes each file's line by hand (100,000 files): it must be exactly what
json.dumps(FileScan.to_json()) gives, for any path and status."""

import json

import pytest

from companion.cli.check_cmd import file_json
from companion.scan import FileScan
from companion.torrent import FileEntry

PATHS = ["a/b.flac", "Ünï – 東京/x.txt", 'q"uote\\back\nline\ttab', "emoji 😀/\u2603", "bad \udcff byte",
         "\x00\x1f ctrl"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("sha", [None, "ab" * 32])
@pytest.mark.parametrize("status", ["ok", "damaged", "suspect", "missing", "size_mismatch"])
def test_file_line_is_json_dumps(path, sha, status):
    f = FileScan(FileEntry(3, path, 12345, 0, False, None), "/save", status, sha)
    assert file_json(f) == json.dumps(f.to_json())
    assert json.loads(file_json(f)) == f.to_json()
