"""``gluon-cnns-launch``: start a parameter-server training job, locally or over ssh.

    gluon-cnns-launch -n 2 -s 1 -- python scripts/train.py --net lenet --kvstore dist_sync
    gluon-cnns-launch -n 4 -s 2 -H hosts --host-ip 10.0.0.1 -- python scripts/train.py ...

It does what MXNet's ``tools/launch.py`` does with dmlc-core's local and ssh
trackers (which the pip wheel of MXNet lacks): it runs the command once per
process with the ``DMLC_*`` variables that tell MXNet the process's role,

* ``DMLC_ROLE``: ``scheduler``, ``server`` or ``worker``;
* ``DMLC_PS_ROOT_URI`` / ``DMLC_PS_ROOT_PORT``: where the scheduler listens;
* ``DMLC_NUM_SERVER`` / ``DMLC_NUM_WORKER``: how many of each to wait for;
* ``DMLC_NODE_HOST``: the address this process listens on;
* ``OMP_NUM_THREADS`` (local workers, unless set here or with ``--env``): this
  machine's physical cores divided among the workers, at least 1 each
  (:func:`gluon_cnns.threads.worker_env`);

forwards every line the processes print with a ``[worker 0]`` / ``[server 0]``
/ ``[scheduler]`` prefix, and stops everything as soon as one process fails
(or ``--timeout`` passes), exiting with that process's code. SIGTERM, SIGHUP
or Ctrl-C stop everything too (exit 128 + the signal's number; a second one
kills at once). A job that cannot fit -- more than MAX_PROCESSES processes,
or more than the open-file limit (``ulimit -n``) lets the launcher follow --
is refused before anything starts.

Without ``--hostfile`` every process runs here and listens on 127.0.0.1 only.
With it the scheduler runs here and servers, then workers, go round-robin over
the hosts, each started as ``ssh -o StrictHostKeyChecking=no [-p PORT] HOST
'cd WORKDIR; export DMLC_...; COMMAND'`` like dmlc's ssh tracker, COMMAND under a
watchdog that stops it when its ssh session ends (see WATCHDOG); a host that stops
answering ends the job with a line naming it. The hosts are checked first, over ssh
(``launch_hosts``): a bad one is a usage error before anything starts.
"""
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

from ..errors import UsageError
from ..threads import SET_VAR, worker_env
from .launch_hosts import check_hosts, probe_hosts
from .launch_args import (MAX_PROCESSES, PROG, build_parser, check_capacity,  # noqa: F401
                          parse_args, read_hostfile)

EXIT_USAGE, EXIT_TIMEOUT = 2, 124
# After the last worker ends, how long the servers and the scheduler may take to stop.
SHUTDOWN_GRACE_S = 30.0
# How long the workers may outlive a server or scheduler that ended (they cannot finish).
ORPHAN_GRACE_S = 30.0
# How long a process gets between SIGTERM and SIGKILL.
KILL_GRACE_S = 3.0
_POLL_S = 0.1
# Forwarded to remote hosts when set here (dmlc's ssh tracker passes the same kind).
_PASSED_ENV = ("OMP_NUM_THREADS", "MXNET_ENGINE_TYPE", "DMLC_INTERFACE", "PS_VERBOSE")
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class _Signals:
    """What SIGTERM, SIGHUP and SIGINT (Ctrl-C) ask of the launcher, noted, never raised.

    The handler only records the signal; the launcher looks at it between the
    processes it starts and while it waits, and stops the job. So a signal can
    never interrupt the launcher half-way through starting or stopping a
    process (which could leave one running, or print a traceback). A second
    signal while stopping skips the grace period: the processes are killed.
    """

    def __init__(self):
        self.signum = None
        self.hurry = False

    def __call__(self, signum, frame):
        if self.signum is None:
            self.signum = signum
        else:
            self.hurry = True

    def outcome(self):
        """(exit code, reason) for the signal received."""
        if self.signum == signal.SIGINT:
            return 130, "interrupted"
        return 128 + self.signum, "got %s" % signal.Signals(self.signum).name

    def install(self):
        """Handle the stop signals here; returns the handlers to put back."""
        return {s: signal.signal(s, self) for s in _STOP_SIGNALS}


# ---------------------------------------------------------------- processes

def free_ports(host, count):
    """``count`` distinct ports that are free on ``host`` right now, in increasing order.

    The sockets are held open together so that the ports differ; a process
    that later finds its port taken picks another one itself (ps-lite retries).
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return sorted(sock.getsockname()[1] for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


# ssh forwards no signal and the remote command outlives a closed session, so each remote
# command runs under a watchdog: the launcher writes a heartbeat line to the session's stdin
# every HEARTBEAT_S; when the session ends or the heartbeat stops for REMOTE_TIMEOUT_S (a cut
# link), the watchdog stops the command's process group (SIGTERM, then SIGKILL).
HEARTBEAT_S, REMOTE_TIMEOUT_S = 1.0, 5
# Client side: a host that stops answering ends its ssh after about 3 s (exit code 255).
SSH_OPTIONS = ["-o", "StrictHostKeyChecking=no", "-o", "ServerAliveInterval=1",
               "-o", "ServerAliveCountMax=3"]
SSH_LOST = 255
WATCHDOG = ('exec 3<&0 </dev/null; set -m; "$@" & p=$!; '
            '(while read -r -t %d _ <&3; do :; done; kill -TERM -$p; sleep %g; kill -KILL -$p) '
            '>/dev/null 2>&1 & w=$!; wait $p; c=$?; kill $w; exit $c'
            % (REMOTE_TIMEOUT_S, KILL_GRACE_S))


def ssh_command(host, ssh_port, workdir, env, command):
    """The argv that runs ``command`` on ``host`` in ``workdir`` with ``env`` (dmlc's ssh form),
    under the remote watchdog."""
    exports = "".join("export %s=%s; " % (name, shlex.quote(str(value)))
                      for name, value in env.items())
    remote = "cd %s; %sexec bash -c %s watchdog %s" % (
        shlex.quote(workdir), exports, shlex.quote(WATCHDOG),
        " ".join(shlex.quote(arg) for arg in command))
    argv = ["ssh"] + SSH_OPTIONS
    if ssh_port:
        argv += ["-p", str(ssh_port)]
    return argv + [host, remote]


class Node:
    """One process of the job: its label, argv and the environment it adds."""

    def __init__(self, label, argv, env, host=None):
        self.label, self.argv, self.env, self.host = label, argv, env, host
        self.proc = None
        self.reader = None

    @property
    def is_worker(self):
        return self.label.startswith("worker")


def plan(args, command):
    """The Nodes to start: scheduler, servers, workers (in that order)."""
    common = {"PYTHONUNBUFFERED": "1"}  # lines as they come, not in 4 KiB blocks
    common.update(args.env)
    if args.hostfile is None:
        host_ip = "127.0.0.1"
        # One port per process, increasing in start order: ps-lite ranks the
        # processes of one host by port, so "worker 0" is also kvstore rank 0.
        try:
            ports = free_ports(host_ip, args.num_servers + args.num_workers + 1)
        except OSError as e:
            raise UsageError("cannot reserve %d ports on %s: %s"
                             % (args.num_servers + args.num_workers + 1, host_ip,
                                e.strerror or e))
        root_port = args.port or ports.pop(0)
    else:
        hosts = read_hostfile(args.hostfile)
        host_ip = args.host_ip or _this_host_ip()
        check_hosts(hosts, host_ip)
        try:
            root_port = args.port or free_ports(host_ip, 1)[0]
        except OSError as e:
            raise UsageError("the scheduler cannot listen on %s (%s); pass this machine's "
                             "address as --host-ip" % (host_ip, e.strerror or e))
        probe_hosts(hosts, args.workdir or os.getcwd(), _remote_env(common), command,
                    SSH_OPTIONS)
    dmlc = {"DMLC_PS_ROOT_URI": host_ip, "DMLC_PS_ROOT_PORT": str(root_port),
            "DMLC_NUM_SERVER": str(args.num_servers), "DMLC_NUM_WORKER": str(args.num_workers)}
    nodes = [Node("scheduler", list(command),
                  dict(common, DMLC_ROLE="scheduler", DMLC_NODE_HOST=host_ip, **dmlc))]
    roles = ["server"] * args.num_servers + ["worker"] * args.num_workers
    for i, role in enumerate(roles):
        index = i if role == "server" else i - args.num_servers
        env = dict(common, DMLC_ROLE=role, **dmlc)
        if args.hostfile is None:
            env.update(DMLC_NODE_HOST=host_ip, PORT=str(ports[i]))
            if role == "worker":  # the local workers share this machine's cores
                threads = worker_env(args.num_workers, dict(os.environ, **common))
                if threads:  # the launcher's count, which the worker keeps as given
                    env.update(threads, **{SET_VAR: ""})
            nodes.append(Node("%s %d" % (role, index), list(command), env))
        else:
            host, ssh_port = hosts[i % len(hosts)]
            env["DMLC_NODE_HOST"] = host
            argv = ssh_command(host, ssh_port, args.workdir or os.getcwd(), _remote_env(env),
                               command)
            nodes.append(Node("%s %d" % (role, index), argv, {}, host))
    return nodes


def _remote_env(env):
    """What a remote process gets: _PASSED_ENV as set here, then ``env``."""
    remote = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    remote.update(env)
    return remote


def _this_host_ip():
    """This machine's address as its own name resolves (no packet is sent)."""
    try:
        return socket.gethostbyname(socket.getfqdn())
    except OSError as e:
        raise UsageError("cannot find this host's address (%s); pass --host-ip" % e)


def _forward(node, out, lock):
    """Copy the node's output to ``out``, each line prefixed with its label."""
    prefix = ("[%s] " % node.label).encode()
    for line in iter(node.proc.stdout.readline, b""):
        with lock:
            out.write(prefix + line if line.endswith(b"\n") else prefix + line + b"\n")
            out.flush()
    node.proc.stdout.close()


def start(nodes, out, stopping=lambda: False):
    """Start every node in its own process group, with a thread forwarding its output.

    Stops early, leaving the rest unstarted, once ``stopping()`` is true.
    """
    lock = threading.Lock()
    for node in nodes:
        if stopping():
            return
        env = dict(os.environ, **node.env)
        try:
            node.proc = subprocess.Popen(
                node.argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE if node.host else subprocess.DEVNULL,
                start_new_session=True)
        except OSError as e:
            raise UsageError("cannot start the %s (%s): %s"
                             % (node.label, node.argv[0], e.strerror or e)) from None
        if node.host:
            os.set_blocking(node.proc.stdin.fileno(), False)  # a stuck ssh never blocks us
        with lock:
            out.write(("[launch] %s: pid %d\n" % (node.label, node.proc.pid)).encode())
            out.flush()
        node.reader = threading.Thread(target=_forward, args=(node, out, lock), daemon=True)
        try:
            node.reader.start()
        except RuntimeError as e:  # "can't start new thread"
            node.reader = None
            raise UsageError("cannot follow the %s: %s" % (node.label, e)) from None


def stop(nodes, hurry=lambda: False):
    """SIGTERM every live process group, then SIGKILL what is left after a grace period
    (at once when ``hurry()`` becomes true)."""
    live = [n for n in nodes if n.proc is not None and n.proc.poll() is None]
    for node in live:
        _signal_group(node.proc, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline and not hurry() \
            and any(n.proc.poll() is None for n in live):
        time.sleep(0.02)
    for node in live:
        # Only a process not yet reaped: its pid, and so its group id, is still ours.
        if node.proc.poll() is None:
            _signal_group(node.proc, signal.SIGKILL)
            node.proc.wait()
    for node in nodes:
        if node.reader is not None:
            node.reader.join(timeout=2)


def _signal_group(proc, signum):
    try:
        os.killpg(proc.pid, signum)  # the group id is the pid (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass


def _heartbeat(nodes):
    """One line to each remote watchdog (see WATCHDOG); a full or closed pipe is skipped."""
    for node in nodes:
        if node.host and node.proc.poll() is None:
            try:
                node.proc.stdin.write(b"\n")
                node.proc.stdin.flush()
            except (BlockingIOError, BrokenPipeError, ValueError):
                pass


def _failure(node, code):
    """The one-line reason for a process that ended with ``code``, naming its host."""
    if node.host and code == SSH_LOST:
        return "%s on %s: the ssh connection was lost (host down, unreachable or its " \
               "sshd gone)" % (node.label, node.host)
    where = " on %s" % node.host if node.host else ""
    return "%s%s %s" % (node.label, where, _describe(code))


def _describe(code):
    if code < 0:
        try:
            return "was killed by %s" % signal.Signals(-code).name
        except ValueError:
            return "was killed by signal %d" % -code
    return "exited with code %d" % code


def supervise(nodes, timeout=None, signals=None):
    """Wait for the job; return (exit code, reason or None). Never waits past ``timeout``.

    A reason that names a process means that process failed; the caller stops
    the others. A stop signal noted in ``signals`` (a _Signals) ends the wait.
    """
    start_time = beat_at = time.monotonic()
    workers_done_at = orphaned_at = None
    while True:
        if signals is not None and signals.signum is not None:
            return signals.outcome()
        now = time.monotonic()
        for node in nodes:
            code = node.proc.poll()
            if code:  # the first failure ends the job
                return (code if code > 0 else 128 - code), _failure(node, code)
        workers_running = any(n.proc.poll() is None for n in nodes if n.is_worker)
        servers_running = all(n.proc.poll() is None for n in nodes if not n.is_worker)
        if not any(n.proc.poll() is None for n in nodes):
            return 0, None
        if not workers_running:
            # Servers and scheduler stop once the workers' kvstores say goodbye.
            workers_done_at = workers_done_at or now
            if now - workers_done_at > SHUTDOWN_GRACE_S:
                return 1, ("the servers or the scheduler did not stop within %.0f s after the "
                           "workers finished" % SHUTDOWN_GRACE_S)
        elif not servers_running:
            # Exit code 0 but too early: the workers would wait for it forever. (At
            # the normal end it may leave a moment before the last worker does.)
            orphaned_at = orphaned_at or now
            if now - orphaned_at > ORPHAN_GRACE_S:
                return 1, "a server or the scheduler ended while workers were still running"
        if now - beat_at >= HEARTBEAT_S:
            _heartbeat(nodes)
            beat_at = now
        if timeout is not None and now - start_time > timeout:
            return EXIT_TIMEOUT, "timed out after %g s" % timeout
        time.sleep(_POLL_S)


def launch(args, command, out=None, signals=None):
    """Run the job; return the exit code. Every process is gone when this returns.

    ``signals`` is the _Signals handler in place (installed here if None).
    """
    out = out or sys.stdout.buffer
    previous = None
    if signals is None:
        signals = _Signals()
        previous = signals.install()
    nodes = []
    try:
        nodes = plan(args, command)
        start(nodes, out, lambda: signals.signum is not None)
        code, reason = supervise(nodes, args.timeout, signals)
    finally:
        stop(nodes, lambda: signals.hurry)
        if previous is not None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    if reason:
        print("%s: %s; stopped all processes" % (PROG, reason), file=sys.stderr)
    return code


def main(argv=None):
    """Entry point of ``gluon-cnns-launch``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    signals = _Signals()
    previous = signals.install()
    try:
        args, command = parse_args(argv)
        from ..envcheck import check_environment  # the workers inherit it: refuse it here
        check_environment()
        return launch(args, command, signals=signals)
    except UsageError as e:  # the processes started, if any, are stopped
        print("%s: error: %s (see --help)" % (PROG, e), file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as e:  # --help
        return e.code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
