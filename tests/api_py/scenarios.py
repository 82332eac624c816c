#!/usr/bin/env python3
"""docker-py 7.1.0 against `dockyard system service`: a client nobody on the
project wrote, driving the Engine API the way Python tools do.

Run by tests/engine/api_py.rs with DOCKER_HOST=unix://SOCK and
CGROUP_PARENT (each container the test makes goes under the test's own
cgroup parent). Each scenario is a function; all run, the failures are
listed, and the exit status is the number of failures. Nothing here pulls:
busybox is loaded locally, and `docker.from_env()` never contacts a
registry unless asked to.

Usage: scenarios.py [NAME...]   (no names: all of them)
"""

import io
import os
import signal
import socket
import sys
import tarfile
import threading
import time
import traceback

import docker
from docker.errors import APIError, ContainerError, ImageNotFound, NotFound

PARENT = os.environ.get("CGROUP_PARENT", "")
client = docker.from_env(timeout=60)
api = client.api


def run(*args, **kw):
    """containers.run, under the test's cgroup parent."""
    if PARENT:
        kw.setdefault("cgroup_parent", PARENT)
    return client.containers.run(*args, **kw)


def create(*args, **kw):
    if PARENT:
        kw.setdefault("cgroup_parent", PARENT)
    return client.containers.create(*args, **kw)


def eq(got, want, what=""):
    assert got == want, f"{what}: got {got!r}, want {want!r}"


def cleanup(*containers):
    for c in containers:
        try:
            c.remove(force=True)
        except NotFound:
            pass


def s_system():
    eq(client.ping(), True, "ping")
    v = client.version()
    eq(v["ApiVersion"], "1.50", "ApiVersion")
    eq(v["MinAPIVersion"], "1.24", "MinAPIVersion")
    names = [c["Name"] for c in v["Components"]]
    assert "Engine" in names, names
    info = client.info()
    assert info["Driver"], info
    assert "Containers" in info and "Images" in info, info
    eq(info["Images"] >= 1, True, "images in info")
    df = client.df()
    assert any("busybox:latest" in (i.get("RepoTags") or []) for i in df["Images"]), df
    assert "Containers" in df and "Volumes" in df, df


def s_run_attached():
    # Not detached: docker-py creates, starts, waits, and reads the logs.
    out = run("busybox", ["sh", "-c", "echo out; echo err >&2"], remove=True)
    eq(out, b"out\n", "stdout of run")
    out = run("busybox", ["sh", "-c", "echo out; echo err >&2"],
              remove=True, stdout=False, stderr=True)
    eq(out, b"err\n", "stderr of run")
    try:
        run("busybox", ["sh", "-c", "exit 3"], remove=True)
        raise AssertionError("exit 3 raised nothing")
    except ContainerError as e:
        eq(e.exit_status, 3, "exit status")
    eq(client.containers.list(all=True), [], "left behind by remove=True")


def s_run_detached_logs_wait_stop():
    # The shell traps SIGTERM (PID 1 has no default action for it), so
    # that stop's signal is seen in the exit code.
    c = run("busybox", ["sh", "-c", "trap 'exit 7' TERM; echo a; echo b >&2; sleep 30 & wait"],
            detach=True, name="py-detached", labels={"suite": "py"})
    try:
        c.reload()
        eq(c.status, "running", "status")
        eq(c.name, "py-detached", "name")
        eq(c.labels.get("suite"), "py", "labels")
        deadline = time.time() + 5
        while c.logs() != b"a\nb\n" and time.time() < deadline:
            time.sleep(0.05)
        eq(c.logs(), b"a\nb\n", "logs")
        eq(c.logs(stderr=False), b"a\n", "logs stdout only")
        eq(c.logs(stdout=False), b"b\n", "logs stderr only")
        c.stop(timeout=1)
        res = c.wait()
        eq(res["StatusCode"], 7, "wait after SIGTERM")
        c.reload()
        eq(c.status, "exited", "status after stop")
        c.start()
        c.kill()
        eq(c.wait()["StatusCode"], 137, "wait after SIGKILL")
    finally:
        cleanup(c)
    try:
        client.containers.get("py-detached")
        raise AssertionError("removed container still found")
    except NotFound:
        pass


def s_exec_run():
    c = run("busybox", ["sleep", "30"], detach=True)
    try:
        r = c.exec_run(["sh", "-c", "echo hi; echo err >&2; exit 4"])
        eq(r.exit_code, 4, "exec exit code")
        # stdout and stderr are two pipes, relayed apart: their lines may
        # interleave either way (as under dockerd).
        eq(sorted(r.output.splitlines()), [b"err", b"hi"], "exec output")
        r = c.exec_run(["sh", "-c", "echo $FOO $PWD"], environment={"FOO": "bar"},
                       workdir="/tmp")
        eq(r.output, b"bar /tmp\n", "exec env and workdir")
        r = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
        eq(r.output, (b"o\n", b"e\n"), "exec demux")
        r = c.exec_run(["id", "-u"], user="1000")
        eq(r.output, b"1000\n", "exec user")
        # Detached: the instance reports Running false and its code once done.
        eid = api.exec_create(c.id, ["sh", "-c", "exit 5"])["Id"]
        api.exec_start(eid, detach=True)
        deadline = time.time() + 5
        while api.exec_inspect(eid)["Running"] and time.time() < deadline:
            time.sleep(0.05)
        info = api.exec_inspect(eid)
        eq(info["Running"], False, "detached exec running")
        eq(info["ExitCode"], 5, "detached exec code")
    finally:
        cleanup(c)


def s_attach_socket():
    c = create("busybox", ["sh", "-c", "read x; echo got $x"], stdin_open=True)
    try:
        sock = c.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
        c.start()
        raw = sock._sock
        raw.sendall(b"hello\n")
        data = b""
        raw.settimeout(10)
        while True:
            chunk = raw.recv(4096)
            if not chunk:
                break
            data += chunk
        # Multiplexed: an 8-byte header (stream 1), then the bytes.
        eq(data[:1], b"\x01", "frame stream")
        eq(data[8:], b"got hello\n", "attached output")
        eq(c.wait()["StatusCode"], 0, "attach exit")
    finally:
        cleanup(c)


def until(cond, what, seconds=10):
    """Wait for cond() to hold; a timeout fails."""
    deadline = time.time() + seconds
    while not cond():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def read_until_eof(raw, seconds=10):
    """Everything the socket gives until EOF; a timeout fails."""
    raw.settimeout(seconds)
    data = b""
    while True:
        chunk = raw.recv(4096)
        if not chunk:
            return data
        data += chunk


def s_attach_half_closed():
    # A client that half-closes (shutdown(SHUT_WR)) still reads, and sees
    # EOF when the stream ends, as with dockerd's CopyStreams:
    # 1. stdin attached to a container with an open stdin (not "once"): the
    #    end of the client's input ends this attach, not the container,
    #    whose stdin stays open for the next client;
    c = run("busybox", ["cat"], stdin_open=True, detach=True)
    try:
        for word in (b"hello", b"again"):
            sock = c.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            raw = sock._sock
            raw.sendall(word + b"\n")
            raw.settimeout(10)
            data = b""
            while len(data) < 8 + len(word) + 1:
                chunk = raw.recv(4096)
                assert chunk, f"EOF before the echo of {word!r}: {data!r}"
                data += chunk
            eq(data, b"\x01\x00\x00\x00" + (len(word) + 1).to_bytes(4, "big") + word + b"\n",
               "cat's echo")
            raw.shutdown(socket.SHUT_WR)
            t = time.time()
            eq(read_until_eof(raw), b"", "after the half-close")
            assert time.time() - t < 5, "EOF came late"
            raw.close()
            c.reload()
            eq(c.status, "running", "cat after its client's EOF")
    finally:
        cleanup(c)
    # 2. no stdin to take (the container has none open): the half-close
    #    changes nothing, and EOF comes when the container ends.
    c = run("busybox", ["sh", "-c", "sleep 1; echo done"], detach=True)
    try:
        sock = c.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        raw = sock._sock
        raw.shutdown(socket.SHUT_WR)
        eq(read_until_eof(raw), b"\x01\x00\x00\x00\x00\x00\x00\x05done\n", "output, then EOF")
        eq(c.wait(timeout=10)["StatusCode"], 0, "exit code")
    finally:
        cleanup(c)


def s_attach_with_logs():
    # logs=1: what the container printed before the attach comes first,
    # then what it prints after, then EOF at its exit. The container waits
    # for /go before it prints again, so the attach surely comes between.
    c = run("busybox", ["sh", "-c",
                        "echo before; while [ ! -e /go ]; do sleep 0.05; done; echo after >&2"],
            detach=True)
    try:
        until(lambda: c.logs() == b"before\n", "the first line logged")
        # Read through docker-py's own reader, not the raw socket of
        # attach_socket: the log comes right behind the 101's headers, and
        # what arrives with them is in http.client's buffer, which the raw
        # socket never sees (against dockerd too).
        frames = api.attach(c.id, stdout=True, stderr=True, stream=True, logs=True,
                            demux=True)
        c.exec_run(["touch", "/go"])
        eq(list(frames), [(b"before\n", None), (None, b"after\n")], "logs, then the stream")
    finally:
        cleanup(c)


def s_attach_with_logs_while_it_prints():
    # The seam between the log and the stream: attaches made while the
    # container prints line after line each get every line once, in order,
    # wherever the attach falls. (Reading the log and then joining the
    # stream, without the monitor's mark, lost or repeated lines here.)
    n = 4000
    c = run("busybox", ["sh", "-c",
                        f"while [ ! -e /go ]; do sleep 0.05; done; i=0; "
                        f"while [ $i -lt {n} ]; do echo $i; i=$((i+1)); "
                        f"[ $((i % 100)) = 0 ] && sleep 0.02; done; "
                        f"while [ ! -e /done ]; do sleep 0.05; done"],
            detach=True)
    try:
        c.exec_run(["touch", "/go"])
        # Each attach is read as it comes, by a thread of its own: one left
        # unread fills its socket, and the monitor drops a client that
        # keeps it waiting for over 2 s.
        results, readers = [], []
        for k in range(8):
            time.sleep(0.05)
            stream = api.attach(c.id, stdout=True, stderr=True, stream=True, logs=True)
            results.append(None)
            readers.append(threading.Thread(
                target=lambda k=k, stream=stream: results.__setitem__(k, b"".join(stream))))
            readers[-1].start()
        # It ends only once every attach is made: one made after its end
        # would wait for its next start.
        c.exec_run(["touch", "/done"])
        for r in readers:
            r.join(60)
        want = "".join(f"{i}\n" for i in range(n)).encode()
        for k, got in enumerate(results):
            assert got is not None, f"attach {k} did not end"
            if got != want:
                lines = got.decode().split()
                gaps = [i for i in range(n) if lines.count(str(i)) != 1][:5]
                raise AssertionError(f"attach {k}: {len(lines)} lines, "
                                     f"missing or repeated: {gaps}")
    finally:
        cleanup(c)


def s_networks_volumes():
    net = client.networks.create("py-net", driver="bridge", internal=True,
                                 labels={"k": "v"})
    vol = client.volumes.create("py-vol", labels={"k": "v"})
    try:
        eq([n.name for n in client.networks.list(names=["py-net"])], ["py-net"], "net list")
        eq(client.networks.get("py-net").attrs["Internal"], True, "internal")
        assert "py-vol" in [v.name for v in client.volumes.list()]
        eq([v.name for v in client.volumes.list(filters={"label": "k=v"})], ["py-vol"],
           "volume filter")
        eq(client.volumes.get("py-vol").attrs["Labels"], {"k": "v"}, "volume labels")
        out = run("busybox", ["sh", "-c", "echo kept > /data/f; cat /data/f"],
                  volumes={"py-vol": {"bind": "/data", "mode": "rw"}}, remove=True)
        eq(out, b"kept\n", "volume mounted")
        out = run("busybox", ["cat", "/data/f"], volumes=["py-vol:/data:ro"], remove=True)
        eq(out, b"kept\n", "volume kept its file")
    finally:
        net.remove()
        vol.remove()
    try:
        client.networks.get("py-net")
        raise AssertionError("network still there")
    except NotFound:
        pass
    try:
        client.volumes.get("py-vol")
        raise AssertionError("volume still there")
    except NotFound:
        pass
    # Prune: an unused volume and network go, a used one stays.
    client.volumes.create("py-unused")
    client.networks.create("py-unused-net", internal=True)
    gone = client.volumes.prune(filters={"all": ["true"]})
    assert "py-unused" in (gone["VolumesDeleted"] or []), gone
    gone = client.networks.prune()
    assert "py-unused-net" in (gone["NetworksDeleted"] or []), gone


def s_network_connect():
    # A running container gets its next interface on a network it joins,
    # and loses it when it leaves (lab 05's veth, seen from inside).
    n1 = client.networks.create("py-n1", internal=True)
    n2 = client.networks.create("py-n2", internal=True)
    c = run("busybox", ["sleep", "30"], detach=True, network="py-n1")
    try:
        links = lambda: sorted(c.exec_run(["ls", "/sys/class/net"]).output.decode().split())
        eq(links(), ["eth0", "lo"], "interfaces on one network")
        n2.connect(c, aliases=["second"])
        eq(links(), ["eth0", "eth1", "lo"], "after connect")
        c.reload()
        eq(sorted(c.attrs["NetworkSettings"]["Networks"]), ["py-n1", "py-n2"], "inspect")
        eq(len(n2.containers if n2.reload() is None else []), 1, "network lists it")
        n2.disconnect(c)
        eq(links(), ["eth0", "lo"], "after disconnect")
    finally:
        cleanup(c)
        n1.remove()
        n2.remove()


def s_list_filters():
    a = run("busybox", ["sleep", "30"], detach=True, name="py-a", labels={"role": "a"})
    b = run("busybox", ["true"], detach=True, name="py-b", labels={"role": "b"})
    try:
        eq(b.wait()["StatusCode"], 0, "b exits")
        names = lambda cs: sorted(c.name for c in cs)
        eq(names(client.containers.list()), ["py-a"], "running")
        eq(names(client.containers.list(all=True)), ["py-a", "py-b"], "all")
        eq(names(client.containers.list(all=True, filters={"label": "role=b"})), ["py-b"],
           "label filter")
        eq(names(client.containers.list(all=True, filters={"status": "exited"})), ["py-b"],
           "status filter")
        eq(names(client.containers.list(all=True, filters={"name": "py-a"})), ["py-a"],
           "name filter")
        eq(names(client.containers.list(all=True, filters={"id": a.id[:12]})), ["py-a"],
           "id filter")
        eq(names(client.containers.list(all=True, filters={"ancestor": "busybox"})),
           ["py-a", "py-b"], "ancestor filter")
        eq(names(client.containers.list(all=True, filters={"exited": "0"})), ["py-b"],
           "exited filter")
        eq(names(client.containers.list(all=True, limit=1)), ["py-b"], "limit")
    finally:
        cleanup(a, b)


def s_archive():
    c = run("busybox", ["sleep", "30"], detach=True)
    try:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            data = b"from python\n"
            info = tarfile.TarInfo("hello.txt")
            info.size = len(data)
            info.mode = 0o640
            t.addfile(info, io.BytesIO(data))
        eq(c.put_archive("/tmp", buf.getvalue()), True, "put_archive")
        eq(c.exec_run(["cat", "/tmp/hello.txt"]).output, b"from python\n", "file put")
        eq(c.exec_run(["stat", "-c", "%a", "/tmp/hello.txt"]).output, b"640\n", "mode kept")
        stream, stat = c.get_archive("/tmp/hello.txt")
        eq(stat["name"], "hello.txt", "stat name")
        eq(stat["size"], 12, "stat size")
        t = tarfile.open(fileobj=io.BytesIO(b"".join(stream)))
        eq(t.extractfile("hello.txt").read(), b"from python\n", "archive content")
        try:
            c.get_archive("/nope")
            raise AssertionError("missing path gave no error")
        except NotFound:
            pass
    finally:
        cleanup(c)


def s_stats():
    c = run("busybox", ["sleep", "30"], detach=True)
    try:
        s = c.stats(stream=False)
        for k in ("read", "preread", "cpu_stats", "precpu_stats", "memory_stats", "pids_stats"):
            assert k in s, (k, s)
        assert s["memory_stats"]["usage"] > 0, s["memory_stats"]
        assert s["cpu_stats"]["cpu_usage"]["total_usage"] > 0, s["cpu_stats"]
        assert s["pids_stats"]["current"] >= 1, s["pids_stats"]
        eq(s["name"], "/" + c.name, "stats name")
        it = c.stats(stream=True, decode=True)
        first, second = next(it), next(it)
        eq(second["precpu_stats"]["cpu_usage"]["total_usage"],
           first["cpu_stats"]["cpu_usage"]["total_usage"], "precpu is the previous sample")
    finally:
        cleanup(c)


def s_errors():
    try:
        client.containers.get("no-such-thing")
        raise AssertionError("no error")
    except NotFound as e:
        assert "No such container: no-such-thing" in str(e), str(e)
    try:
        client.images.get("no-such-image:tag")
        raise AssertionError("no error")
    except ImageNotFound:
        pass
    # A command that is not there fails the start, as dockerd's does (400,
    # runc's words); docker-py's run never gets to remove the container
    # it created, with dockerd either.
    before = {c.id for c in client.containers.list(all=True)}
    try:
        run("busybox", ["nope"], remove=True)
        raise AssertionError("no error")
    except APIError as e:
        eq(e.status_code, 400, "status of the start")
        assert 'exec: "nope": executable file not found in $PATH' in str(e), str(e)
    finally:
        cleanup(*[c for c in client.containers.list(all=True) if c.id not in before])


SCENARIOS = {name[2:]: f for name, f in list(globals().items()) if name.startswith("s_")}


def main():
    wanted = sys.argv[1:] or list(SCENARIOS)
    failed = []
    # A scenario that hangs (a stream that never ends) fails, and the rest run.
    def too_long(*_):
        raise TimeoutError("the scenario took over 120 s")
    signal.signal(signal.SIGALRM, too_long)
    for name in wanted:
        t = time.time()
        try:
            signal.alarm(120)
            SCENARIOS[name]()
            print(f"ok   {name} ({time.time() - t:.2f}s)", flush=True)
        except Exception:
            failed.append(name)
            print(f"FAIL {name}\n{traceback.format_exc()}", flush=True)
        finally:
            signal.alarm(0)
    print(f"{len(wanted) - len(failed)} passed, {len(failed)} failed: {' '.join(failed)}")
    sys.exit(len(failed))


if __name__ == "__main__":
    main()
