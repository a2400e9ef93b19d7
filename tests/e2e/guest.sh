#!/bin/bash
# Build, once, the guest that end-to-end tests boot under QEMU: Debian's own
# kernel (the exact linux-image-6.1.0-N-amd64 that linux-image-amd64 names)
# and a busybox initramfs holding the virtio modules, /init and the guest
# programs of tests/e2e/guest/.
#
# Usage: tests/e2e/guest.sh
# Prints, on stdout only:
#   VB_KERNEL=/path/to/vmlinuz
#   VB_INITRD=/path/to/initrd.cpio.gz
# Environment:
#   VB_CACHE           cache folder (default /var/cache/vbridge-test)
#   VB_KERNEL_PKG      kernel package to use instead of asking apt-cache
#   VB_GUEST_MODULES   modules to put in the initramfs (with their dependencies)
#
# The initramfs name carries the kernel version and a hash of everything that
# goes into it (init, programs, module list, busybox, this script), so editing
# any of them rebuilds it; an unchanged guest is reused without network access.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${VB_CACHE:-/var/cache/vbridge-test}
MODULES=${VB_GUEST_MODULES:-virtio_pci virtio_blk virtio_net virtio-rng virtio_console virtio_input vcan can-raw}
BUSYBOX=/bin/busybox

log() { echo "guest.sh: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# "linux-image-amd64 Depends: linux-image-6.1.0-N-amd64": the one package to
# fetch. A glob would match every ABI still in the archive.
kernel_pkg() {
	if [[ -n ${VB_KERNEL_PKG:-} ]]; then
		echo "$VB_KERNEL_PKG"
		return
	fi
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1
}

newest_deb() {
	find "$CACHE/deb" -maxdepth 1 -name "$1" 2>/dev/null | sort -V | tail -n1
}

# Prints the path of the kernel .deb in the cache, downloading it if absent.
# Without apt metadata (offline) the newest cached .deb is used.
kernel_deb() {
	local pkg deb
	pkg=$(kernel_pkg)
	# A machine with every package installed may still have no (or stale)
	# package lists: refresh them once before giving up on apt.
	if [[ -z $pkg && -z $(newest_deb 'linux-image-*-amd64_*.deb') ]]; then
		log "apt-cache knows no kernel package; running apt-get update"
		apt-get update -q >&2 || true
		pkg=$(kernel_pkg)
	fi
	if [[ -z $pkg ]]; then
		deb=$(newest_deb 'linux-image-*-amd64_*.deb')
		[[ -n $deb ]] || die "apt-cache names no linux-image-*-amd64 and none is cached"
		log "apt-cache has no kernel; using cached $deb"
		echo "$deb"
		return
	fi
	deb=$(newest_deb "${pkg}_*.deb")
	if [[ -z $deb ]]; then
		log "downloading $pkg"
		mkdir -p "$CACHE/deb"
		if ! (cd "$CACHE/deb" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2); then
			log "apt-get download $pkg failed; refreshing the package lists once"
			apt-get update -q >&2 || true
			pkg=$(kernel_pkg)
			(cd "$CACHE/deb" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2) ||
				die "apt-get download $pkg failed"
		fi
		deb=$(newest_deb "${pkg}_*.deb")
	fi
	echo "$deb"
}

guest_files() {
	find "$HERE/guest" -type f | LC_ALL=C sort
}

cache_key() {
	local deb=$1
	{
		basename "$deb"
		echo "$MODULES"
		sha256sum "$BUSYBOX" | cut -d' ' -f1
		sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1
		guest_files | while read -r f; do
			echo "${f#"$HERE"/}"
			sha256sum <"$f" | cut -d' ' -f1
		done
	} | sha256sum | cut -c1-12
}

# Module name -> .ko path, for the unpacked kernel. modinfo writes names with
# '-' or '_' interchangeably (can-raw, virtio_blk), so both are keys.
declare -A KO
index_modules() {
	local root=$1 f n
	while read -r f; do
		n=${f##*/}
		n=${n%.ko}
		KO[$n]=$f
		KO[${n//-/_}]=$f
	done < <(find "$root" -name '*.ko')
}

# Depth-first post-order over "modinfo -F depends": every module comes after
# everything it needs (virtio_ring before virtio before virtio_pci ...).
declare -A SEEN
ORDER=()
visit() {
	local name=${1//-/_} f d
	[[ -n ${SEEN[$name]:-} ]] && return
	SEEN[$name]=1
	f=${KO[$name]:-}
	[[ -n $f ]] || die "module $1 not found in the kernel package (built in?)"
	for d in $(modinfo -F depends "$f" | tr , ' '); do
		visit "$d"
	done
	ORDER+=("$f")
}

stage_modules() {
	local root=$1 kver=$2 m f
	local dst=$STAGE/lib/modules/$kver
	mkdir -p "$dst" "$STAGE/lib/vb-mods"
	index_modules "$root/lib/modules/$kver/kernel"
	for m in $MODULES; do
		SEEN=()
		ORDER=()
		visit "$m"
		for f in "${ORDER[@]}"; do
			cp -n "$f" "$dst/"
			echo "/lib/modules/$kver/${f##*/}"
		done >"$STAGE/lib/vb-mods/$m.order"
		# init names modules as given on the command line, either spelling.
		[[ $m == "${m//-/_}" ]] || cp "$STAGE/lib/vb-mods/$m.order" "$STAGE/lib/vb-mods/${m//-/_}.order"
		log "module $m: $(xargs -n1 basename <"$STAGE/lib/vb-mods/$m.order" | tr '\n' ' ')"
	done
}

stage_busybox() {
	local a
	mkdir -p "$STAGE/bin" "$STAGE/proc" "$STAGE/sys" "$STAGE/dev" "$STAGE/tmp" "$STAGE/guest"
	ln -s bin "$STAGE/sbin"
	cp "$BUSYBOX" "$STAGE/bin/busybox"
	for a in $("$BUSYBOX" --list); do
		[[ $a == busybox ]] || ln -s busybox "$STAGE/bin/$a"
	done
	# The kernel opens /dev/console for init before devtmpfs is mounted.
	mknod -m 600 "$STAGE/dev/console" c 5 1
	mknod -m 666 "$STAGE/dev/null" c 1 3
}

build() {
	local deb=$1 kver=$2 out=$3 kernel=$4 tmp
	tmp=$(mktemp -d "$CACHE/build.XXXXXX")
	# shellcheck disable=SC2064 # expand now: tmp is local
	trap "rm -rf '$tmp'" EXIT
	log "unpacking $(basename "$deb")"
	dpkg-deb -x "$deb" "$tmp/root"
	[[ -f $tmp/root/boot/vmlinuz-$kver ]] || die "no boot/vmlinuz-$kver in $deb"
	STAGE=$tmp/stage
	mkdir -p "$STAGE"
	stage_busybox
	stage_modules "$tmp/root" "$kver"
	install -m 755 "$HERE/guest/init" "$STAGE/init"
	find "$HERE/guest" -name '*.sh' -exec install -m 755 {} "$STAGE/guest/" \;
	(cd "$STAGE" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc -R 0:0 --reproducible --quiet) | gzip -n -1 >"$tmp/initrd"
	[[ -f $kernel ]] || cp "$tmp/root/boot/vmlinuz-$kver" "$kernel.tmp"
	[[ -f $kernel ]] || mv "$kernel.tmp" "$kernel"
	mv "$tmp/initrd" "$out"
	log "built $out ($(du -h "$out" | cut -f1))"
	# Older builds (edited guest programs): left a day for runs still using them.
	find "$CACHE" -maxdepth 1 -name 'initrd-*.cpio.gz' ! -name "${out##*/}" -mtime +0 -delete
}

main() {
	local deb kver key out kernel
	command -v cpio >/dev/null || die "cpio missing (tools/deps.sh)"
	command -v modinfo >/dev/null || die "modinfo missing (kmod; tools/deps.sh)"
	[[ -x $BUSYBOX ]] || die "$BUSYBOX missing (busybox-static; tools/deps.sh)"
	# A dynamic busybox (package busybox) would die in the guest with no libc.
	if command -v readelf >/dev/null && readelf -l "$BUSYBOX" | grep -q INTERP; then
		die "$BUSYBOX is not static (need busybox-static)"
	fi
	mkdir -p "$CACHE"
	# Tests may run in parallel (ctest -j): one builder at a time.
	exec 9>"$CACHE/.lock"
	flock 9
	deb=$(kernel_deb)
	kver=$(basename "$deb" | sed -n 's/^linux-image-\(.*-amd64\)_.*/\1/p')
	[[ -n $kver ]] || die "cannot tell the kernel version from $deb"
	key=$(cache_key "$deb")
	out=$CACHE/initrd-$kver-$key.cpio.gz
	kernel=$CACHE/vmlinuz-$kver
	if [[ ! -f $out || ! -f $kernel ]]; then
		build "$deb" "$kver" "$out" "$kernel"
	fi
	echo "VB_KERNEL=$kernel"
	echo "VB_INITRD=$out"
}

main "$@"
