#!/usr/bin/env bash
# Builds Berth's base image from this machine's own binaries, without pulling
# anything: node and the Debian packages Berth uses (busybox-static, runc, the
# CNI plugins, iptables, iproute2, mount, zstd, redis-server, docker-registry),
# each with the shared libraries ldd lists, then `docker import`s the tree.
#
#   deploy/build-base-image.sh [TAG]        (default berth-base:local; DOCKER_HOST is honoured)
#   docker build --build-arg BASE_IMAGE=berth-base:local -t berth:local .
set -euo pipefail

tag="${1:-berth-base:local}"
docker="${DOCKER:-docker}"

need=(node busybox runc redis-server redis-cli docker-registry iptables ip mount umount zstd bash ldd)
for b in "${need[@]}"; do
  command -v "$b" >/dev/null || { echo "build-base-image: $b is missing (scripts/setup-host.sh installs what Berth needs)" >&2; exit 1; }
done
[ -d /usr/lib/cni ] || { echo "build-base-image: /usr/lib/cni is missing (apt-get install containernetworking-plugins)" >&2; exit 1; }

root="$(mktemp -d "${TMPDIR:-/tmp}/berth-base-XXXXXX")"
trap 'rm -rf "$root"' EXIT

# The host's merged-/usr layout, so libraries are found at the paths binaries ask for.
mkdir -p "$root"/usr/{bin,sbin,lib} "$root"/etc "$root"/tmp "$root"/root "$root"/var/lib/berth "$root"/run "$root"/proc "$root"/sys "$root"/dev
for d in bin sbin lib lib64; do
  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$root/$d"; else mkdir -p "$root/$d"; fi
done
[ -e "$root/usr/lib64" ] || mkdir -p "$root/usr/lib64"

# Copies a file at its real path, and the name it was asked by (a symlink) as a symlink to it.
copy_file() {
  local src="$1" real asked
  real="$(readlink -f "$src")"
  [ -f "$real" ] || return 0
  if [ ! -e "$root$real" ]; then
    mkdir -p "$root$(dirname "$real")"
    cp -p "$real" "$root$real"
  fi
  asked="$(readlink -f "$(dirname "$src")")/$(basename "$src")"
  if [ "$asked" != "$real" ] && [ ! -e "$root$asked" ] && [ ! -L "$root$asked" ]; then
    mkdir -p "$root$(dirname "$asked")"
    ln -s "$real" "$root$asked"
  fi
}

# A binary (or shared object) and every library ldd lists for it.
copy_with_libs() {
  local f lib
  for f in "$@"; do
    copy_file "$f"
    while read -r lib; do
      [ -n "$lib" ] && copy_file "$lib"
    done < <(ldd "$f" 2>/dev/null | awk '/=>/ && $3 ~ /^\// { print $3 } !/=>/ && $1 ~ /^\// { print $1 }')
  done
}

bins=()
for b in "${need[@]}" nsenter; do bins+=("$(command -v "$b")"); done
# iptables (nft or legacy, as the host has it) and the names the CNI plugins call.
for b in iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  command -v "$b" >/dev/null && bins+=("$(command -v "$b")")
done
copy_with_libs "${bins[@]}" /usr/lib/cni/*
xtables="$(dirname "$(readlink -f "$(ldd "$(readlink -f "$(command -v iptables)")" | awk '/libxtables/ { print $3 }')")")/xtables"
[ -d "$xtables" ] && copy_with_libs "$xtables"/*.so

# busybox for everything else (sh, wget for health checks, ...): its applets where nothing real is.
busybox="$(readlink -f "$(command -v busybox)")"
for applet in $("$busybox" --list); do
  [ -e "$root/usr/bin/$applet" ] || [ -e "$root/usr/sbin/$applet" ] || ln -s "$busybox" "$root/usr/bin/$applet"
done

cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
berth:x:65534:65534:berth:/var/lib/berth:/bin/false
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
tty:x:5:
berth:x:65534:
GROUP
echo 'hosts: files dns' > "$root/etc/nsswitch.conf"
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"
# The API, scheduler, Redis and registry run as 65534 (compose): their data dirs are theirs,
# and a named volume mounted there starts with this owner.
mkdir -p "$root/data" "$root/var/lib/registry"
chown 65534:65534 "$root/var/lib/berth" "$root/data" "$root/var/lib/registry"
chmod 0750 "$root/var/lib/berth"

tar --numeric-owner -C "$root" -c . | "$docker" import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -m "Berth base: this host's node $(node --version) and Debian binaries" - "$tag" >/dev/null
echo "$tag"
