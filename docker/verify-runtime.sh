#!/usr/bin/env bash
# Checks the runtime image's package set without Docker.
#
# It builds a Debian bookworm root with `debootstrap --variant=minbase` (a stand-in for
# debian:bookworm-slim), installs the runtime packages READ FROM docker/Dockerfile (the lines
# between `# runtime-packages:begin` and `# runtime-packages:end`, so the two cannot drift),
# lays the image out like the Dockerfile does (uid 10001, /var/lib/pbiops, /usr/local/bin),
# starts pbiops-emulator inside it with the demo scenario on a free loopback port, and runs a
# `dataset.refresh` inside it as uid 10001 the way Kestra's Docker runner does
# (`/bin/sh -c '/usr/local/bin/pbiops < task.json'`, working directory owned by root, the
# store on the default SQLite path). It asserts exit 0 and a `"status":"Completed"` outputs line.
#
# Microsoft's repository (msodbcsql18) is skipped with a notice: there is no route to it from
# the development machines. Everything else is installed from Debian.
#
# Usage (as root; needs network access to the Debian mirror):
#   docker/verify-runtime.sh            # reuses the cached minbase root
#   docker/verify-runtime.sh --fresh    # debootstraps again
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian),
#              DEBIAN_SECURITY_MIRROR (default http://deb.debian.org/debian-security),
#              VERIFY_RUNTIME_DIR (default target/verify-runtime),
#              VERIFY_RUNTIME_DOCKERFILE (default docker/Dockerfile; to check a variant).
# Cache: $VERIFY_RUNTIME_DIR/minbase (the pristine debootstrap result, reused across runs),
#        $VERIFY_RUNTIME_DIR/rootfs (a fresh copy of it per run, left behind for inspection),
#        $VERIFY_RUNTIME_DIR/apt-archives (downloaded .debs).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
DOCKERFILE=${VERIFY_RUNTIME_DOCKERFILE:-$REPO/docker/Dockerfile}
WORK=${VERIFY_RUNTIME_DIR:-$REPO/target/verify-runtime}
case $WORK in /*) ;; *) WORK=$REPO/$WORK ;; esac
MINBASE=$WORK/minbase
ROOTFS=$WORK/rootfs
ARCHIVES=$WORK/apt-archives
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm
APP_UID=10001

# The demo scenario's tenant and app (emulator/scenarios/demo.json); not a real secret.
TENANT=contoso.onmicrosoft.com
CLIENT_ID=22b699fd-9835-4700-842f-46f893b34330
CLIENT_SECRET=demo-secret-value
TASK='{"operation":"dataset.refresh","workspace":"Sales","dataset":"Sales Model","poll":{"min":0.2,"max":1}}'

FRESH=false
for arg in "$@"; do
  case $arg in
    --fresh) FRESH=true ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  echo "verify-runtime: must run as root (debootstrap, chroot, mounts)" >&2
  exit 2
fi

T0=$(date +%s.%N)
declare -a STEPS=()
step_start() { STEP_NAME=$1; STEP_T=$(date +%s.%N); echo "==> $1"; }
step_end() {
  local dt
  dt=$(awk -v a="$(date +%s.%N)" -v b="$STEP_T" 'BEGIN { print a - b }')
  STEPS+=("$(printf '%-44s %7.1f s' "$STEP_NAME" "$dt")")
}
RESULT=FAIL
REASON="did not finish"
EMU_PID=""
MOUNTS=()

summary() {
  local total
  total=$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN { print a - b }')
  echo
  echo "---------------------------------------------------------------- verify-runtime"
  for s in "${STEPS[@]}"; do echo "  $s"; done
  printf '  %-44s %7.1f s\n' "total" "$total"
  echo "  packages (from docker/Dockerfile): ${PACKAGES[*]:-?}"
  [ -n "${ADDED_KB:-}" ] && echo "  added to minbase: ${ADDED_COUNT} packages, $((ADDED_KB / 1024)) MiB installed (Installed-Size)"
  echo "  skipped: msodbcsql18 (Microsoft's apt repository is not reachable here)"
  echo "  $RESULT: $REASON"
}

cleanup() {
  local rc=$?
  if [ -n "$EMU_PID" ] && kill -0 "$EMU_PID" 2>/dev/null; then
    kill "$EMU_PID" 2>/dev/null || true
    wait "$EMU_PID" 2>/dev/null || true
  fi
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" 2>/dev/null || true
  done
  summary
  if [ "$RESULT" = PASS ]; then exit 0; fi
  [ "$rc" = 0 ] && rc=1
  exit "$rc"
}
trap cleanup EXIT

fail() { REASON=$1; echo "verify-runtime: $1" >&2; exit 1; }

# --- 1. The package list, from the Dockerfile -------------------------------------------------
step_start "read runtime packages from docker/Dockerfile"
grep -q '^# runtime-packages:begin$' "$DOCKERFILE" || fail "no '# runtime-packages:begin' marker in $DOCKERFILE"
grep -q '^# runtime-packages:end$' "$DOCKERFILE" || fail "no '# runtime-packages:end' marker in $DOCKERFILE"
mapfile -t PACKAGES < <(
  sed -n '/^# runtime-packages:begin$/,/^# runtime-packages:end$/p' "$DOCKERFILE" \
    | grep -v '^[[:space:]]*#' | tr -d '\\' | tr -s '[:space:]' '\n' | sed '/^$/d'
)
[ "${#PACKAGES[@]}" -gt 0 ] || fail "the runtime-packages block in $DOCKERFILE is empty"
for p in "${PACKAGES[@]}"; do
  [[ $p =~ ^[a-z0-9][a-z0-9+.-]+$ ]] || fail "'$p' in the runtime-packages block is not a Debian package name"
done
echo "    ${PACKAGES[*]}"
if grep -q 'msodbcsql18' "$DOCKERFILE"; then
  echo "    NOTICE: the Dockerfile also installs msodbcsql18 from packages.microsoft.com;"
  echo "            that repository cannot be reached from here, so it is skipped (not verified)."
fi
step_end

# --- 2. The binaries -------------------------------------------------------------------------
step_start "release binaries"
if [ ! -x target/release/pbiops ] || [ ! -x target/release/pbiops-emulator ]; then
  echo "    building them: cargo build --release --locked --workspace --bins"
  cargo build --release --locked --workspace --bins
fi
ls -l target/release/pbiops target/release/pbiops-emulator | sed 's/^/    /'
step_end

# --- 3. The minbase root (cached) --------------------------------------------------------------
if ! command -v debootstrap >/dev/null; then
  step_start "install debootstrap (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  step_end
fi
if $FRESH || [ ! -f "$MINBASE/.verify-runtime-complete" ]; then
  step_start "debootstrap --variant=minbase $SUITE"
  rm -rf "$MINBASE" "$MINBASE.partial"
  mkdir -p "$WORK"
  debootstrap --variant=minbase "$SUITE" "$MINBASE.partial" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; fail "debootstrap failed (log: $WORK/debootstrap.log)"; }
  # The sources of debian:bookworm-slim: the release, its updates and security.
  rm -f "$MINBASE.partial/etc/apt/sources.list"
  cat > "$MINBASE.partial/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$MINBASE.partial/var/cache/apt/archives/"*.deb
  touch "$MINBASE.partial/.verify-runtime-complete"
  mv "$MINBASE.partial" "$MINBASE"
  step_end
else
  echo "==> reusing $MINBASE (--fresh to debootstrap again)"
fi

# --- 4. A fresh copy, with the runtime packages -----------------------------------------------
step_start "copy minbase to rootfs"
rm -rf "$ROOTFS"
cp -a "$MINBASE" "$ROOTFS"
mkdir -p "$ARCHIVES/partial"
step_end

mount_in() { # mount_in <mount args...> <target>
  mount "$@"
  MOUNTS+=("${!#}")
}
mount_in -t proc proc "$ROOTFS/proc"
mount_in --bind /dev "$ROOTFS/dev"
mount_in --bind "$ARCHIVES" "$ROOTFS/var/cache/apt/archives"
cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"

in_root() { chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }

in_root dpkg-query -W -f '${Package}\n' | sort > "$WORK/packages-minbase.txt"

step_start "apt-get install (runtime-packages block)"
in_root apt-get update -qq || fail "apt-get update failed in the chroot"
in_root apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" > "$WORK/apt-install.log" 2>&1 \
  || { tail -20 "$WORK/apt-install.log" >&2; fail "apt-get install ${PACKAGES[*]} failed (log: $WORK/apt-install.log)"; }
rm -rf "$ROOTFS/var/lib/apt/lists/"*
in_root dpkg-query -W -f '${Package}\t${Installed-Size}\n' | sort > "$WORK/packages-runtime.tsv"
ADDED=$(cut -f1 "$WORK/packages-runtime.tsv" | comm -13 "$WORK/packages-minbase.txt" -)
ADDED_COUNT=$(echo "$ADDED" | sed '/^$/d' | wc -l)
ADDED_KB=$(awk -F'\t' 'NR==FNR { added[$1] = 1; next } ($1 in added) { kb += $2 } END { print kb + 0 }' \
  <(echo "$ADDED") "$WORK/packages-runtime.tsv")
echo "    added: $(echo "$ADDED" | xargs)"
step_end

# --- 5. The image layout (as in the Dockerfile's runtime and emulator stages) ----------------
step_start "image layout (uid $APP_UID, binaries, data dir)"
in_root groupadd --gid "$APP_UID" pbiops
in_root useradd --uid "$APP_UID" --gid "$APP_UID" --no-create-home --home-dir /var/lib/pbiops \
  --shell /usr/sbin/nologin pbiops
in_root install -d -o "$APP_UID" -g "$APP_UID" -m 0750 /var/lib/pbiops
install -m 0755 target/release/pbiops "$ROOTFS/usr/local/bin/pbiops"
install -m 0755 target/release/pbiops-emulator "$ROOTFS/usr/local/bin/pbiops-emulator"
install -d "$ROOTFS/usr/share/pbiops-emulator/scenarios"
cp emulator/scenarios/*.json "$ROOTFS/usr/share/pbiops-emulator/scenarios/"
[ -x "$ROOTFS/bin/sh" ] || fail "/bin/sh is missing from the root (Kestra's Docker runner needs it)"
missing=$(in_root ldd /usr/local/bin/pbiops /usr/local/bin/pbiops-emulator | grep 'not found' || true)
[ -z "$missing" ] || fail "unresolved shared libraries: $missing"
grep -q '^\[SQLite3\]' "$ROOTFS/etc/odbcinst.ini" || fail "[SQLite3] is not registered in /etc/odbcinst.ini"
echo "    odbcinst.ini drivers: $(grep -o '^\[[^]]*\]' "$ROOTFS/etc/odbcinst.ini" | xargs)"
[ -d "$ROOTFS/etc/ssl/certs" ] && [ -n "$(ls -A "$ROOTFS/etc/ssl/certs")" ] || fail "no CA certificates in /etc/ssl/certs"
# Kestra's working directory: created by root, the task file readable by all.
install -d -m 0755 "$ROOTFS/tmp/kestra-wd"
printf '%s' "$TASK" > "$ROOTFS/tmp/kestra-wd/task.json"
chmod 0644 "$ROOTFS/tmp/kestra-wd/task.json"
step_end

# --- 6. The emulator, inside the root, as uid 10001, on a free loopback port -----------------
step_start "start pbiops-emulator (demo scenario)"
EMU_LOG=$WORK/emulator.log
: > "$EMU_LOG"
chroot --userspec="$APP_UID:$APP_UID" "$ROOTFS" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin \
  /usr/local/bin/pbiops-emulator --scenario /usr/share/pbiops-emulator/scenarios/demo.json \
  --listen 127.0.0.1:0 > "$EMU_LOG" 2> "$WORK/emulator.stderr.log" &
EMU_PID=$!
URL=""
for _ in $(seq 1 100); do
  URL=$(sed -n 's/^listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$EMU_LOG" | head -1)
  [ -n "$URL" ] && break
  kill -0 "$EMU_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$URL" ] || { cat "$WORK/emulator.stderr.log" >&2; fail "the emulator did not print 'listening on http://…'"; }
echo "    $URL"
step_end

# --- 7. The refresh, as uid 10001, the way Kestra runs it -------------------------------------
step_start "dataset.refresh as uid $APP_UID"
OUT=$WORK/refresh.stdout
ERR=$WORK/refresh.stderr
set +e
chroot --userspec="$APP_UID:$APP_UID" "$ROOTFS" /usr/bin/env -i \
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  LANG=C.UTF-8 PBIOPS_LOG_FORMAT=kestra PBIOPS_DATA_DIR=/var/lib/pbiops \
  PBIOPS_AUTHORITY_URL="$URL" PBIOPS_POWERBI_URL="$URL/v1.0/myorg" PBIOPS_FABRIC_URL="$URL/v1" \
  PBIOPS_TENANT_ID="$TENANT" PBIOPS_CLIENT_ID="$CLIENT_ID" PBIOPS_CLIENT_SECRET="$CLIENT_SECRET" \
  KESTRA_EXECUTION_ID=verify-runtime KESTRA_TASKRUN_ID=verify-runtime-1 \
  /bin/sh -c 'set -e
cd /tmp/kestra-wd
/usr/local/bin/pbiops < task.json' > "$OUT" 2> "$ERR"
RC=$?
set -e
sed 's/^/    | /' "$OUT"
[ -s "$ERR" ] && sed 's/^/    ! /' "$ERR"
step_end

[ "$RC" = 0 ] || fail "pbiops exited $RC (stdout: $OUT, stderr: $ERR)"
grep -q '^::{"outputs":{.*"status":"Completed"' "$OUT" || fail "no outputs line with \"status\":\"Completed\" in $OUT"
[ -f "$ROOTFS/var/lib/pbiops/pbiops.db" ] || fail "the default SQLite store /var/lib/pbiops/pbiops.db was not created"
owner=$(stat -c %u "$ROOTFS/var/lib/pbiops/pbiops.db")
[ "$owner" = "$APP_UID" ] || fail "the store is owned by uid $owner, not $APP_UID"
RESULT=PASS
REASON="dataset.refresh exited 0 with status Completed as uid $APP_UID; store at /var/lib/pbiops/pbiops.db"
