# nginx as a plain static host for whole-program tests (sourced after harness.sh):
#   . "$here/../lib/nginx.sh"
#   start_nginx ROOT [SERVER_LINES]
# serves ROOT on 127.0.0.1 with one worker and sets
#   - port: the port it listens on,
#   - ngx: its folder (nginx.conf, error.log, access.log),
#   - ngx_pid: its process id (also in pids, so it is stopped at exit; stop_pid ends it sooner).
# SERVER_LINES are extra lines inside `server { }` (locations, try_files). NGINX_LOG_FORMAT,
# when set, is the access log's format (e.g. '$connection "$request" $status').
# Waits until nginx answers; a start that fails shows its error log and fails the test.

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

start_nginx() {
  local root=$1 server_lines=${2:-} log_line
  [[ -x "$nginx_bin" ]] || fail "nginx is not installed: run scripts/deps.sh"
  ngx=$(mktemp -d "$work/nginx.XXXXXX")
  mkdir -p "$ngx/tmp"
  port=$(free_port)
  log_line="access_log $ngx/access.log;"
  if [[ -n "${NGINX_LOG_FORMAT:-}" ]]; then
    log_line="log_format test '$NGINX_LOG_FORMAT'; access_log $ngx/access.log test;"
  fi
  cat > "$ngx/nginx.conf" <<EOF
worker_processes 1;
pid $ngx/nginx.pid;
error_log $ngx/error.log;
events { worker_connections 64; }
http {
  $log_line
  client_body_temp_path $ngx/tmp/body;
  proxy_temp_path $ngx/tmp/proxy;
  fastcgi_temp_path $ngx/tmp/fastcgi;
  uwsgi_temp_path $ngx/tmp/uwsgi;
  scgi_temp_path $ngx/tmp/scgi;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$port;
    root $root;
    $server_lines
  }
}
EOF
  # Started as root, nginx's workers would run as nobody; run them as the test's own user so
  # they read what the test wrote, whatever its modes.
  local globals='daemon off;'
  [[ $(id -u) -eq 0 ]] && globals+=" user root root;"
  start_bg "$ngx/out.log" "$nginx_bin" -p "$ngx" -c "$ngx/nginx.conf" -e "$ngx/error.log" -g "$globals"
  ngx_pid=$last_pid
  local deadline=$(($(now_ms) + 20000))
  until curl -s -o /dev/null "http://127.0.0.1:$port/"; do
    if (($(now_ms) > deadline)) || ! kill -0 "$ngx_pid" 2>/dev/null; then
      echo "--- nginx error log"; cat "$ngx/error.log" "$ngx/out.log" 2>/dev/null
      fail "nginx did not start on 127.0.0.1:$port"
    fi
    sleep 0.05
  done
}
