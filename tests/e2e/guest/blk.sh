#!/bin/sh
# Block workload, run by /init for vb.prog=blk. For every virtio disk (vda,
# vdb, ...):
#   GUEST disk D BYTES            size the driver sees
#   GUEST queues D N              blk-mq hardware queues (= virtqueues in use)
#   GUEST pre D MD5               md5 of the first MiB, as the host wrote it
#   GUEST wrote D OFF SIZE MD5    random data written with O_DIRECT + fsync
#   GUEST region D OFF SIZE MD5   the same range read back after drop_caches
#   GUEST hctx D I N              hardware queue I ran N times in the workload
#                                 (blk-mq debugfs "run"; 6.1 has no request count)
#   GUEST done
# The host compares these against the image files once QEMU has exited.
# Parameters (kernel command line):
#   vb.ndisks=N     wait up to 10 s for N disks, error if fewer
#   vb.regions=R,.. OFF:SIZE:BS in bytes; shell arithmetic with K and M, e.g.
#                   6*M+4*K:3*M:4*K. OFF and SIZE must be multiples of BS, BS
#                   of 512 (O_DIRECT).
# shellcheck disable=SC2034 # K and M are used inside $(( )) of REGIONS
K=1024
M=1048576
REGIONS=${VB_REGIONS:-1*M:4*M:M,6*M+4*K:3*M:4*K,12*M+512:M+1024:512,16*M:8*M:256*K,63*M:M:64*K}
NCPU=$(nproc)
fail=0

err() {
	echo "GUEST error $*"
	fail=1
}

disks() {
	for d in /sys/block/vd*; do
		[ -e "$d" ] && echo "${d##*/}"
	done
}

wait_disks() {
	want=${VB_NDISKS:-1}
	i=0
	while [ "$(disks | wc -l)" -lt "$want" ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	[ "$(disks | wc -l)" -ge "$want" ] || err "found $(disks | wc -l) disks, want $want"
}

# Writes of all regions of all disks run at once, spread over the CPUs with
# taskset: blk-mq maps each CPU to its own hardware queue, so with
# num-queues > 1 every virtqueue carries requests, concurrently.
write_all() {
	n=0
	pids=""
	for d in $DISKS; do
		for r in $(echo "$REGIONS" | tr , ' '); do
			off=$(($(echo "$r" | cut -d: -f1)))
			size=$(($(echo "$r" | cut -d: -f2)))
			bs=$(($(echo "$r" | cut -d: -f3)))
			src=/tmp/data.$d.$off
			head -c "$size" /dev/urandom >"$src"
			echo "GUEST wrote $d $off $size $(md5sum <"$src" | cut -d' ' -f1)"
			mask=$(printf %x $((1 << (n % NCPU))))
			taskset "$mask" dd if="$src" of="/dev/$d" bs="$bs" seek="$off" \
				oflag=seek_bytes,direct conv=notrunc,fsync status=none &
			pids="$pids $!"
			n=$((n + 1))
		done
	done
	for p in $pids; do
		wait "$p" || err "write dd pid $p failed"
	done
}

read_all() {
	for d in $DISKS; do
		for r in $(echo "$REGIONS" | tr , ' '); do
			off=$(($(echo "$r" | cut -d: -f1)))
			size=$(($(echo "$r" | cut -d: -f2)))
			bs=$(($(echo "$r" | cut -d: -f3)))
			sum=$(dd if="/dev/$d" bs="$bs" skip="$off" count="$size" \
				iflag=skip_bytes,count_bytes status=none | md5sum | cut -d' ' -f1)
			echo "GUEST region $d $off $size $sum"
			rm -f "/tmp/data.$d.$off"
		done
	done
}

# hctx_runs before|after: remember each hardware queue's run count, then
# print how much it grew. Without debugfs nothing is printed.
hctx_runs() {
	for d in $DISKS; do
		for h in /sys/kernel/debug/block/"$d"/hctx*; do
			[ -f "$h/run" ] || continue
			i=${h##*hctx}
			if [ "$1" = before ]; then
				cat "$h/run" >"/tmp/run.$d.$i"
			else
				echo "GUEST hctx $d $i $(($(cat "$h/run") - $(cat "/tmp/run.$d.$i")))"
			fi
		done
	done
}

wait_disks
DISKS=$(disks)
for d in $DISKS; do
	echo "GUEST disk $d $(($(cat "/sys/block/$d/size") * 512))"
	echo "GUEST queues $d $(ls "/sys/block/$d/mq" | wc -l)"
	sum=$(dd if="/dev/$d" bs=65536 count=16 iflag=direct status=none | md5sum | cut -d' ' -f1)
	echo "GUEST pre $d $sum"
done
hctx_runs before
write_all
sync
echo 3 >/proc/sys/vm/drop_caches
read_all
hctx_runs after
[ $fail -eq 0 ] && echo "GUEST done $(cut -d' ' -f1 /proc/uptime)"
exit $fail
