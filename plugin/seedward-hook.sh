#!/bin/sh
# seedward's hook for a qBittorrent in a container (POSIX sh: the image needs no Python).
#
# `seedward qbt install-hook` copies this file into the instance's hook_dir (a host folder mounted
# into the container) and sets qBittorrent's "run external program" to
#   /bin/sh "<hook_dir as the container sees it>/seedward-hook.sh" added|finished "%I" "%J" "%N" "%D" "%F" [-- PROGRAM ...]
# qBittorrent splits that line itself and starts it without a shell (QProcess::splitCommand).
# The event goes into the spool folder beside this file, one entry per call (its arguments, each
# ended by NUL, written to a temporary name and renamed: complete or absent); the seedward service
# drains that folder and checks every entry (companion/spool.py), so nothing here trusts its input.
# After `--` comes the program qBittorrent ran before the hook was installed: it still runs.
# Exit codes: 0 spooled; 2 a call it cannot use, or a spool it cannot write.

case "$1" in
    added|finished) ;;
    *) echo 'usage: seedward-hook.sh added|finished "%I" "%J" "%N" "%D" "%F" [-- PROGRAM ...]' >&2; exit 2 ;;
esac
here=${0%/*}
[ "$here" = "$0" ] && here=.
spool="$here/spool"
umask 007
mkdir -p "$spool" 2>/dev/null
t=$(date +%s%N 2>/dev/null)
case "$t" in *[!0-9]*|"") t="$(date +%s)000000000" ;; esac
name="0$t-$$-sh"
code=0
if printf '%s\0' "$1" "$2" "$3" "$4" "$5" "$6" > "$spool/.$name.tmp" 2>/dev/null \
        && mv -f "$spool/.$name.tmp" "$spool/$name.args" 2>/dev/null; then
    :
else
    rm -f "$spool/.$name.tmp" 2>/dev/null
    echo "seedward-hook.sh: cannot write the $1 event into $spool" >&2
    code=2
fi
if [ $# -ge 7 ] && [ "$7" = "--" ]; then
    shift 7
    [ $# -gt 0 ] && "$@" </dev/null >/dev/null 2>&1 &
fi
exit $code
