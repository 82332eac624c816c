//! macvlan networks in a throwaway host (`unshare --net`): the parent is a
//! veth whose far end is in a second namespace the script makes, which
//! plays the LAN and its router (the gateway). Containers are children of
//! the parent, on that "wire" with MACs and addresses of their own. What is
//! checked is what the kernel shows: pings between the namespaces, `ip
//! link` and `ip addr` inside and outside, and what is left at the end.

use dockyard_e2e::dockyard::{leftover_cgroups, text, Dockyard as Dy};

use crate::networking::in_throwaway_netns;

/// Shell lines that make the wire: a veth `$PARENT` in the throwaway host,
/// with `$HOSTIP/24`, whose other end is `eth0` in a second namespace (a
/// `sleep` in it, `$LAN`) with the gateway's address `$GW/24`. The LAN
/// namespace goes when the script ends, even early.
const WIRE: &str = r#"
    unshare --net sleep 120 & LAN=$!
    trap 'kill $LAN 2>/dev/null' EXIT
    while [ "$(readlink /proc/$LAN/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do sleep 0.01; done
    ip link add $PARENT type veth peer name lan0
    ip link set lan0 netns $LAN
    ip addr add $HOSTIP/24 dev $PARENT; ip link set $PARENT up
    nsenter -t $LAN -n sh -c "ip link set lo up; ip link set lan0 name eth0; ip addr add $GW/24 dev eth0; ip link set eth0 up"
    BB=images/busybox/rootfs/bin/busybox
"#;

/// The end of a script: every container gone, the network removed, then
/// what the host namespace still has: its links, its IPv4 addresses, the
/// network state files.
const AFTERMATH: &str = r#"
    echo "links: $(ip -o link | grep -v ' lo:' | cut -d: -f2 | cut -d@ -f1 | tr -d ' ' | tr '\n' ' ')"
    echo "addrs: $(ip -o -4 addr | grep -v ' lo ' | awk '{print $2, $4}' | tr '\n' ' ')"
    echo "files: $(ls $ROOT/network 2>/dev/null | grep -c json)"
"#;

fn script(dy: &Dy, vars: &str, body: &str) -> String {
    format!(
        "ROOT={}; P=--cgroup-parent={}; {vars}\n{WIRE}\n{body}\n{AFTERMATH}",
        dy.root.path().display(),
        dy.parent
    )
}

/// The last line of a failed `run`'s report, as docker's client ends it.
const RUN_HELP: &str = "Run 'dockyard run --help' for more information";

fn lines(out: &std::process::Output) -> (Vec<String>, String) {
    let stdout = text(&out.stdout);
    let all = format!("stdout:\n{stdout}\nstderr:\n{}", text(&out.stderr));
    (stdout.lines().map(str::to_string).collect(), all)
}

#[test]
fn macvlan_bridge_mode_reaches_peers_and_gateway_but_not_the_parent() {
    let dy = Dy::new();
    let body = r#"
    $D network create -d macvlan --subnet 10.66.0.0/24 --gateway 10.66.0.254 --ip-range 10.66.0.128/25 -o parent=$PARENT mv >/dev/null
    $D network ls --format '{{.Name}} {{.Driver}} {{.Scope}}' -f driver=macvlan
    $D network inspect -f '{{.Driver}} {{.Scope}} {{json .IPAM.Config}} {{json .Options}}' mv
    $D run -d $P --name c1 --network mv --ip 10.66.0.10 busybox sleep 60 >/dev/null
    $D run -d $P --name c2 --network mv busybox sleep 60 >/dev/null
    $D inspect -f '{{.NetworkSettings.Networks.mv.IPAddress}} {{.NetworkSettings.Networks.mv.MacAddress}}' c1
    $D inspect -f '{{.NetworkSettings.Networks.mv.IPAddress}}' c2
    nsenter -t $($D inspect -f '{{.State.Pid}}' c1) -n ip -d -o link show eth0 | grep -o 'link/ether [0-9a-f:]*\|macvlan mode [a-z]*' | tr '\n' ' '; echo
    $D exec c1 ip route | grep -o 'default via 10.66.0.254'
    echo "c1->gateway: $($D exec c1 ping -c1 -W2 10.66.0.254 | grep -o '[0-9] packets received')"
    echo "c1->c2: $($D exec c1 ping -c1 -W2 10.66.0.128 | grep -o '[0-9] packets received')"
    echo "c1->c2 by name: $($D exec c1 ping -c1 -W2 c2 | grep -o '[0-9] packets received')"
    echo "lan->c1: $(nsenter -t $LAN -n $BB ping -c1 -W2 10.66.0.10 | grep -o '[0-9] packets received')"
    echo "c1->parent: $($D exec c1 ping -c1 -W1 10.66.0.1 | grep -o '[0-9] packets received')"
    echo "host->c1: $($BB ping -c1 -W1 10.66.0.10 | grep -o '[0-9] packets received')"
    $D network create -d bridge --subnet 10.67.0.0/24 side >/dev/null
    $D run -d $P --name c3 --network side busybox sleep 60 >/dev/null
    $D network connect --ip 10.66.0.20 mv c3
    echo "c3 eth1: $($D exec c3 ip -o -4 addr show eth1 | grep -o '10.66.0.20/24')"
    echo "c3->gateway: $($D exec c3 ping -c1 -W2 10.66.0.254 | grep -o '[0-9] packets received')"
    $D network disconnect mv c3
    $D exec c3 sh -c 'ip link show eth1 2>/dev/null || echo no-eth1'
    $D network rm mv 2>&1 | grep -o 'has active endpoints'
    $D rm -f c1 c2 c3 >/dev/null
    $D network rm mv side
    "#;
    let vars = "PARENT=mvp0; HOSTIP=10.66.0.1; GW=10.66.0.254";
    let out = in_throwaway_netns(&dy, &script(&dy, vars, body));
    let (lines, all) = lines(&out);
    let expected = [
        "mv macvlan local",
        r#"macvlan local [{"Gateway":"10.66.0.254","IPRange":"10.66.0.128/25","Subnet":"10.66.0.0/24"}] {"parent":"mvp0"}"#,
        "10.66.0.10 02:42:0a:42:00:0a",
        // Without --ip: the first address of --ip-range.
        "10.66.0.128",
        "link/ether 02:42:0a:42:00:0a macvlan mode bridge ",
        "default via 10.66.0.254",
        "c1->gateway: 1 packets received",
        "c1->c2: 1 packets received",
        "c1->c2 by name: 1 packets received",
        "lan->c1: 1 packets received",
        // As the notes warn: a macvlan child never reaches its parent's own
        // address, nor the parent's host the child.
        "c1->parent: 0 packets received",
        "host->c1: 0 packets received",
        "c3 eth1: 10.66.0.20/24",
        "c3->gateway: 1 packets received",
        "no-eth1",
        "has active endpoints",
        "mv",
        "side",
        // Only the parent is left, with its own address: no bridge, no
        // child, no state.
        "links: mvp0 ",
        "addrs: mvp0 10.66.0.1/24 ",
        "files: 0",
    ];
    assert_eq!(lines, expected, "{all}");
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn macvlan_private_mode_isolates_the_children_of_one_parent() {
    let dy = Dy::new();
    let body = r#"
    $D network create -d macvlan --subnet 10.68.0.0/24 --gateway 10.68.0.254 -o parent=$PARENT -o macvlan_mode=private priv >/dev/null
    $D network inspect -f '{{json .Options}}' priv
    $D run -d $P --name c1 --network priv --ip 10.68.0.10 busybox sleep 60 >/dev/null
    $D run -d $P --name c2 --network priv --ip 10.68.0.11 busybox sleep 60 >/dev/null
    nsenter -t $($D inspect -f '{{.State.Pid}}' c2) -n ip -d -o link show eth0 | grep -o 'macvlan mode [a-z]*'
    echo "c1->gateway: $($D exec c1 ping -c1 -W2 10.68.0.254 | grep -o '[0-9] packets received')"
    echo "c2->gateway: $($D exec c2 ping -c1 -W2 10.68.0.254 | grep -o '[0-9] packets received')"
    echo "c1->c2: $($D exec c1 ping -c1 -W1 10.68.0.11 | grep -o '[0-9] packets received')"
    $D rm -f c1 >/dev/null
    $D run --rm $P --network priv --ip 10.68.0.10 busybox ip -o -4 addr show eth0 | grep -o '10.68.0.10/24'
    $D rm -f c2 >/dev/null
    $D network rm priv >/dev/null
    "#;
    let vars = "PARENT=mvq0; HOSTIP=10.68.0.1; GW=10.68.0.254";
    let out = in_throwaway_netns(&dy, &script(&dy, vars, body));
    let (lines, all) = lines(&out);
    let expected = [
        r#"{"macvlan_mode":"private","parent":"mvq0"}"#,
        "macvlan mode private",
        "c1->gateway: 1 packets received",
        "c2->gateway: 1 packets received",
        "c1->c2: 0 packets received",
        // c1's address again at once, while the kernel may still be
        // deleting c1's namespace, with its child and MAC, in its worker.
        "10.68.0.10/24",
        "links: mvq0 ",
        "addrs: mvq0 10.68.0.1/24 ",
        "files: 0",
    ];
    assert_eq!(lines, expected, "{all}");
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn macvlan_bad_parents_and_addresses_are_refused_and_leave_nothing_behind() {
    let dy = Dy::new();
    let body = r#"
    try() { "$@" 2>&1; echo "exit=$?"; }
    try $D network create -d macvlan --subnet 10.69.0.0/24 -o parent=nosuch0 n1
    try $D network create -d macvlan --subnet 10.69.0.0/24 -o parent=$PARENT.10 n1
    try $D network create -d macvlan --subnet 10.69.0.0/24 -o parent=$PARENT -o macvlan_mode=vepa n1
    try $D network create -d ipvlan --subnet 10.69.0.0/24 -o parent=$PARENT n1
    echo "files: $(ls $ROOT/network 2>/dev/null | grep -c json)"
    $D network create -d macvlan --subnet 10.69.0.0/24 --gateway 10.69.0.254 -o parent=$PARENT mv >/dev/null
    try $D network create -d macvlan --subnet 10.70.0.0/24 -o parent=$PARENT mv2
    $D run -d $P --name c1 --network mv --ip 10.69.0.10 busybox sleep 60 >/dev/null
    try $D run --rm $P --network mv --ip 10.70.0.5 busybox true
    try $D run --rm $P --network mv --ip 10.69.0.10 busybox true
    try $D run --rm $P --network mv --ip 10.69.0.254 busybox true
    try $D run --rm $P --network bridge --ip 172.17.0.9 busybox true
    $D network create side >/dev/null; $D create $P --name c2 --network side busybox true >/dev/null
    # side's subnet was picked by the engine, not given: docker takes no --ip there.
    try $D run --rm $P --network side --ip 10.69.0.77 busybox true
    try $D network connect --ip 10.69.0.77 side c1
    try $D network connect --ip 10.70.0.5 mv c2
    try $D network connect --ip 10.69.0.10 mv c2
    echo "containers: $($D ps -aq | wc -l)"
    $D rm -f c1 c2 >/dev/null
    $D network rm mv side >/dev/null
    "#;
    let vars = "PARENT=mvr0; HOSTIP=10.69.0.1; GW=10.69.0.254";
    let out = in_throwaway_netns(&dy, &script(&dy, vars, body));
    let (lines, all) = lines(&out);
    let e = |m: &str| format!("Error response from daemon: {m}");
    let expected = [
        e("-o parent interface was not found on the host: nosuch0"),
        "exit=1".into(),
        e(
            "-o parent=mvr0.10 names the 802.1Q VLAN 10 sub-interface of mvr0, which does not \
           exist, and this kernel cannot make one (no 802.1Q VLAN support: \"Unknown device \
           type\"); use mvr0 itself as the parent, or a kernel with 8021q",
        ),
        "exit=1".into(),
        e(
            "requested macvlan mode 'vepa' is not valid, 'bridge' mode is the macvlan driver \
           default (dockyard offers bridge and private)",
        ),
        "exit=1".into(),
        e(
            "plugin \"ipvlan\" not found: dockyard has the bridge, macvlan and overlay drivers \
           (ipvlan networks are not made by this engine)",
        ),
        "exit=1".into(),
        "files: 0".into(),
    ];
    assert_eq!(
        lines.get(..expected.len()).unwrap_or(&lines[..]),
        expected,
        "{all}"
    );
    let rest = &lines[expected.len()..];
    assert!(
        rest[0].contains("is already using parent interface mvr0 (network mv)"),
        "{all}"
    );
    assert_eq!(
        &rest[1..],
        [
            "exit=1",
            "dockyard: Error response from daemon: Invalid address 10.70.0.5: It does not belong to any of this network's subnets",
            "",
            RUN_HELP,
            "exit=125",
            "dockyard: Error response from daemon: Address already in use",
            "",
            RUN_HELP,
            "exit=125",
            "dockyard: Error response from daemon: Address already in use",
            "",
            RUN_HELP,
            "exit=125",
            "dockyard: Error response from daemon: user specified IP address is supported on user defined networks only",
            "",
            RUN_HELP,
            "exit=125",
            "dockyard: Error response from daemon: user specified IP address is supported only when connecting to networks with user configured subnets",
            "",
            RUN_HELP,
            "exit=125",
            "Error response from daemon: user specified IP address is supported only when connecting to networks with user configured subnets",
            "exit=1",
            "Error response from daemon: Invalid address 10.70.0.5: It does not belong to any of this network's subnets",
            "exit=1",
            "Error response from daemon: Address already in use",
            "exit=1",
            // c1 and c2: no refused run left a container behind.
            "containers: 2",
            "links: mvr0 ",
            "addrs: mvr0 10.69.0.1/24 ",
            "files: 0",
        ],
        "{all}"
    );
    assert!(leftover_cgroups(&dy.parent).is_empty());
}
