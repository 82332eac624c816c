# Three hosts for the "Across hosts" section of chapter 5, sourced by its session inside a
# throwaway network namespace (`unshare --net bash -c '. book/src/overlay-hosts.sh; ...'`): an
# underlay bridge ul0 (10.99.0.0/24); hosts h1..h3, each a network namespace held by a `sleep`
# with eth0 on ul0, its own data root and daemon.json (cluster-store etcd://10.99.0.1:2379,
# cluster-advertise eth0:2376) and its own `dockyard system service`; etcd in h1. `d N ARGS` is
# dockyard on host N, `on N CMD` any command there. The exit trap removes the containers and
# kills every process started here; the namespaces go with them.
# The engine's tests source it too, with their own T (a temporary directory they remove), DY
# and CP.
made_t=
[ -n "${T:-}" ] || { T=$(mktemp -d /tmp/dyb-overlay.XXXXXX); made_t=$T; }
DY=${DY:-$(command -v dockyard)}; CP=${CP-}
set -u
ip link set lo up
ip link add ul0 type bridge; ip link set ul0 up
on() { h=$1; shift; eval "p=\$P$h"; DOCKYARD_DAEMON_CONFIG=$T/h$h/daemon.json nsenter --net=/proc/$p/ns/net "$@"; }
# Long-lived processes are started with nsenter itself, not through a
# function (a subshell): nsenter execs them, so $! is theirs to kill.
d() { h=$1; shift; on $h $DY --root $T/h$h "$@"; }
# etcd: one member in h1, or with MEMBERS=3 one in each host (a cluster of three, which goes
# on while two of them are up). `etcd_start [N..]` / `etcd_stop [N..]`: those members, else all.
MEMBERS=${MEMBERS:-1}
members=; store=
for i in $(seq 1 $MEMBERS); do
  members="${members:+$members,}m$i=http://10.99.0.$i:2380"; store="${store:+$store,}10.99.0.$i:2379"
done
etcd_start() {
  for i in ${*:-$(seq 1 $MEMBERS)}; do
    eval "p=\$P$i"
    nsenter --net=/proc/$p/ns/net etcd --name m$i --data-dir $T/etcd$i \
      --listen-client-urls http://10.99.0.$i:2379,http://127.0.0.1:2379 --advertise-client-urls http://10.99.0.$i:2379 \
      --listen-peer-urls http://10.99.0.$i:2380 --initial-advertise-peer-urls http://10.99.0.$i:2380 \
      --initial-cluster $members --heartbeat-interval 10 --election-timeout 100 >>$T/etcd$i.log 2>&1 &
    eval "E$i=\$!"
  done
  n=0; until on ${1:-1} etcdctl --endpoints 127.0.0.1:2379 endpoint health >/dev/null 2>&1 || [ $n -ge 100 ]; do
    sleep 0.1; n=$((n+1)); done
}
etcd_stop() { for i in ${*:-$(seq 1 $MEMBERS)}; do eval "e=\$E$i"; kill $e; wait $e 2>/dev/null; eval "E$i="; done; }
E1=; E2=; E3=; S1=; S2=; S3=; P1=; P2=; P3=
cleanup() {
  for i in 1 2 3; do ids=$(d $i ps -aq 2>/dev/null); [ -n "$ids" ] && d $i rm -f $ids >/dev/null 2>&1; done
  for p in $S1 $S2 $S3 $E1 $E2 $E3 $P1 $P2 $P3; do kill $p 2>/dev/null; wait $p 2>/dev/null; done
}
trap 'cleanup; [ -z "$made_t" ] || rm -rf "$made_t"' EXIT
for i in 1 2 3; do
  unshare --net sleep 100000 & eval "P$i=\$!"
done
sleep 0.2
for i in 1 2 3; do
  eval "p=\$P$i"
  ip link add ulh$i type veth peer name eth0 netns /proc/$p/ns/net
  ip link set ulh$i master ul0 up
  on $i sh -c "ip link set lo up; ip addr add 10.99.0.$i/24 dev eth0; ip link set eth0 up"
  mkdir -p $T/h$i
  echo '{"bridge":"none","cluster-store":"etcd://'$store'","cluster-advertise":"eth0:2376"}' > $T/h$i/daemon.json
  d $i load -i images/busybox/oci >/dev/null
done
etcd_start
# Host N's service; its PID in $SN.
service_start() {
  eval "p=\$P$1"
  DOCKYARD_DAEMON_CONFIG=$T/h$1/daemon.json nsenter --net=/proc/$p/ns/net $DY --root $T/h$1 system service \
    --host unix://$T/h$1.sock --time 0 >>$T/svc$1.log 2>&1 & eval "S$1=\$!"
}
for i in 1 2 3; do service_start $i; done
n=0; until [ -f $T/h1/cluster/lease -a -f $T/h2/cluster/lease -a -f $T/h3/cluster/lease ] || [ $n -ge 100 ]; do sleep 0.1; n=$((n+1)); done
# Wait until container $2 on host $1 resolves name $3 (the services publish names).
resolves() { n=0; until d $1 exec $2 grep -qw "$3" /etc/hosts || [ $n -ge 50 ]; do sleep 0.1; n=$((n+1)); done; }
ping1() { d $1 exec $2 ping -c1 -W2 "$3" 2>&1 | grep -o '1 packets received'; }
