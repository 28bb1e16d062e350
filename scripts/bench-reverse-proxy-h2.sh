#!/usr/bin/env bash
# h2load: examples/reverse-proxy against Debian's nginx, both serving HTTP/2 with prior
# knowledge (h2c) and proxying over HTTP/1.1 keep-alive to the same origin; the same run as
# scripts/bench-reverse-proxy.sh with PROTOCOL=h2 (see there for the variables).
#
#   bash scripts/bench-reverse-proxy-h2.sh                  # 3 rounds of 5 s each side
#   ROUNDS=5 SECONDS_PER_RUN=10 CONNECTIONS=16 STREAMS=10 bash scripts/bench-reverse-proxy-h2.sh
set -euo pipefail
PROTOCOL=h2 exec bash "$(dirname "${BASH_SOURCE[0]}")/bench-reverse-proxy.sh" "$@"
