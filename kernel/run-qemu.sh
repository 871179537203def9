#!/bin/sh
# Boots the release kernel by hand: run-qemu.sh MACHINE CPUS "CMDLINE" [extra qemu args]
# e.g. kernel/run-qemu.sh microvm 4 "workload=ipi-pingpong"; exit status 33 = ok, 35 = failed, 37 = panic.
machine=${1:-microvm}; cpus=${2:-1}; cmdline=${3:-workload=hello}; shift 3 2>/dev/null
dir=$(dirname "$0")
exec timeout 120 qemu-system-x86_64 -machine "$machine" -cpu max -m 256M -smp "$cpus" \
  -accel tcg,thread=multi -nographic -no-reboot -nodefaults -serial stdio \
  -device isa-debug-exit,iobase=0xf4,iosize=4 \
  -kernel "$dir/target/x86_64-unknown-none/release/kernel" -append "$cmdline" "$@"
