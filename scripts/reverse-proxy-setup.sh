# The setup that scripts/bench-reverse-proxy.sh (timed) and
# scripts/instructions-reverse-proxy.sh (callgrind) share, so that both measure the same
# thing: an nginx origin serving a 1 KiB file, and the two proxies in front of it (Debian's
# nginx and examples/reverse-proxy), each over HTTP/1.1 keep-alive to the origin, with
# X-Forwarded-For as their only added header, no access log, and optionally a cache.
# Sourced, not run; it only defines functions (also used by scripts/h2spec-reverse-proxy.sh
# and scripts/pgo-reverse-proxy.sh).

# make_work: a temporary directory in `work` that nginx's workers (an unprivileged user)
# can read, and the processes put in `pids` killed, waited for and the directory removed
# when the script exits.
make_work() {
  work=$(mktemp -d)
  chmod 755 "$work"
  pids=()
  trap cleanup_work EXIT
}
cleanup_work() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# nginx's temporary paths, all under DIR (nginx will not start without writable ones).
temp_paths() {
  echo "client_body_temp_path $1; proxy_temp_path $1; fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;"
}

# nginx_conf DIR PROCESSES HTTP: DIR/nginx.conf with the PROCESSES line(s), errors to
# stderr, no access log, its temporary paths and pid file in DIR, keep-alive for a million
# requests, and HTTP inside its http block.
nginx_conf() {
  mkdir -p "$1"
  cat >"$1/nginx.conf" <<CONF
$2
error_log stderr error;
pid $1/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off; $(temp_paths "$1")
  keepalive_requests 1000000;
  $3
}
CONF
}

# write_origin DIR PORT CACHE: DIR/www/index.html (1 KiB) and DIR/origin/nginx.conf, one
# worker serving it on 127.0.0.1:PORT; with CACHE=1 its responses say
# `Cache-Control: max-age=3600`.
write_origin() {
  local dir=$1 port=$2 cache=$3 cache_control=''
  mkdir -p "$dir/www"
  head -c 1024 /dev/zero | tr '\0' 'x' >"$dir/www/index.html"
  if [ "$cache" = 1 ]; then cache_control='add_header Cache-Control "max-age=3600";'; fi
  nginx_conf "$dir/origin" "worker_processes 1;" \
    "server { listen 127.0.0.1:$port; root $dir/www; $cache_control }"
}

# write_nginx_proxy DIR PORT ORIGIN_PORT PROTOCOL CACHE WORKERS: DIR/proxy/nginx.conf, nginx
# proxying 127.0.0.1:PORT (HTTP/2 with prior knowledge when PROTOCOL is h2) to the origin;
# WORKERS worker processes, or with WORKERS=0 one process and no master (for callgrind);
# with CACHE=1 it caches (`proxy_cache`) and says HIT or MISS in X-Cache, as ours does.
write_nginx_proxy() {
  local dir=$1 port=$2 origin_port=$3 protocol=$4 cache=$5 workers=$6
  local processes="worker_processes $workers;" listen_h2='' h2='' cache_path='' caching=''
  if [ "$workers" = 0 ]; then processes=$'master_process off;\nworker_processes 1;'; fi
  if [ "$protocol" = h2 ]; then
    # `http2 on` from nginx 1.25.1; Debian 12's 1.22 says it on the listen line.
    if nginx -V 2>&1 | grep -qE 'nginx/1\.(2[5-9]|[3-9][0-9])'; then
      h2='http2 on;'
    else
      listen_h2=' http2'
    fi
  fi
  if [ "$cache" = 1 ]; then
    cache_path="proxy_cache_path $dir/proxy/cache levels=1:2 keys_zone=bench:10m max_size=64m;"
    caching='proxy_cache bench; add_header X-Cache $upstream_cache_status;'
  fi
  nginx_conf "$dir/proxy" "$processes" "
  upstream origin { server 127.0.0.1:$origin_port; keepalive 256; }
  $cache_path
  server {
    listen 127.0.0.1:$port$listen_h2;
    $h2 http2_max_concurrent_streams 100;
    location / {
      proxy_pass http://origin; $caching
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }"
}

# write_ours FILE LISTEN ORIGIN_PORT PROTOCOL CACHE WORKERS: the configuration of
# examples/reverse-proxy listening on LISTEN (h2c as well when PROTOCOL is h2) in front of
# the origin, caching with CACHE=1, with WORKERS worker threads (empty: one per core).
write_ours() {
  local file=$1 listen=$2 origin_port=$3 protocol=$4 cache=$5 workers=$6
  local h2='' cache_section='' route_cache='' worker_line=''
  if [ "$protocol" = h2 ]; then h2=$'[server.http2]\nh2c = true'; fi
  if [ "$cache" = 1 ]; then cache_section=$'[cache]\nmax_bytes = 67108864'; route_cache='cache = true'; fi
  if [ -n "$workers" ]; then worker_line="workers = $workers"; fi
  cat >"$file" <<CONF
[server]
listen = "$listen"
$worker_line
access_log = false
# The same header work as nginx's configuration: X-Forwarded-For only (nginx writes no
# Forwarded, X-Forwarded-Proto/-Host or Via unless told to).
forwarding_headers = ["x-forwarded-for"]
$h2
$cache_section
[[pools]]
name = "origin"
upstreams = [{ address = "127.0.0.1:$origin_port" }]
[[routes]]
pool = "origin"
$route_cache
CONF
}
