//! Bridge networks in a throwaway host (`unshare --net`): the bridge and
//! veths (`ip link`), published ports (`iptables -t nat -S`), name
//! resolution through the embedded DNS, user networks, and what is left
//! once the containers are gone.

use std::process::{Command, Output, Stdio};

use dockyard_e2e::dockyard::{leftover_cgroups, text, Dockyard as Dy};
use dockyard_e2e::fixtures::{bin, workspace_root};
use serde_json::Value;

/// Run `script` with `sh` in a throwaway network namespace that plays the
/// host: every bridge, veth and iptables rule dockyard makes lands there
/// and vanishes with it. `$D` is dockyard with this test's data root.
pub(crate) fn in_throwaway_netns(dy: &Dy, script: &str) -> Output {
    let d = format!(
        "{} --root {}",
        bin("dockyard").display(),
        dy.root.path().display()
    );
    let full = format!("ip link set lo up; D='{d}'; {script}");
    Command::new("unshare")
        .args(["--net", "sh", "-c", &full])
        // The default bridge, as docker's: this namespace is throwaway.
        .env_remove(dockyard_e2e::dockyard::DAEMON_CONFIG_ENV)
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .output()
        .expect("unshare")
}

/// Shell lines for the end of a throwaway-host script: wait (up to 5 s)
/// for the kernel to delete the veths of exited containers with their
/// network namespaces (it does so after the exit, not before `rm`
/// returns), then print what is left: the interfaces but `lo`, the
/// iptables rules that are not the kept default network's, the DNAT rules,
/// and the default network's members.
const AFTERMATH: &str = r#"
        n=0; while ip -o link | grep -q dyv && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done
        echo "links: $(ip -o link | grep -v ' lo:' | cut -d: -f2 | tr -d ' ' | tr '\n' ' ')"
        echo "rules: $(iptables-save | grep -- '-A ' | grep -vc dockyard0)"
        echo "dnat: $(iptables-save | grep -c -- '-j DNAT')"
        $D network inspect -f 'members: {{json .Containers}}' bridge
"#;

#[test]
fn bridge_networks_publish_ports_and_resolve_names_in_a_throwaway_host() {
    let dy = Dy::new();
    let parent = format!("--cgroup-parent={}", dy.parent);
    let script = format!(
        r#"
        $D run -d {parent} --name web --network bridge -p 8080:80 busybox sh -c 'while :; do echo hi-from-web | nc -l -p 80; done' >/dev/null
        n=0; until $D exec web netstat -ltn | grep -q ':80 ' || [ $n -ge 100 ]; do sleep 0.1; n=$((n+1)); done
        ip=$($D inspect -f '{{{{.NetworkSettings.IPAddress}}}}' web)
        echo "ip=$ip"
        $D port web
        echo "published: $(images/busybox/rootfs/bin/busybox nc -w 2 127.0.0.1 8080 </dev/null)"
        $D run --rm {parent} --network bridge busybox ping -c1 -W2 "$ip" | grep -o '1 packets received'
        $D network create mynet >/dev/null
        $D run -d {parent} --name alpha --network mynet busybox sleep 30 >/dev/null
        $D run --rm {parent} --network mynet busybox ping -c1 -W2 alpha | grep -o '1 packets received'
        $D run --rm {parent} --network container:web busybox sh -c 'ip -4 -o addr show eth0' | grep -o "$ip"
        $D rm -f web alpha >/dev/null
        $D network rm mynet >/dev/null
        $D network rm bridge 2>&1; echo "exit=$?"
        $D network prune -f; ls $ROOT/network | grep json
        {AFTERMATH}
    "#
    );
    let script = format!("ROOT={}; {script}", dy.root.path().display());
    let out = in_throwaway_netns(&dy, &script);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let ip = lines
        .first()
        .and_then(|l| l.strip_prefix("ip="))
        .unwrap_or_else(|| panic!("no IP:\n{stdout}{}", text(&out.stderr)));
    assert!(
        ip.starts_with("172.") || ip.starts_with("10.") || ip.starts_with("192.168."),
        "{ip}"
    );
    assert_eq!(lines[1], "80/tcp -> 0.0.0.0:8080", "{stdout}");
    assert_eq!(lines[2], "published: hi-from-web", "{stdout}");
    assert_eq!(
        lines[3], "1 packets received",
        "ping by IP on the default bridge: {stdout}"
    );
    assert_eq!(
        lines[4], "1 packets received",
        "ping by name on a user-defined network: {stdout}"
    );
    assert_eq!(lines[5], ip, "container:web shares web's eth0: {stdout}");
    // As Docker's docker0, the default network stays with its bridge and
    // its rules, and cannot be removed; every container's veth, lease and
    // published port went with it.
    assert_eq!(
        &lines[6..],
        [
            "Error response from daemon: bridge is a pre-defined network and cannot be removed",
            "exit=1",
            "bridge.json",
            "links: dockyard0 ",
            "rules: 0",
            "dnat: 0",
            "members: {}",
        ],
        "{stdout}"
    );
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn the_default_bridge_is_made_again_in_each_new_host_the_data_root_is_used_in() {
    let dy = Dy::new();
    let parent = format!("--cgroup-parent={}", dy.parent);
    let script = format!(
        r#"
        $D run --rm {parent} --network bridge busybox ip -4 -o addr show eth0 | grep -o 'inet [0-9./]*'
        echo "bridge: $(ip -o link show dockyard0 | grep -c dockyard0)"
        echo "rules: $(iptables-save | grep -c -- '-A .*dockyard0')"
    "#
    );
    // The same data root in two throwaway hosts, one after the other (as
    // across a reboot): the second finds the network recorded but not its
    // bridge, and makes both again, rules included, once.
    for host in ["first", "second"] {
        let out = in_throwaway_netns(&dy, &script);
        assert_eq!(
            text(&out.stdout),
            "inet 172.17.0.2/16\nbridge: 1\nrules: 5\n",
            "{host} host: {}",
            text(&out.stderr)
        );
    }
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn user_networks_resolve_names_and_aliases_isolate_and_connect_in_a_throwaway_host() {
    let dy = Dy::new();
    let parent = format!("--cgroup-parent={}", dy.parent);
    let script = format!(
        r#"
        $D run --rm {parent} --network nosuchnet busybox true 2>&1; echo "exit=$?"
        $D network create --subnet 10.55.0.0/24 --gateway 10.55.0.254 --label team=a front >/dev/null
        $D network create -o com.docker.network.bridge.name=dyback -o com.docker.network.driver.mtu=1400 back >/dev/null
        $D network create front 2>&1; echo "exit=$?"
        $D network ls --format '{{{{.Name}}}} {{{{.Driver}}}}' -f name=n
        $D network inspect -f '{{{{range .IPAM.Config}}}}{{{{.Subnet}}}} {{{{.Gateway}}}}{{{{end}}}} {{{{.Labels.team}}}}' front
        $D run -d {parent} --name web --network front --network-alias www busybox sleep 60 >/dev/null
        $D run -d {parent} --name db --network front --ip 10.55.0.50 busybox sleep 60 >/dev/null
        $D exec db ip -o -4 addr show eth0 | grep -o '10.55.0.50/24'
        $D exec db ip route | grep -o 'default via 10.55.0.254'
        $D exec db ping -c1 -W2 web | grep -o '1 packets received'
        $D exec db ping -c1 -W2 www | grep -o '1 packets received'
        $D run --rm {parent} --network back busybox sh -c 'ip -o link show eth0 | grep -o "mtu 1400"; ping -c1 -W2 10.55.0.50 | grep -o "[0-9] packets received"'
        $D network rm front 2>&1; echo "exit=$?"
        $D network inspect -f '{{{{json .Containers}}}}' front
        $D network connect --alias api back web
        $D exec web ip -o -4 addr show eth1 | grep -c 'inet '
        $D run --rm {parent} --network back busybox ping -c1 -W2 api | grep -o '1 packets received'
        $D inspect -f '{{{{json .NetworkSettings.Networks}}}}' web
        $D restart -t 0 web >/dev/null; $D exec web ip -o -4 addr show eth1 | grep -c 'inet '
        $D network disconnect back web
        $D exec web sh -c 'ip link show eth1 2>/dev/null || echo no-eth1'
        $D stop -t 0 web >/dev/null; $D network connect back web; $D start web >/dev/null
        $D exec web ip -o -4 addr show eth1 | grep -c 'inet '
        $D rm -f web db >/dev/null
        $D network rm front back
        $D network create spare >/dev/null; $D network prune -f
        $D network ls -q | wc -l
        echo "links: $(ip -o link | grep -vc ' lo:')"
        echo "rules: $(iptables-save | grep -c -- '-A ' )"
        echo "files: $(ls $ROOT/network | grep -c json)"
    "#
    );
    let script = format!("ROOT={}; {script}", dy.root.path().display());
    let out = in_throwaway_netns(&dy, &script);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let expected = [
        "dockyard: Error response from daemon: network nosuchnet not found",
        "",
        "Run 'dockyard run --help' for more information",
        "exit=125",
        "Error response from daemon: network with name front already exists",
        "exit=1",
        "front bridge",
        "none null",
        "10.55.0.0/24 10.55.0.254 a",
        "10.55.0.50/24",
        "default via 10.55.0.254",
        "1 packets received",
        "1 packets received",
        "mtu 1400",
        "0 packets received",
    ];
    assert_eq!(
        lines.get(..expected.len()).unwrap_or(&lines[..]),
        expected,
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    let rest = &lines[expected.len()..];
    assert!(
        rest[0].starts_with(
            "Error response from daemon: error while removing network: network front id "
        ) && rest[0].contains("has active endpoints"),
        "{stdout}"
    );
    assert_eq!(rest[1], "exit=1", "{stdout}");
    // network inspect: the members, by container ID.
    let members: Value = serde_json::from_str(rest[2]).expect(rest[2]);
    let mut seen: Vec<String> = members
        .as_object()
        .expect("Containers is an object")
        .iter()
        .map(|(id, c)| {
            assert_eq!(id.len(), 64, "{members}");
            assert!(c["MacAddress"]
                .as_str()
                .unwrap()
                .starts_with("02:42:0a:37:00:"));
            format!(
                "{}={}",
                c["Name"].as_str().unwrap(),
                c["IPv4Address"].as_str().unwrap()
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen, ["db=10.55.0.50/24", "web=10.55.0.1/24"], "{stdout}");
    assert_eq!(rest[3], "1", "connect adds eth1: {stdout}");
    assert_eq!(
        rest[4], "1 packets received",
        "ping by alias on back: {stdout}"
    );
    // inspect: one entry per network, with its aliases, address, gateway, MAC.
    let nets: Value = serde_json::from_str(rest[5]).expect(rest[5]);
    assert_eq!(nets["front"]["IPAddress"], "10.55.0.1", "{nets:#}");
    assert_eq!(nets["front"]["Gateway"], "10.55.0.254", "{nets:#}");
    assert_eq!(nets["front"]["MacAddress"], "02:42:0a:37:00:01", "{nets:#}");
    assert_eq!(nets["front"]["Aliases"][0], "www", "{nets:#}");
    assert_eq!(nets["back"]["Aliases"][0], "api", "{nets:#}");
    assert!(
        nets["back"]["IPAddress"]
            .as_str()
            .unwrap()
            .starts_with("172.18.0."),
        "the default bridge keeps 172.17.0.0/16: {nets:#}"
    );
    assert_eq!(rest[6], "1", "a restart rejoins back: {stdout}");
    assert_eq!(rest[7], "no-eth1", "{stdout}");
    assert_eq!(
        rest[8], "1",
        "connected while stopped, joined at start: {stdout}"
    );
    assert_eq!(
        &rest[9..],
        [
            "front",
            "back",
            "Deleted Networks:",
            "spare",
            "3",
            "links: 0",
            "rules: 0",
            "files: 0"
        ],
        "{stdout}"
    );
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn dns_flags_add_host_and_daemon_json_network_keys_reach_the_container() {
    let dy = Dy::new();
    let parent = format!("--cgroup-parent={}", dy.parent);
    let config = dy.root.path().join("daemon.json");
    std::fs::write(
        &config,
        r#"{"dns": ["10.9.9.9"], "dns-search": ["corp.example"], "mtu": 1450,
            "bip": "10.200.0.1/24",
            "default-address-pools": [{"base": "10.201.0.0/16", "size": 24}]}"#,
    )
    .unwrap();
    let script = format!(
        r#"
        $D run --rm {parent} --dns 10.0.0.2 --dns-search a.example --dns-option ndots:3 --add-host db:10.1.2.3 busybox sh -c 'grep -v "^#" /etc/resolv.conf; grep db /etc/hosts'
        $D run --rm {parent} --add-host bad busybox true 2>&1 | grep -c 'bad format for add-host'
        $D run -d {parent} --name hc --dns 10.0.0.2 --add-host gw:host-gateway --network bridge busybox sleep 30 >/dev/null
        $D inspect -f '{{{{json .HostConfig.Dns}}}} {{{{json .HostConfig.ExtraHosts}}}}' hc
        gw=$($D inspect -f '{{{{.NetworkSettings.Gateway}}}}' hc)
        $D exec hc grep gw /etc/hosts | grep -c "^$gw"
        $D rm -f hc >/dev/null
        $D --config $CONFIG run --rm {parent} --network bridge busybox sh -c 'grep -v "^#" /etc/resolv.conf; ip -o -4 addr show eth0 | grep -o "inet [0-9./]*"; ip -o link show eth0 | grep -o "mtu [0-9]*"'
        $D --config $CONFIG network create pooled >/dev/null
        $D --config $CONFIG network inspect -f '{{{{range .IPAM.Config}}}}{{{{.Subnet}}}}{{{{end}}}}' pooled
        $D --config $CONFIG network rm pooled >/dev/null
        {AFTERMATH}
    "#
    );
    let script = format!("CONFIG={}; {script}", config.display());
    let out = in_throwaway_netns(&dy, &script);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "nameserver 10.0.0.2",
            "search a.example",
            "options ndots:3",
            "10.1.2.3\tdb",
            "1",
            r#"["10.0.0.2"] ["gw:host-gateway"]"#,
            "1",
            "nameserver 10.9.9.9",
            "search corp.example",
            "inet 10.200.0.2/24",
            "mtu 1450",
            "10.201.0.0/24",
            "links: dockyard0 ",
            "rules: 0",
            "dnat: 0",
            "members: {}",
        ],
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(leftover_cgroups(&dy.parent).is_empty());
}

#[test]
fn fifty_concurrent_bridge_containers_get_fifty_distinct_addresses() {
    let dy = Dy::new();
    let parent = format!("--cgroup-parent={}", dy.parent);
    let script = format!(
        r#"
        for i in $(seq 1 50); do $D run -d {parent} --name n$i --network bridge busybox sleep 60 >/dev/null & done
        wait
        echo "running: $($D ps -q | wc -l)"
        for i in $(seq 1 50); do $D inspect -f '{{{{.NetworkSettings.IPAddress}}}}' n$i; done | sort -u | grep -c .
        $D rm -f $($D ps -aq) >/dev/null
        {AFTERMATH}
    "#
    );
    let out = in_throwaway_netns(&dy, &script);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("running: 50"),
        "{stdout}{}",
        text(&out.stderr)
    );
    assert_eq!(
        lines.get(1).copied(),
        Some("50"),
        "50 distinct addresses: {stdout}"
    );
    assert_eq!(
        lines.get(2..),
        Some(&["links: dockyard0 ", "rules: 0", "dnat: 0", "members: {}"][..]),
        "{stdout}"
    );
}

/// `--domainname` reaches the container's own line of `/etc/hosts` as
/// docker writes it (libnetwork's sandbox hosts file): the fully qualified
/// name first, then the bare hostname, on the default bridge and on a user
/// network; a hostname with dots (`-h db.corp.example`) gives the bare
/// name too. The container's resolver sees it: `hostname -f` answers the
/// fully qualified name from that line, and the UTS namespace holds the
/// NIS domain name.
#[test]
fn domainname_names_the_containers_own_hosts_line_as_docker_does() {
    let dy = Dy::new();
    let parent = format!("--cgroup-parent={}", dy.parent);
    // Its own line, the address replaced by IP; its FQDN; its domain name.
    let probe = r#"ip=$(ip -4 -o addr show eth0 | grep -o "inet [0-9.]*" | cut -d" " -f2); grep "^$ip	" /etc/hosts | sed "s/^$ip/IP/"; hostname -f; cat /proc/sys/kernel/domainname"#;
    let script = format!(
        r#"
        $D run --rm {parent} --network bridge --name w1 -h web --domainname example.com busybox sh -c '{probe}'
        $D network create mynet >/dev/null
        $D run --rm {parent} --network mynet --name w2 -h app --domainname corp.example busybox sh -c '{probe}'
        $D run --rm {parent} --network mynet --name w3 -h db.corp.example busybox sh -c '{probe}'
        $D run --rm {parent} --network mynet --name w4 -h plain busybox sh -c '{probe}'
        $D network rm mynet >/dev/null
        {AFTERMATH}
    "#
    );
    let out = in_throwaway_netns(&dy, &script);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "IP\tweb.example.com web w1",
            "web.example.com",
            "example.com",
            "IP\tapp.corp.example app w2",
            "app.corp.example",
            "corp.example",
            "IP\tdb.corp.example db w3",
            "db.corp.example",
            "(none)",
            "IP\tplain w4",
            "plain",
            "(none)",
            "links: dockyard0 ",
            "rules: 0",
            "dnat: 0",
            "members: {}",
        ],
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    assert!(leftover_cgroups(&dy.parent).is_empty());
}
