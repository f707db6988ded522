# shellcheck shell=bash
# Source me after scripts/bootstrap: `pulumi` is the chosen CLI with our plugins, the .venv is
# active, and local stacks use a local file backend and passphrase unless you chose your own.
_sa_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ ! -f "$_sa_repo/.venv/.pulumi-bin-dir" ]; then
  echo "scripts/env.sh: run scripts/bootstrap first" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
. "$_sa_repo/.venv/bin/activate"
# Our provider plugin, Pulumi's Python language host and the chosen CLI first.
export PATH="$_sa_repo/bin:$(cat "$_sa_repo/.venv/.pulumi-host-dir" 2>/dev/null):$(cat "$_sa_repo/.venv/.pulumi-bin-dir"):$PATH"
export SUPABASE_ACCESS_ACTIONLINT="$(cat "$_sa_repo/.venv/.actionlint" 2>/dev/null)"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
if [ -z "${PULUMI_BACKEND_URL:-}" ] && ! grep -qs '"current": *"[^"]' "${PULUMI_HOME:-$HOME/.pulumi}/credentials.json"; then
  mkdir -p "$_sa_repo/.pulumi-state"
  export PULUMI_BACKEND_URL="file://$_sa_repo/.pulumi-state"
  # The published passphrase of the local stacks' secrets (the local database's well-known
  # password). Never exported as PULUMI_CONFIG_PASSPHRASE: a dev or prod stack would encrypt a
  # real password with it. `pulumi` below (and scripts/matrix) pass it to the local stacks only.
  if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
    export SUPABASE_ACCESS_LOCAL_PASSPHRASE="local-only-passphrase"
  fi
fi
unset _sa_repo

# Every stack a pulumi command line names, one a line: -s/--stack in all its forms (`-s x`,
# `-s=x`, `-sx`, `--stack x`, `--stack=x`), `config cp --dest`, `--copy-config-from`, and the NAME of `stack init`,
# `stack select`, `stack rm` and `stack rename` (any word after them that is not an option: a
# word too many only withholds the passphrase). `stack init`/`new` naming no stack print `?`
# (pulumi asks for the name: not known to be local).
supabase_access_stacks_named() {
  local words=() word command="" positional=0 named=0 cluster flag value
  while [ $# -gt 0 ]; do
    word=$1
    shift
    case $word in
      --) break ;;
      --stack=* | --copy-config-from=*) printf '%s\n' "${word#*=}"; named=1 ;;
      --dest=*) if [ "$command" = "config cp" ]; then printf '%s\n' "${word#*=}"; named=1; fi ;;
      --stack | --copy-config-from) printf '%s\n' "${1:-?}"; named=1; [ $# -eq 0 ] || shift ;;
      --dest) if [ "$command" = "config cp" ]; then printf '%s\n' "${1:-?}"; named=1; [ $# -eq 0 ] || shift; fi ;;
      # Long options of pulumi or its commands whose value is the next word.
      --cwd | --color | --verbose | --tracing | --profiling | --memprofilerate | --tracing-header | \
        --secrets-provider | --teams | --message | --target | --otel-traces)
        [ $# -eq 0 ] || shift ;;
      --*) ;;
      -?*)
        # A cluster of short options (-ys prod, -sprod, -s=prod): -s (and config cp's -d) take
        # the rest of the word or the next one, as do -C, -v, -m and -t.
        cluster=${word#-}
        while [ -n "$cluster" ]; do
          flag=${cluster:0:1}
          cluster=${cluster:1}
          case $flag/$command in
            s/* | "d/config cp")
              value=${cluster#=}
              if [ -z "$value" ]; then value=${1:-?}; [ $# -eq 0 ] || shift; fi
              printf '%s\n' "$value"; named=1
              break ;;
            C/* | v/* | m/* | t/*)
              if [ -z "$cluster" ] && [ $# -gt 0 ]; then shift; fi
              break ;;
          esac
        done
        ;;
      *)
        if [ "$positional" = 1 ]; then
          printf '%s\n' "$word"; named=1
        elif [ ${#words[@]} -lt 2 ]; then
          words+=("$word")
          command="${words[*]}"
          case $command in
            "stack init" | "stack select" | "stack rm" | "stack rename") positional=1 ;;
          esac
        fi
        ;;
    esac
  done
  case ${words[0]:-}/$named in
    new/0) printf '?\n' ;;
    stack/0) [ "$command" = "stack init" ] && printf '?\n' ;;
  esac
  return 0
}

# The stack selected in this project (pulumi's own answer), or nothing.
supabase_access_current_stack() {
  command pulumi stack --show-name 2>/dev/null || true
}

# The passphrase a pulumi command line gets: the local one when every stack it targets is local.
supabase_access_passphrase_for() {
  [ -n "${SUPABASE_ACCESS_LOCAL_PASSPHRASE:-}" ] || return 0
  # A passphrase chosen after sourcing this file is the user's, for every stack.
  [ -z "${PULUMI_CONFIG_PASSPHRASE:-}${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ] || return 0
  local stacks stack
  stacks=$(supabase_access_stacks_named "$@")
  [ -n "$stacks" ] || stacks=$(supabase_access_current_stack)
  [ -n "$stacks" ] || return 0
  while IFS= read -r stack; do
    # organization/supabase-access/local on the file backend is the same stack as local.
    case $stack in
      local | local-prod | organization/supabase-access/local | organization/supabase-access/local-prod) ;;
      *) return 0 ;;
    esac
  done <<<"$stacks"
  printf '%s\n' "$SUPABASE_ACCESS_LOCAL_PASSPHRASE"
}

# The first word of a pulumi command line that is no option (destroy, up, stack, ...).
supabase_access_command() {
  while [ $# -gt 0 ]; do
    case $1 in
      -C | --cwd | --color | -v | --verbose | --tracing | --profiling | --memprofilerate) shift ;;
      -*) ;;
      *) printf '%s\n' "$1"; return ;;
    esac
    [ $# -eq 0 ] || shift
  done
}

# How many creates an interrupted run left pending on the stack a command targets (0 if unknown).
supabase_access_pending_creates() {
  local passphrase=$1 stack
  shift
  stack=$(supabase_access_stacks_named "$@" | head -n1)
  [ "$stack" != "?" ] || return 0
  PULUMI_CONFIG_PASSPHRASE=${passphrase:-${PULUMI_CONFIG_PASSPHRASE:-}} command pulumi stack export ${stack:+--stack "$stack"} 2>/dev/null |
    python -c 'import json, sys
try:
    pending = json.load(sys.stdin)["deployment"].get("pending_operations") or []
except (ValueError, KeyError, TypeError):
    pending = []
print(sum(op.get("type") == "creating" for op in pending))' 2>/dev/null || echo 0
}

# A killed run can leave the file backend's `<stack>.json.attrs` sidecar empty (the storage library
# rewrites it in place): every command then fails with "failed to load checkpoint: EOF". Say what fixes it.
supabase_access_torn_sidecars_hint() {
  local state sidecar
  [[ ${PULUMI_BACKEND_URL:-} == file://* ]] || return 0
  state=${PULUMI_BACKEND_URL#file://}
  state=${state%%\?*}
  for sidecar in "$state"/.pulumi/stacks/*/*.json.attrs; do
    if [ -e "$sidecar" ] && [ ! -s "$sidecar" ]; then
      echo "scripts/env.sh: $sidecar is empty: a killed run was writing the checkpoint. Run scripts/recover [stack] (or scripts/recover [stack] --destroy to destroy the stack)." >&2
    fi
  done
}

pulumi() {
  local passphrase pending code=0
  passphrase=$(supabase_access_passphrase_for "$@")
  # A destroy after an interrupted run leaves the objects of the creates it never recorded.
  if [ "$(supabase_access_command "$@")" = destroy ]; then
    pending=$(supabase_access_pending_creates "$passphrase" "$@")
    if [ "${pending:-0}" != 0 ]; then
      echo "scripts/env.sh: the stack has $pending create(s) an interrupted run left pending; pulumi destroy would leave their objects behind. Run scripts/recover [stack] --destroy (or \`command pulumi destroy\` to destroy anyway)." >&2
      return 1
    fi
  fi
  if [ -n "$passphrase" ]; then
    PULUMI_CONFIG_PASSPHRASE=$passphrase command pulumi "$@" || code=$?
  else
    command pulumi "$@" || code=$?
  fi
  if ((code)); then supabase_access_torn_sidecars_hint; fi
  return "$code"
}
