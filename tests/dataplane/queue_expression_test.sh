#!/usr/bin/env bash
# The nftables `queue` expression path, on a kernel that has it. This machine's kernel lacks
# CONFIG_NFT_QUEUE, so knpd takes the xtables NFQUEUE target there; production kernels usually
# have the expression. Debian's own kernel (nft_queue as a module) is booted under qemu with this
# machine's root file system shared read-only over 9p, and the dataplane end-to-end tests run
# inside it unchanged, expecting the expression (KNP_EXPECT_QUEUE_METHOD): same behaviour on both
# paths, shown by the same tests.
#
# Usage (meson runs it): queue_expression_test.sh BUILDDIR SRCDIR
# Needs root, qemu-system-x86_64, busybox (static), kmod and Debian's package archive for the
# kernel package (tools/install-deps --test installs the tools; the kernel is downloaded once
# into BUILDDIR/qemu-kernel). Without them: skipped with the reason; under CI=true, failed.
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
cache=$build/qemu-kernel

unavailable() {
  if [[ ${CI:-} == true ]]; then
    echo "queue expression test FAILED: $*" >&2
    exit 1
  fi
  echo "queue expression test skipped: $*" >&2
  exit 77
}
[[ $(id -u) -eq 0 ]] || unavailable "not root (network namespaces, nftables and NFQUEUE inside the VM)"
for tool in qemu-system-x86_64 busybox depmod apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || unavailable "$tool is not installed (tools/install-deps --test installs it)"
done
busybox=$(command -v busybox)
# It runs as the VM's first program, before any library is there: it must be static.
if ldd "$busybox" >/dev/null 2>&1; then unavailable "$busybox is not static (package busybox-static)"; fi

# --- the kernel: Debian's current linux-image, extracted once ------------------------------------
if [[ ! -f $cache/ready ]]; then
  rm -rf "$cache" && mkdir -p "$cache"
  kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
  fetch() { [[ -n $1 ]] && (cd "$cache" && apt-get download "$1" >/dev/null 2>&1); }
  pkg=$(kernel_pkg)
  # Package lists missing or older than the archive (a point release replaced the kernel):
  # refresh them once and ask again.
  if ! fetch "$pkg"; then
    apt-get update -qq >/dev/null 2>&1 || true
    pkg=$(kernel_pkg)
    [[ -n $pkg ]] || unavailable "no linux-image-amd64 in the package lists"
    fetch "$pkg" || unavailable "cannot download $pkg from the package archive"
  fi
  dpkg-deb -x "$cache"/"$pkg"_*.deb "$cache/root"
  rm -f "$cache"/*.deb
  touch "$cache/ready"
fi
vmlinuz=$(ls "$cache"/root/boot/vmlinuz-* | head -1)
kver=${vmlinuz##*/vmlinuz-}
moddir=$cache/root/lib/modules/$kver
grep -q "^CONFIG_NFT_QUEUE=[ym]" "$cache/root/boot/config-$kver" || unavailable "$kver has no CONFIG_NFT_QUEUE"
[[ -f $moddir/modules.dep ]] || depmod -b "$cache/root" "$kver"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/initrd"/{bin,m,proc,sys,dev,newroot} "$work/out"
cp "$busybox" "$work/initrd/bin/busybox"
# Only what mounting the root over virtio 9p needs, in dependency order; everything else the
# kernel loads itself, through the modprobe wrapper below.
boot_modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p"
for m in $boot_modules; do
  f=$(grep -o -m1 "^[^:]*/$m\.ko:" "$moddir/modules.dep" | tr -d :) || true
  [[ -n $f ]] || unavailable "module $m not found in $kver"
  cp "$moddir/$f" "$work/initrd/m/"
done
cat > "$work/initrd/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $boot_modules; do insmod /m/\$m.ko || echo "insmod \$m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro host /newroot || { echo "cannot mount the root"; poweroff -f; }
# The only writable places: /run (a tmpfs) and the result folder in it. Not /tmp: the build
# being tested may live there.
mount -t tmpfs tmpfs /newroot/run
mkdir -p /newroot/run/knp/out /newroot/run/knp/mods/lib/modules /newroot/run/knp/tmp
mount -t 9p -o trans=virtio,version=9p2000.L out /newroot/run/knp/out
mount -t 9p -o trans=virtio,version=9p2000.L,ro mods /newroot/run/knp/mods/lib/modules
umount /proc /sys /dev
exec switch_root /newroot /bin/bash /run/knp/out/inside.sh
EOF
chmod +x "$work/initrd/init"
(cd "$work/initrd" && find . | busybox cpio -o -H newc 2>/dev/null | gzip >"$work/initrd.gz")

# --- inside the VM ---------------------------------------------------------------------------------
cat > "$work/out/inside.sh" <<EOF
#!/bin/bash
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
# The kernel asks for modules (nf_tables, nft_queue, veth …) by running this; the tree lives
# under /run/knp/mods because the shared root has no /lib/modules for this kernel.
printf '#!/bin/sh\nexec $(command -v modprobe) -d /run/knp/mods "\$@"\n' > /run/knp/modprobe
chmod +x /run/knp/modprobe
echo /run/knp/modprobe > /proc/sys/kernel/modprobe
export HOME=/run/knp/tmp TMPDIR=/run/knp/tmp PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin CI=${CI:-}
export KNP_EXPECT_QUEUE_METHOD=expression NSTAT_HISTORY=/run/knp/tmp/nstat  # nstat writes /tmp otherwise
cd /run/knp/tmp
{
  echo "kernel \$(uname -r)"
  python3 "$src/tests/dataplane/e2e_test.py" "$build/host/knpd" "$build/plugins" "$build/tests/plugins"
  echo "rc=\$?"
} > /run/knp/out/result.txt 2>&1
sync
echo o > /proc/sysrq-trigger
EOF

# TCG (software emulation): KVM is not usable on every machine this runs on, and the test is
# about the kernel, not speed. Boot takes seconds; the tests a few minutes.
accel=tcg,thread=multi
timeout 1200 qemu-system-x86_64 -accel "$accel" -cpu max -m 2048 -smp "$(nproc)" -nographic -no-reboot \
  -kernel "$vmlinuz" -initrd "$work/initrd.gz" -append "console=ttyS0 quiet panic=-1" \
  -fsdev local,id=root,path=/,security_model=passthrough,readonly=on -device virtio-9p-pci,fsdev=root,mount_tag=host \
  -fsdev local,id=mods,path="$cache/root/lib/modules",security_model=passthrough,readonly=on -device virtio-9p-pci,fsdev=mods,mount_tag=mods \
  -fsdev local,id=out,path="$work/out",security_model=passthrough -device virtio-9p-pci,fsdev=out,mount_tag=out \
  >"$work/console.log" 2>&1 || true

if [[ ! -f $work/out/result.txt ]]; then
  echo "queue expression test FAILED: the VM produced no result; its console:" >&2
  tail -40 "$work/console.log" >&2
  exit 1
fi
cat "$work/out/result.txt"
grep -q "^rc=0$" "$work/out/result.txt"
