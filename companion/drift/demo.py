"""The demo's drift step: damage a sample file while the service runs and watch the torrent go
damaged, healing, protected and seeding again. `companion.demo` runs it; nothing else loads it."""

import json
import queue
import time

from ..catalog import drift as rows
from ..catalog import snapshots as snap_rows


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def drift_step(ctx) -> int:
    service, qbt = ctx.service, ctx.qbt
    name = "Sample Album"
    tid = ctx.torrents[name]
    victim = ctx.contents[name] / "02 - Theme.flac"
    component = next((c for c in service.components if hasattr(c, "monitor")), None)
    if component is None:
        return 0
    deadline = time.monotonic() + 120
    while not (snap_rows.list_snapshots(service.catalog, tid) and tid in component.monitor.watch.tracked()
               and not service.catalog.pending_jobs()):
        if time.monotonic() > deadline:
            _say("the sample was not snapshotted in time")
            return 1
        time.sleep(0.1)
    snap = snap_rows.list_snapshots(service.catalog, tid)[-1]
    _say(f"{name}: snapshot {snap['id'][:12]} in the store; drift watch on its folder")
    last = max([r["id"] for r in rows.heals(service.catalog, tid, limit=1)] or [0])
    events: queue.Queue = queue.Queue()
    service.on("*", lambda e: events.put(e) if e.get("torrent_id") == tid else None)
    _say(f"an AI tagger rewrites the start of '{victim.name}' in place while qBittorrent seeds it")
    began = time.monotonic()
    with open(victim, "r+b") as fh:
        fh.write(b"ID3\x04\x00\x00\x00\x00\x01\x00TIT2\x00\x00\x00\x0c\x00\x00\x03Better Title")
    heal, qbt_state = None, None
    while time.monotonic() - began < 120:
        try:
            e = events.get(timeout=0.02)
            print(f"  +{(time.monotonic() - began) * 1000:5.0f} ms  {e['event']:9} {e['message']}", flush=True)
        except queue.Empty:
            pass
        info = qbt.client.torrents_info(torrent_hashes=tid)[0]
        if info["state"] != qbt_state:
            qbt_state = info["state"]
            print(f"  +{(time.monotonic() - began) * 1000:5.0f} ms  qBittorrent shows {qbt_state} "
                  f"({info['progress']:.0%})", flush=True)
        if heal is None:
            done = [r for r in rows.heals(service.catalog, tid) if r["id"] > last and r["finished_at"]]
            heal = done[0] if done else None
        if heal is not None and events.empty() and info["state"] in ("uploading", "stalledUP") \
                and time.monotonic() - began > 2:
            break
    if heal is None or heal["outcome"] != "healed":
        _say(f"the heal did not finish: {heal['error'] if heal else 'timeout'}")
        return 1
    info = qbt.client.torrents_info(torrent_hashes=tid)[0]
    tags = info["tags"].replace("seedward:", "")
    print(f"  qBittorrent: {info['state']}, {info['progress']:.0%} complete, tagged {tags!r}: seeding again")
    timings = json.loads(heal["timings"])
    _say(f"healed {len(json.loads(heal['pieces']))} piece ({heal['bytes_written']:,} bytes) from the snapshot, "
         "verified against the torrent's hashes, no full recheck")
    print(f"  stopped {timings.get('stop', 0) * 1000:.0f} ms after the first inotify event; "
          f"whole response {timings.get('total', 0):.2f} s")
    print(f"  the tagger's bytes are kept in {heal['quarantine']}")
    return 0
