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

# The stack a pulumi command line names (--stack/-s), or nothing.
supabase_access_stack_arg() {
  while [ $# -gt 0 ]; do
    case $1 in
      --stack=*) printf '%s\n' "${1#--stack=}"; return ;;
      -s=*) printf '%s\n' "${1#-s=}"; return ;;
      --stack | -s) printf '%s\n' "${2:-}"; return ;;
    esac
    shift
  done
}

# The passphrase a pulumi command line gets: the local one for the local stacks only.
supabase_access_passphrase_for() {
  [ -n "${SUPABASE_ACCESS_LOCAL_PASSPHRASE:-}" ] || return 0
  local stack
  stack=$(supabase_access_stack_arg "$@")
  [ -n "$stack" ] || stack=$(command pulumi stack --show-name 2>/dev/null || true)
  case $stack in
    local | local-prod) printf '%s\n' "$SUPABASE_ACCESS_LOCAL_PASSPHRASE" ;;
  esac
}

# Bounded lock waits for pulumi-postgresql's connections (its plugin's lib/pq reads PGOPTIONS):
# OFFICIAL_PROVIDER_PGOPTIONS in supabase_access/sql/database.py. Only for pulumi, not for psql.
SUPABASE_ACCESS_PGOPTIONS="-c lock_timeout=10s -c client_connection_check_interval=1s"

pulumi() {
  local passphrase
  passphrase=$(supabase_access_passphrase_for "$@")
  if [ -n "$passphrase" ]; then
    PGOPTIONS="$SUPABASE_ACCESS_PGOPTIONS${PGOPTIONS:+ $PGOPTIONS}" PULUMI_CONFIG_PASSPHRASE=$passphrase command pulumi "$@"
  else
    PGOPTIONS="$SUPABASE_ACCESS_PGOPTIONS${PGOPTIONS:+ $PGOPTIONS}" command pulumi "$@"
  fi
}
