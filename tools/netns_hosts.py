"""Several hosts on one machine: network namespaces on a bridge, one sshd each.

    with hosts(2) as cluster:
        cluster.addresses      # ['10.231.0.2', '10.231.0.3']
        cluster.env            # PATH whose ``ssh`` reaches them with the test's keys
        cluster.here           # '10.231.0.1', this machine's address on the bridge

    python tools/netns_hosts.py 2     # make two hosts, print how to reach them, wait
    python tools/netns_hosts.py --clean

Each host is a network namespace ``gcnh<i>`` with its own address on the
bridge ``gcnh-br`` (10.231.0.0/24, the machine's side is .1), reached through
a veth pair, and its own ``sshd`` listening on that address only, started
under ``unshare --uts`` with the host's own hostname (Gloo resolves peers by
hostname). ``/etc/netns/gcnh<i>/hosts`` lists every host, so names resolve
inside (``ip netns exec`` bind-mounts it over /etc/hosts). The filesystem is
shared as is, as a cluster with shared storage would have it. Keys, the sshd
configs and the client config (with its own known_hosts) live in a temporary
folder; ``ssh`` here is a wrapper in that folder that uses them, so ~/.ssh is
never read or written. Traffic stays between this machine's bridge address
and the namespaces: the subnet has no route anywhere else.

Everything is removed when the block ends, fails or is interrupted (and at
exit); anything a killed earlier run left behind is removed, by name, before
building. The names are fixed, so one machine-wide lock (``LOCK``, held from
building to teardown) makes a second user on the machine wait its turn instead
of tearing down the first one's hosts. Needs root, iproute2 and Debian's openssh-server.
"""
import atexit
import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PREFIX = "gcnh"
BRIDGE = PREFIX + "-br"
SUBNET = "10.231.0"
HERE = SUBNET + ".1"
SSHD = "/usr/sbin/sshd"
MAX_HOSTS = 8
LOCK = "/run/lock/gcnh.lock"


class HarnessError(RuntimeError):
    """The hosts cannot be built here; the message says why in one line."""


def _run(*argv, check=True):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and proc.returncode:
        raise HarnessError("%s failed: %s" % (" ".join(argv), proc.stdout.strip()))
    return proc


def namespace(i):
    return "%s%d" % (PREFIX, i)


def address(i):
    return "%s.%d" % (SUBNET, i + 2)


def clean():
    """Remove every namespace, link, sshd and /etc/netns folder this harness names."""
    names = [l.split()[0] for l in _run("ip", "netns", "list", check=False).stdout.splitlines()
             if l.startswith(PREFIX)]
    for name in names:
        pids = _run("ip", "netns", "pids", name, check=False).stdout.split()
        for pid in pids:  # sshd and whatever the tests started there
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _run("ip", "netns", "del", name, check=False)
    for i in range(MAX_HOSTS):
        _run("ip", "link", "del", "%s-v%d" % (PREFIX, i), check=False)
        shutil.rmtree("/etc/netns/%s" % namespace(i), ignore_errors=True)
    _run("ip", "link", "del", BRIDGE, check=False)


def _check_tools():
    if os.geteuid() != 0:
        raise HarnessError("the namespace hosts need root")
    for tool in ("ip", "unshare", "ssh", "ssh-keygen", SSHD):
        if shutil.which(tool) is None:
            raise HarnessError("%s is missing: apt-get install -y iproute2 openssh-server "
                               "util-linux" % tool)


SSHD_CONFIG = """ListenAddress {addr}
Port 22
HostKey {tmp}/host_key
AuthorizedKeysFile {tmp}/authorized_keys
PidFile {tmp}/sshd{i}.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AcceptEnv none
MaxStartups 100
MaxSessions 100
"""

CLIENT_CONFIG = """Host {subnet}.* {prefix}*
  IdentityFile {tmp}/user_key
  IdentitiesOnly yes
  UserKnownHostsFile {tmp}/known_hosts
  StrictHostKeyChecking no
  BatchMode yes
  LogLevel ERROR
  ConnectTimeout 5
"""


class Cluster:
    """The hosts made by :func:`hosts`: their namespaces, addresses and ssh setup."""

    def __init__(self, n, tmp):
        self.n, self.tmp = n, tmp
        self.namespaces = [namespace(i) for i in range(n)]
        self.addresses = [address(i) for i in range(n)]
        self.here = HERE
        self.sshd = []
        bin_dir = os.path.join(tmp, "bin")
        self.env = {"PATH": "%s:%s" % (bin_dir, os.environ.get("PATH", ""))}

    def link(self, i):
        """The host's end of its veth pair on the bridge (``ip link set ... down`` cuts it)."""
        return "%s-v%d" % (PREFIX, i)

    def pids(self, i):
        """The pids of every process in host ``i``'s namespace."""
        out = _run("ip", "netns", "pids", self.namespaces[i], check=False).stdout
        return [int(p) for p in out.split()]

    def ssh(self, i, command, timeout=20):
        """Run ``command`` (a shell string) on host ``i``; the CompletedProcess."""
        return subprocess.run(["ssh", self.addresses[i], command], env=dict(os.environ, **self.env),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def hostfile(self, path, indices=None):
        with open(path, "w") as f:
            for i in (range(self.n) if indices is None else indices):
                f.write(self.addresses[i] + "\n")
        return path


def _keys_and_configs(cluster):
    tmp = cluster.tmp
    for key in ("host_key", "user_key"):
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(tmp, key))
    shutil.copy(os.path.join(tmp, "user_key.pub"), os.path.join(tmp, "authorized_keys"))
    for i, addr in enumerate(cluster.addresses):
        with open(os.path.join(tmp, "sshd%d.conf" % i), "w") as f:
            f.write(SSHD_CONFIG.format(addr=addr, tmp=tmp, i=i))
    with open(os.path.join(tmp, "ssh_config"), "w") as f:
        f.write(CLIENT_CONFIG.format(subnet=SUBNET, prefix=PREFIX, tmp=tmp))
    os.makedirs(os.path.join(tmp, "bin"))
    wrapper = os.path.join(tmp, "bin", "ssh")
    with open(wrapper, "w") as f:
        f.write('#!/bin/sh\nexec %s -F %s "$@"\n'
                % (shutil.which("ssh"), os.path.join(tmp, "ssh_config")))
    os.chmod(wrapper, 0o755)


def _network(cluster):
    _run("ip", "link", "add", BRIDGE, "type", "bridge")
    _run("ip", "addr", "add", HERE + "/24", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")
    names = "".join("%s %s\n" % (a, ns) for a, ns in zip(cluster.addresses, cluster.namespaces))
    for i, (ns, addr) in enumerate(zip(cluster.namespaces, cluster.addresses)):
        outer, inner = cluster.link(i), "%s-e%d" % (PREFIX, i)
        _run("ip", "netns", "add", ns)
        _run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        _run("ip", "link", "set", inner, "netns", ns)
        _run("ip", "link", "set", outer, "master", BRIDGE)
        _run("ip", "link", "set", outer, "up")
        _run("ip", "-n", ns, "link", "set", inner, "name", "eth0")
        _run("ip", "-n", ns, "addr", "add", addr + "/24", "dev", "eth0")
        _run("ip", "-n", ns, "link", "set", "eth0", "up")
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        os.makedirs("/etc/netns/%s" % ns, exist_ok=True)
        with open("/etc/netns/%s/hosts" % ns, "w") as f:
            f.write("127.0.0.1 localhost\n%s gcnh-here\n%s" % (HERE, names))


def _start_sshd(cluster):
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation folder
    for i, ns in enumerate(cluster.namespaces):
        conf = os.path.join(cluster.tmp, "sshd%d.conf" % i)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "unshare", "--uts", "sh", "-c",
             "hostname %s && exec %s -D -e -f %s" % (ns, SSHD, conf)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(cluster.tmp, "sshd%d.log" % i), "w"),
            start_new_session=True)
        cluster.sshd.append(proc)
    deadline = time.monotonic() + 15
    for i in range(cluster.n):
        while True:
            try:
                if cluster.ssh(i, "true", timeout=5).returncode == 0:
                    break
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                with open(os.path.join(cluster.tmp, "sshd%d.log" % i)) as f:
                    log = f.read().strip().replace("\n", " | ")
                raise HarnessError("sshd on %s did not answer: %s" % (cluster.addresses[i], log))
            time.sleep(0.1)


def _teardown(cluster):
    for proc in cluster.sshd:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    clean()
    shutil.rmtree(cluster.tmp, ignore_errors=True)


@contextlib.contextmanager
def hosts(n):
    """``n`` namespace hosts with sshd, removed with everything else when the block ends."""
    if not 1 <= n <= MAX_HOSTS:
        raise HarnessError("between 1 and %d hosts, not %d" % (MAX_HOSTS, n))
    _check_tools()
    with _machine_lock():
        clean()
        cluster = Cluster(n, tempfile.mkdtemp(prefix="gcnh-"))
        atexit.register(_teardown, cluster)
        try:
            _keys_and_configs(cluster)
            _network(cluster)
            _start_sshd(cluster)
            yield cluster
        finally:
            _teardown(cluster)
            atexit.unregister(_teardown)


@contextlib.contextmanager
def _machine_lock():
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--clean"]:
        with _machine_lock():
            clean()
        return 0
    try:
        with hosts(int(argv[0]) if argv else 2) as cluster:
            print("hosts %s; PATH=%s; Ctrl-C removes them"
                  % (" ".join(cluster.addresses), cluster.env["PATH"]), flush=True)
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except HarnessError as e:
        print("netns_hosts: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main())
