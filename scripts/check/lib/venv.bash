# Sourced by scripts/check/schemathesis.sh, scripts/check/demo.sh and lib/k8s-tools.bash.
#
# pinned_venv NAME REQUIREMENTS: a venv under ~/.cache/ecom-stack/venv (ECOM_STACK_HOME)
# with exactly the pins of REQUIREMENTS (installed with --no-deps: the file pins
# everything), built once and named by the file's hash, so a new pin makes a new venv.
# Sets $venv.
pinned_venv() {
  local name=$1 requirements=$2 home pins
  home="${ECOM_STACK_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/ecom-stack}"
  pins=$(sha256sum "$requirements" | cut -c1-12)
  venv="$home/venv/$name-$pins"
  [ -e "$venv/.installed" ] && return 0
  echo "installing $requirements into $venv (once)"
  rm -rf "$venv"
  mkdir -p "$home/venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's python3 keeps venv in a package of its own.
    rm -rf "$venv"
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements"
  touch "$venv/.installed"
}
