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
  # Only for the local file backend: real stacks keep their own passphrase or secrets provider.
  if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
    export PULUMI_CONFIG_PASSPHRASE="local-only-passphrase"
  fi
fi
unset _sa_repo
