#!/bin/sh
# /init of the VM test bed's guest (busybox sh, PID 1). Mounts the kernel's
# filesystems, loads the modules listed in /etc/vm/modules (dependencies first),
# brings up the QEMU user network (10.0.2.15/24, gateway 10.0.2.2), starts the
# monitored workload in a container (own pid, mount and network namespaces) and
# the agent outside it, then serves a root shell on the second serial port
# (ttyS1) for the bed's ground-truth commands. Kernel command line options:
#   ebpfmonitor.sleepers=N   start N extra idle processes (for `vm bench`)
#   ebpfmonitor.v8=FLAGS     pass --v8-flags=FLAGS to Deno
export PATH=/bin
export HOME=/tmp DENO_DIR=/tmp/deno DENO_NO_UPDATE_CHECK=1 NO_COLOR=1

say() { echo "ebpfmonitor-vm: $*" >/dev/console; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /dev/shm
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
say "uptime $(cut -d' ' -f1 /proc/uptime) s: filesystems mounted"

while read -r module; do
  insmod "/modules/$module.ko" || say "failed to load module $module"
done </etc/vm/modules

ip link set lo up
ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up && ip route add default via 10.0.2.2 ||
  say "failed to configure eth0"
say "uptime $(cut -d' ' -f1 /proc/uptime) s: $(wc -l </proc/modules) modules loaded, network up"

option() { tr ' ' '\n' </proc/cmdline | sed -n "s/^ebpfmonitor\.$1=//p"; }

# The monitored system: a container with its own pid, mount and network
# namespaces, running a few long-lived processes (its pid 1 is a shell) and a
# TCP listener that only the container's network namespace shows.
unshare -p -m -n -f --mount-proc sh -c '
  sleep 1000000 &
  sh -c "while true; do sleep 3; done" &
  ip link set lo up
  nc -l -p 7072 &
  wait' </dev/null >/dev/null 2>&1 &

# Sockets for the sockets view beside the agent's: an IPv6 (dual-stack) TCP
# listener, and UDP sockets bound on IPv4 and IPv6.
httpd -p "[::]:8080" -h /tmp
/bin/deno eval 'import dgram from "node:dgram";
  dgram.createSocket("udp4").bind(5353, "0.0.0.0");
  dgram.createSocket({ type: "udp6", ipv6Only: true }).bind(5354, "::");' \
  </dev/null >/dev/null 2>&1 &

sleepers=$(option sleepers)
i=0
while [ "$i" -lt "${sleepers:-0}" ]; do
  sleep 1000000 </dev/null >/dev/null 2>&1 &
  i=$((i + 1))
done

v8=$(option v8)
say "uptime $(cut -d' ' -f1 /proc/uptime) s: starting the agent"
/bin/deno run -A --unstable-vsock ${v8:+--v8-flags=$v8} /opt/ebpfmonitor.js \
  agent --listen tcp://0.0.0.0:7070 $(cat /etc/vm/agent-flags) </dev/null >/dev/console 2>&1 &
echo $! >/tmp/agent.pid

# The bed's shell on ttyS1: raw, no echo, not interactive (no prompt, no line
# editing); restarted if it exits.
stty -F /dev/ttyS1 raw -echo
while true; do
  setsid sh -c 'exec sh +i </dev/ttyS1 >/dev/ttyS1 2>&1'
  sleep 1
done
