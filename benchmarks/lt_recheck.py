"""libtorrent's own recheck of a payload, in a process of its own (for the benchmarks' timing and
peak memory): `python benchmarks/lt_recheck.py TORRENT SAVE_PATH HASHING_THREADS` prints one JSON
object {"seconds", "bad_pieces", "pieces"}. The session is companion.ltsession's isolated one."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from companion import ltsession  # noqa: E402


def main() -> int:
    torrent, save, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    raw = Path(torrent).read_bytes()
    ses = ltsession.isolated_session(hashing_threads=threads)
    began = time.perf_counter()
    handle, result = ltsession.check_payload(ses, raw, Path(save), timeout=3600)
    seconds = time.perf_counter() - began
    ses.remove_torrent(handle)
    print(json.dumps({"seconds": seconds, "bad_pieces": len(result.bad_pieces), "pieces": result.num_pieces}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
