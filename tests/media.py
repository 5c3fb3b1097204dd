"""Real media for the ladder's tests and benchmark, made by ffmpeg (Debian): FLAC and MP3 with
embedded cover art and tags, Matroska and MP4 with a few seconds of H.264 video and AAC audio."""

import shutil
import subprocess
from pathlib import Path

TOOLS = ("ffmpeg", "metaflac", "mkvpropedit", "id3v2", "eyeD3")


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def ffmpeg(*args) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-nostdin", *map(str, args)], check=True, capture_output=True)


def cover(path: Path, size: int = 400, seed: int = 1) -> Path:
    """A JPEG of noise (incompressible, like a photo's detail): ~size*size/3 bytes."""
    ffmpeg("-f", "lavfi", "-i", f"nullsrc=s={size}x{size},geq=random(1)*255:random(1)*{128 + seed}:128",
           "-frames:v", "1", "-q:v", "3", path)
    return path


def flac(path: Path, seconds: float = 4, art: Path | None = None, title: str = "Song") -> Path:
    args = ["-f", "lavfi", "-i", f"anoisesrc=d={seconds}:c=pink:r=44100", "-ac", "2"]
    if art:
        args += ["-i", art, "-map", "0", "-map", "1", "-c:v", "copy", "-disposition:v", "attached_pic"]
    ffmpeg(*args, "-metadata", f"title={title}", "-metadata", "artist=Band", path)
    return path


def mp3(path: Path, seconds: float = 6, art: Path | None = None, title: str = "Song") -> Path:
    args = ["-f", "lavfi", "-i", f"anoisesrc=d={seconds}:c=pink:r=44100", "-ac", "2"]
    if art:
        args += ["-i", art, "-map", "0", "-map", "1", "-c:v", "copy"]
    ffmpeg(*args, "-c:a", "libmp3lame", "-b:a", "192k", "-id3v2_version", "3", "-metadata", f"title={title}",
           "-metadata", "artist=Band", path)
    return path


def video(path: Path, seconds: float = 4, size: str = "320x240", faststart: bool = False) -> Path:
    """An .mkv or .mp4 of moving noise (so it does not compress to nothing) with a sine tone."""
    extra = ["-movflags", "+faststart"] if faststart else []
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=duration={seconds}:size={size}:rate=25,noise=alls=40:allf=t",
           "-f", "lavfi", "-i", f"sine=d={seconds}", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18",
           "-c:a", "aac", *extra, "-metadata", "title=Episode", path)
    return path


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True)
