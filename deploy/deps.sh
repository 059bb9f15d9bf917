#!/usr/bin/env bash
# Installs what is missing, quietly: Debian packages, the virtualenv with the project, the Kafka jars, the local CA
# and the broker certificate (var/tls, for the secured stack).
# Prints nothing when everything is there; says exactly what failed and where the log is otherwise.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib/common.sh"
LOG=$LOG_DIR/deps.log
EXTRAS=${AIMASS_EXTRAS:-train,test,demo,research,federated}

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v kcat >/dev/null || need_apt+=(kcat)
command -v prometheus >/dev/null || need_apt+=(prometheus)
# The clinician pages are tested in a real browser; CJK fonts so the Chinese questions render in screenshots.
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
[ -d /usr/share/fonts/opentype/noto ] || need_apt+=(fonts-noto-cjk)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "${need_apt[@]}"; } >>"$LOG" 2>&1 || die "apt-get install ${need_apt[*]} failed; see $LOG"
  # Debian's packages start their own daemons where an init system runs; the project starts its own.
  for unit in redis-server prometheus; do $SUDO service "$unit" stop >/dev/null 2>&1 || true; done
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python >= 3.11 is needed; python3 is $(python3 -V)"
stamp=$ROOT/.venv/.installed-$( (cat "$ROOT/pyproject.toml"; echo "$EXTRAS") | sha256sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "installing the Python environment in .venv (extras: $EXTRAS; the first time takes a few minutes)"
  {
    [ -x "$ROOT/.venv/bin/python" ] || python3 -m venv "$ROOT/.venv"
    "$ROOT/.venv/bin/python" -m pip --version >/dev/null 2>&1 || "$ROOT/.venv/bin/python" -m ensurepip >/dev/null
    "$ROOT/.venv/bin/python" -m pip install -q --upgrade pip uv
    "$ROOT/.venv/bin/uv" pip install -q -p "$ROOT/.venv/bin/python" -e "$ROOT[$EXTRAS]"
  } >>"$LOG" 2>&1 || die "installing Python packages failed; see $LOG"
  rm -f "$ROOT"/.venv/.installed-*; touch "$stamp"
fi

"$ROOT/deploy/kafka/kafka.sh" fetch
"$ROOT/deploy/tls/certs.sh"
