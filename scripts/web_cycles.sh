#!/usr/bin/env bash
# The long version of the web session test: N page-style WebRTC sessions (send + receive
# on one connection) connect, get processed video back and disconnect against one
# `segsynth web`; it prints the server's thread count and RSS after each cycle and fails if
# the threads do not come back (a session not freed) or RSS grows by more than 96 MB. Read
# the RSS list for flatness: it warms up over the first ~50 cycles. The suite runs 12 cycles.
#   scripts/web_cycles.sh [N]   (default 200; needs ./segsynth.sh setup)
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
SEGSYNTH_WEB_CYCLES=${1:-200} cargo test --release --test cli webrtc::web_sessions -- --nocapture
