#!/usr/bin/env bash
# Production secrets at rest are ansible-vault files; in clear they exist only in a tmpfs working
# copy for the length of a run.
#
#   secrets-vault.sh open  VAULT_DIR WORK_DIR   decrypt VAULT_DIR/{secrets,pki}/*.vault into WORK_DIR
#   secrets-vault.sh seal  VAULT_DIR WORK_DIR   encrypt every file of WORK_DIR into VAULT_DIR (new or changed)
#   secrets-vault.sh close WORK_DIR             remove the clear working copy
#
# VAULT_DIR is the operations repository's folder (safe to commit: every file is encrypted);
# WORK_DIR is kntc_secrets_dir's and kntc_pki_dir's parent, on a tmpfs (/run/kntc-ops in the
# production inventory). The vault password comes from ANSIBLE_VAULT_PASSWORD_FILE (or
# --vault-id in ANSIBLE_VAULT_IDENTITY_LIST), never from this repository.
set -euo pipefail
VAULT=${ANSIBLE_VAULT:-$(dirname "$0")/../../.venv/bin/ansible-vault}
[ -x "$VAULT" ] || VAULT=ansible-vault
cmd=${1:-}; shift || true
case "$cmd" in
  open)
    src=$1 work=$2
    umask 077
    for sub in secrets pki; do
      mkdir -p "$work/$sub"
      [ -d "$src/$sub" ] || continue
      for f in "$src/$sub"/*.vault; do
        [ -e "$f" ] || continue
        "$VAULT" decrypt --output "$work/$sub/$(basename "$f" .vault)" "$f"
      done
    done
    echo "secrets-vault: opened into $work (remove with: $0 close $work)"
    ;;
  seal)
    dst=$1 work=$2
    for sub in secrets pki; do
      [ -d "$work/$sub" ] || continue
      mkdir -p "$dst/$sub"
      for f in "$work/$sub"/*; do
        [ -f "$f" ] || continue
        out="$dst/$sub/$(basename "$f").vault"
        # Re-encrypt only what is new or changed, so that the repository's history stays readable.
        if [ -f "$out" ] && cmp -s "$f" <("$VAULT" view "$out"); then
          continue
        fi
        "$VAULT" encrypt --output "$out" "$f"
      done
    done
    echo "secrets-vault: sealed $work into $dst"
    ;;
  close)
    work=$1
    find "$work" -type f -exec shred -u {} + 2>/dev/null || true
    rm -rf "$work"
    ;;
  *)
    sed -n '2,13p' "$0"; exit 2 ;;
esac
