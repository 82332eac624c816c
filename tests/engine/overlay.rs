//! Overlay networks across three hosts, on one machine: the course notes'
//! walkthrough (seed 002, "docker 跨主机网络") with etcd instead of consul.
//!
//! A throwaway network namespace (`unshare --net`) holds the underlay: a
//! bridge `ul0`, 10.99.0.0/24. Each "host" h1..h3 is a network namespace
//! of its own (held open by a `sleep`) with an `eth0` on that bridge, a
//! data root and daemon.json of its own (`cluster-store`
//! etcd://10.99.0.1:2379, `cluster-advertise` eth0:2376), and its own
//! `dockyard system service`. etcd runs in h1, started by the test with a
//! data dir in the test's temporary directory. Every process the script
//! starts is killed by its exit trap, whether it succeeds or not; every
//! packet stays between these namespaces.

use std::process::{Command, Output, Stdio};

use dockyard_e2e::dockyard::{leftover_cgroups, text, Dockyard as Dy};
use dockyard_e2e::fixtures::{bin, workspace_root};

/// The three hosts, etcd and the services: the book's script (chapter 5,
/// "Across hosts"), so that the book and the tests build the same thing.
/// It gives the scripts `d N ARGS` (dockyard on host N), `on N CMD` (any
/// command in its namespace), `etcd_start`/`etcd_stop`, `resolves` and
/// `ping1`; `$CP` is the test's cgroup parent.
const HOSTS: &str = ". book/src/overlay-hosts.sh";

/// Run `script` after [`HOSTS`] in a throwaway network namespace, with
/// an etcd of `members` members (1: in h1; 3: one in each host).
fn three_hosts(dy: &Dy, members: u32, script: &str) -> Output {
    let full = format!(
        "MEMBERS={members}; T={}; DY={}; CP=--cgroup-parent={}; {HOSTS}\n{script}",
        dy.root.path().display(),
        bin("dockyard").display(),
        dy.parent
    );
    Command::new("unshare")
        .args(["--net", "sh", "-c", &full])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .output()
        .expect("unshare")
}

/// The value after `key=` on its own line of `out`.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in:\n{out}"))
}

#[test]
fn overlay_containers_on_three_hosts_ping_by_name_and_leave_nothing_behind() {
    let dy = Dy::empty("dockyard-overlay");
    let script = r#"
        d 1 network create -d overlay ov1 >/dev/null
        for i in 1 2 3; do echo "ls$i=$(d $i network ls --format '{{.Name}}/{{.Driver}}/{{.Scope}}' | grep ov1)"; done
        for i in 1 2 3; do d $i run -d $CP --name c$i --network ov1 busybox sleep 120 >/dev/null; done
        for i in 1 2 3; do echo "ip$i=$(d $i inspect -f '{{.NetworkSettings.Networks.ov1.IPAddress}}' c$i)"; done
        resolves 1 c1 c3; resolves 2 c2 c1; resolves 3 c3 c2
        echo "c1>c2=$(ping1 1 c1 c2)"; echo "c2>c3=$(ping1 2 c2 c3)"; echo "c3>c1=$(ping1 3 c3 c1)"
        echo "c1>ip3=$(ping1 1 c1 $(d 3 inspect -f '{{.NetworkSettings.Networks.ov1.IPAddress}}' c3))"
        echo "mtu=$(d 1 exec c1 cat /sys/class/net/eth0/mtu)"
        # The largest packet that fits: 1450 - 20 (IP) - 8 (ICMP) bytes of data.
        echo "big=$(d 1 exec c1 ping -c1 -W2 -s 1422 c2 | grep -o '1 packets received')"
        # The VXLAN packets on h2's underlay interface, counted by iptables there.
        on 2 iptables -I INPUT -i eth0 -p udp --dport 4789
        d 1 exec c1 ping -c3 -W2 c2 >/dev/null
        echo "udp4789=$(on 2 iptables -nvxL INPUT | awk '/udp dpt:4789/ {print $1}')"
        echo "fdb=$(on 1 bridge fdb show dev dyx256 | grep -c 'dst 10.99.0.')"
        echo "neigh=$(on 1 ip neigh show dev dyx256 nud permanent | grep -c lladdr)"
        echo "rm_refused=$(d 1 network rm ov1 2>&1)"
        # The notes' second network: a subnet and gateway of our own.
        d 2 network create -d overlay --subnet 172.16.0.0/24 --gateway 172.16.0.254 ov2 >/dev/null
        d 1 run -d $CP --name t0 --network ov2 busybox sleep 120 >/dev/null
        d 3 run -d $CP --name t1 --network ov2 busybox sleep 120 >/dev/null
        echo "t0=$(d 1 inspect -f '{{.NetworkSettings.Networks.ov2.IPAddress}}' t0)"
        echo "t1=$(d 3 inspect -f '{{.NetworkSettings.Networks.ov2.IPAddress}}' t1)"
        echo "gw=$(d 2 network inspect -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}' ov2)"
        resolves 3 t1 t0
        echo "t1>t0=$(ping1 3 t1 t0)"
        echo "no_route=$(d 1 exec t0 ip route | grep -c default)"
        for i in 1 2 3; do d $i rm -f c$i >/dev/null; done
        d 1 rm -f t0 >/dev/null; d 3 rm -f t1 >/dev/null
        n=0; until d 2 network rm ov1 >/dev/null 2>&1 || [ $n -ge 50 ]; do sleep 0.2; n=$((n+1)); done
        n=0; until d 3 network rm ov2 >/dev/null 2>&1 || [ $n -ge 50 ]; do sleep 0.2; n=$((n+1)); done
        sleep 1.5
        for i in 1 2 3; do echo "links$i=$(on $i ip -o link | grep -c 'dy[ovx]')"; done
        echo "keys=$(on 1 etcdctl --endpoints 127.0.0.1:2379 get --prefix --keys-only /dockyard/ | grep -c .)"
        for i in 1 2 3; do echo "ls_after$i=$(d $i network ls -q -f driver=overlay | wc -l)"; done
    "#;
    let out = three_hosts(&dy, 1, script);
    let o = text(&out.stdout);
    let all = format!("{o}\n--- stderr\n{}", text(&out.stderr));
    for i in 1..=3 {
        assert_eq!(field(&o, &format!("ls{i}")), "ov1/overlay/global", "{all}");
    }
    let ips: Vec<&str> = (1..=3).map(|i| field(&o, &format!("ip{i}"))).collect();
    assert_eq!(ips, ["10.0.0.2", "10.0.0.3", "10.0.0.4"], "{all}");
    for k in ["c1>c2", "c2>c3", "c3>c1", "c1>ip3", "big", "t1>t0"] {
        assert_eq!(field(&o, k), "1 packets received", "{k}: {all}");
    }
    assert_eq!(field(&o, "mtu"), "1450", "{all}");
    let vxlan: u64 = field(&o, "udp4789").parse().unwrap_or(0);
    assert!(
        vxlan >= 3,
        "3 pings make at least 3 VXLAN packets into h2: {all}"
    );
    // Two remote containers from h1's point of view, each with both entries.
    assert_eq!(field(&o, "fdb"), "2", "{all}");
    assert_eq!(field(&o, "neigh"), "2", "{all}");
    assert!(
        field(&o, "rm_refused").contains("has active endpoints"),
        "{all}"
    );
    assert_eq!(field(&o, "t0"), "172.16.0.1", "{all}");
    assert_eq!(field(&o, "t1"), "172.16.0.2", "{all}");
    assert_eq!(field(&o, "gw"), "172.16.0.254", "{all}");
    assert_eq!(field(&o, "no_route"), "0", "no gwbridge: no way out: {all}");
    for i in 1..=3 {
        assert_eq!(field(&o, &format!("links{i}")), "0", "{all}");
        assert_eq!(field(&o, &format!("ls_after{i}")), "0", "{all}");
    }
    assert_eq!(field(&o, "keys"), "0", "{all}");
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn overlay_addresses_are_distinct_and_survive_a_store_outage_and_a_partition() {
    let dy = Dy::empty("dockyard-overlay");
    let script = r#"
        d 1 network create -d overlay --subnet 10.20.0.0/24 ovx >/dev/null
        # 30 containers, ten per host, all at once.
        for i in 1 2 3; do for k in 0 1 2 3 4 5 6 7 8 9; do
            d $i run -d $CP --name m$i$k --network ovx busybox sleep 300 >/dev/null 2>$T/err$i$k &
            runs="${runs:-} $!"
        done; done; wait $runs
        cat $T/err* >&2
        for i in 1 2 3; do for k in 0 1 2 3 4 5 6 7 8 9; do
            d $i inspect -f '{{.NetworkSettings.Networks.ovx.IPAddress}}' m$i$k; done; done > $T/ips
        echo "running=$(for i in 1 2 3; do d $i ps -q; done | wc -l)"
        echo "addresses=$(grep -c . $T/ips)"; echo "distinct=$(sort -u $T/ips | grep -c .)"
        d 1 run -d $CP --name ca --network ovx busybox sleep 300 >/dev/null
        d 2 run -d $CP --name cb --network ovx busybox sleep 300 >/dev/null
        d 3 run -d $CP --name cc --network ovx busybox sleep 300 >/dev/null
        resolves 1 ca cb; resolves 1 ca cc; resolves 2 cb cc
        echo "before=$(ping1 1 ca cb)"
        etcd_stop
        echo "down_a>b=$(ping1 1 ca cb)"; echo "down_c>a=$(ping1 3 cc ca)"
        d 2 run -d $CP --name late --network ovx busybox true 2>$T/down_err; echo "down_exit=$?"
        echo "down_err=$(tr '\n' ' ' < $T/down_err)"
        etcd_start
        sleep 1
        d 2 run -d $CP --name late2 --network ovx busybox sleep 300 >/dev/null; echo "up_exit=$?"
        resolves 1 ca late2
        echo "up_a>late2=$(ping1 1 ca late2)"
        # Partition: h3's underlay link goes down; h1 and h2 go on.
        ip link set ulh3 down
        echo "cut_a>b=$(ping1 1 ca cb)"; echo "cut_c>a=$(ping1 3 cc ca)"
        ip link set ulh3 up
        sleep 1
        echo "healed_c>a=$(ping1 3 cc ca)"
        d 3 run -d $CP --name c2 --network ovx busybox sleep 300 >/dev/null; echo "healed_run=$?"
        resolves 1 ca c2
        echo "healed_a>c2=$(ping1 1 ca c2)"
        # A host that dies: h3's service stops renewing its lease, and after
        # the TTL (10 s) etcd deletes h3's addresses. Back, it claims them again.
        h3() { on 1 etcdctl --endpoints 127.0.0.1:2379 get --prefix /dockyard/endpoint/ | grep -c '"Vtep":"10.99.0.3"'; }
        echo "h3_before=$(h3)"
        kill $S3; wait $S3 2>/dev/null; sleep 12
        echo "h3_expired=$(h3)"
        service_start 3
        n=0; until [ "$(h3)" = 12 ] || [ $n -ge 50 ]; do sleep 0.1; n=$((n+1)); done
        echo "h3_reclaimed=$(h3)"
        sleep 0.5; resolves 1 ca c2
        echo "reclaimed_a>c2=$(ping1 1 ca c2)"
    "#;
    let out = three_hosts(&dy, 1, script);
    let o = text(&out.stdout);
    let all = format!("{o}\n--- stderr\n{}", text(&out.stderr));
    assert_eq!(field(&o, "running"), "30", "{all}");
    assert_eq!(field(&o, "addresses"), "30", "{all}");
    assert_eq!(
        field(&o, "distinct"),
        "30",
        "no two containers share an address: {all}"
    );
    for k in [
        "before",
        "down_a>b",
        "down_c>a",
        "up_a>late2",
        "cut_a>b",
        "healed_c>a",
    ] {
        assert_eq!(field(&o, k), "1 packets received", "{k}: {all}");
    }
    assert_eq!(field(&o, "cut_c>a"), "", "h3 is cut off: {all}");
    assert_eq!(field(&o, "down_exit"), "125", "{all}");
    assert!(
        field(&o, "down_err").contains("cluster store etcd://10.99.0.1:2379 unreachable"),
        "{all}"
    );
    assert_eq!(field(&o, "up_exit"), "0", "{all}");
    assert_eq!(field(&o, "healed_run"), "0", "{all}");
    assert_eq!(field(&o, "healed_a>c2"), "1 packets received", "{all}");
    // cc, c2 and m30..m39.
    assert_eq!(field(&o, "h3_before"), "12", "{all}");
    assert_eq!(field(&o, "h3_expired"), "0", "the lease expired: {all}");
    assert_eq!(field(&o, "h3_reclaimed"), "12", "{all}");
    assert_eq!(field(&o, "reclaimed_a>c2"), "1 packets received", "{all}");
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn overlay_goes_on_with_two_of_three_etcd_members_and_stops_without_a_majority() {
    let dy = Dy::empty("dockyard-overlay");
    let script = r#"
        d 1 network create -d overlay ov3 >/dev/null
        d 1 run -d $CP --name x1 --network ov3 busybox sleep 300 >/dev/null
        d 3 run -d $CP --name x3 --network ov3 busybox sleep 300 >/dev/null
        resolves 1 x1 x3
        echo "before=$(ping1 1 x1 x3)"
        # h1's member goes: the other two are a majority, and every host
        # (h1 too) talks to one of them.
        etcd_stop 1
        d 2 run -d $CP --name x2 --network ov3 busybox sleep 300 >/dev/null; echo "run_exit=$?"
        d 1 run -d $CP --name x4 --network ov3 busybox sleep 300 >/dev/null; echo "run_on_h1_exit=$?"
        resolves 2 x2 x4
        echo "x2>x4=$(ping1 2 x2 x4)"
        echo "x3>x2=$(ping1 3 x3 x2)"
        echo "ls=$(d 3 network ls -q -f driver=overlay | wc -l)"
        # One member of three left: no majority, no writes; the data path goes on.
        etcd_stop 2
        d 3 run -d $CP --name x5 --network ov3 busybox sleep 300 >/dev/null 2>&1; echo "minority_exit=$?"
        echo "minority_x1>x3=$(ping1 1 x1 x3)"
    "#;
    let out = three_hosts(&dy, 3, script);
    let o = text(&out.stdout);
    let all = format!("{o}\n--- stderr\n{}", text(&out.stderr));
    for k in ["before", "x2>x4", "x3>x2", "minority_x1>x3"] {
        assert_eq!(field(&o, k), "1 packets received", "{k}: {all}");
    }
    assert_eq!(field(&o, "run_exit"), "0", "{all}");
    assert_eq!(field(&o, "run_on_h1_exit"), "0", "{all}");
    assert_eq!(field(&o, "ls"), "1", "{all}");
    assert_eq!(field(&o, "minority_exit"), "125", "{all}");
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn overlay_service_restart_removes_entries_of_containers_gone_while_it_was_down() {
    let dy = Dy::empty("dockyard-overlay");
    let script = r#"
        d 1 network create -d overlay ovr >/dev/null
        d 1 run -d $CP --name r1 --network ovr busybox sleep 300 >/dev/null
        d 2 run -d $CP --name r2 --network ovr busybox sleep 300 >/dev/null
        d 2 run -d $CP --name r3 --network ovr busybox sleep 300 >/dev/null
        resolves 1 r1 r2; resolves 1 r1 r3
        vx=$(on 1 ip -o link | grep -o 'dyx[0-9]*' | head -1)
        ip2=$(d 2 inspect -f '{{.NetworkSettings.Networks.ovr.IPAddress}}' r2)
        mac2=$(printf '02:42:%02x:%02x:%02x:%02x' $(echo $ip2 | tr . ' '))
        fdb2() { on 1 bridge fdb show dev $vx | grep -c "$mac2"; }
        neigh2() { on 1 ip neigh show dev $vx | grep -c "^$ip2 "; }
        echo "up_fdb=$(fdb2)"; echo "up_neigh=$(neigh2)"
        # h1's service goes down; r2 goes away on h2 meanwhile.
        kill $S1; wait $S1 2>/dev/null
        d 2 rm -f r2 >/dev/null
        # Until h2 has handed r2's address back: else h1's service would
        # still find r2 in the store when it starts, and drop it later as
        # any running service does.
        key2() { on 1 etcdctl --endpoints 127.0.0.1:2379 get --keys-only --prefix /dockyard/endpoint/ovr/ | grep -c "/$ip2\$"; }
        n=0; until [ "$(key2)" = 0 ] || [ $n -ge 100 ]; do sleep 0.1; n=$((n+1)); done
        echo "key2=$(key2)"
        echo "down_fdb=$(fdb2)"
        service_start 1
        n=0; until [ "$(fdb2)$(neigh2)" = 00 ] || [ $n -ge 100 ]; do sleep 0.1; n=$((n+1)); done
        echo "restarted_fdb=$(fdb2)"; echo "restarted_neigh=$(neigh2)"
        echo "kept=$(on 1 bridge fdb show dev $vx | grep -c 'dst 10.99.0.2')"
        echo "r1>r3=$(ping1 1 r1 r3)"
    "#;
    let out = three_hosts(&dy, 1, script);
    let o = text(&out.stdout);
    let all = format!("{o}\n--- stderr\n{}", text(&out.stderr));
    assert_eq!(field(&o, "up_fdb"), "1", "{all}");
    assert_eq!(field(&o, "up_neigh"), "1", "{all}");
    assert_eq!(field(&o, "key2"), "0", "{all}");
    // Nobody follows the store on h1: r2's entries are still there.
    assert_eq!(field(&o, "down_fdb"), "1", "{all}");
    assert_eq!(field(&o, "restarted_fdb"), "0", "{all}");
    assert_eq!(field(&o, "restarted_neigh"), "0", "{all}");
    assert_eq!(field(&o, "kept"), "1", "r3's entry stays: {all}");
    assert_eq!(field(&o, "r1>r3"), "1 packets received", "{all}");
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn overlay_passes_over_an_etcd_member_cut_off_from_the_others() {
    let dy = Dy::empty("dockyard-overlay");
    let script = r#"
        d 1 network create -d overlay ovc >/dev/null
        d 1 run -d $CP --name y1 --network ovc busybox sleep 300 >/dev/null
        # m1 (the first member every host asks) stays up and takes client
        # connections, but its peer traffic (port 2380) is dropped in h1:
        # it cannot reach a majority, so it never answers.
        on 1 iptables -A INPUT -p tcp --dport 2380 -j DROP
        on 1 iptables -A OUTPUT -p tcp --dport 2380 -j DROP
        sleep 1
        ms() { echo $(( $(date +%s%N) / 1000000 )); }
        t0=$(ms); d 2 run -d $CP --name y2 --network ovc busybox sleep 300 >/dev/null; echo "run_exit=$?"
        echo "run_ms=$(( $(ms) - t0 ))"
        t0=$(ms); d 3 network inspect ovc >/dev/null; echo "inspect_exit=$?"
        echo "inspect_ms=$(( $(ms) - t0 ))"
        resolves 2 y2 y1
        echo "y2>y1=$(ping1 2 y2 y1)"
    "#;
    let out = three_hosts(&dy, 3, script);
    let o = text(&out.stdout);
    let all = format!("{o}\n--- stderr\n{}", text(&out.stderr));
    assert_eq!(field(&o, "run_exit"), "0", "{all}");
    assert_eq!(field(&o, "inspect_exit"), "0", "{all}");
    assert_eq!(field(&o, "y2>y1"), "1 packets received", "{all}");
    // Each process waits for the cut-off member once (2 s / 3), then asks
    // the member that answered; waiting 2 s on every request would take far
    // longer than this.
    let ms: u64 = field(&o, "run_ms").parse().unwrap_or(u64::MAX);
    assert!(ms < 6000, "run took {ms} ms: {all}");
    assert!(leftover_cgroups(&dy.parent).is_empty());
}
