#!/usr/bin/env bash
# Keeps the kiosk window running: waits until the X display is there, starts the window
# in kiosk mode (fullscreen, no cursor, no decorations), and starts it again whenever it
# exits (a crash, or the display going away: X is restarted, a cable is pulled). The
# payment journal makes every restart safe. Stop it with SIGTERM (systemd does).
#
#   deploy/kiosk-session.sh [extra `main.py run` options]
#
# Environment: DISPLAY (default :0), KIOSK_PYTHON (default .venv/bin/python),
# KIOSK_RESTART_DELAY seconds between restarts (default 2).
set -u
cd "$(dirname "$0")/.."

PY=${KIOSK_PYTHON:-.venv/bin/python}
export DISPLAY=${DISPLAY:-:0}
DELAY=${KIOSK_RESTART_DELAY:-2}
stopping=""
child=""

log() { echo "kiosk-session: $*" >&2; }

display_up() {
    local n=${DISPLAY#*:}
    n=${n%%.*}
    [ -S "/tmp/.X11-unix/X$n" ] || return 1
    # With xset installed, also ask the server (a stale socket does not count).
    if command -v xset >/dev/null 2>&1; then xset q >/dev/null 2>&1 || return 1; fi
    return 0
}

on_term() {
    stopping=1
    if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; fi
}
trap on_term TERM INT

while [ -z "$stopping" ]; do
    if ! display_up; then
        log "waiting for display $DISPLAY"
        until display_up || [ -n "$stopping" ]; do sleep 1; done
        [ -n "$stopping" ] && break
    fi
    # A kiosk screen never blanks or powers down.
    if command -v xset >/dev/null 2>&1; then xset s off -dpms s noblank >/dev/null 2>&1 || true; fi
    "$PY" main.py run --kiosk "$@" &
    child=$!
    log "window started (pid $child) on $DISPLAY"
    wait "$child"
    rc=$?
    if [ -n "$stopping" ]; then
        wait "$child" 2>/dev/null
        break
    fi
    child=""
    log "window exited with status $rc; starting it again in ${DELAY}s"
    sleep "$DELAY"
done
log "stopped"
exit 0
