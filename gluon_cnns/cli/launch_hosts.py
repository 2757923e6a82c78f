"""The hosts of ``gluon-cnns-launch -H``, checked before anything starts.

A job that starts with a bad host fails late and unclearly: ps-lite waits for
a server that never registers, or a remote worker prints a traceback. So the
launcher checks the hostfile first and reports the first problem as one line
(exit 2):

* a host listed twice, or this machine under two names (``localhost`` and
  127.0.0.1, or 127.0.0.1 and ``--host-ip``), with the same ssh port;
* a loopback address next to other hosts, which could not reach it;
* over ssh, once per host and all hosts at once (:func:`probe_hosts`): a host
  that does not answer, no ``--workdir`` there, no COMMAND's program (or, for
  ``python SCRIPT``, no SCRIPT) there, a Python there that cannot find ``mxnet``
  (or ``gluon_cnns``, for the package's scripts and modules), and a
  ``DMLC_INTERFACE`` naming no network interface there.
"""
import ipaddress
import os
import shlex
import socket
import subprocess
import threading

from ..errors import UsageError

# How long a host may take to answer the probe (ssh's connection, then the checks).
CONNECT_TIMEOUT_S, PROBE_TIMEOUT_S = 5, 30
SSH_FAILED = 255  # ssh's own exit code: no connection, or it was lost
_MARK = "gluon-cnns-probe:"
# Run by COMMAND's Python on a host: the modules it needs, looked up, not imported (finding
# them is enough here, and importing MXNet would take seconds). argv: the modules (comma-
# separated), then the folders a script puts first on sys.path (scripts/*.py: the repository).
_FIND_MODULES = ("import importlib.util as u, sys; sys.path[:0] = sys.argv[2:]; "
                 "m = [n for n in sys.argv[1].split(',') if u.find_spec(n) is None]; "
                 "m and print(%r, 'modules', *m); sys.exit(3 if m else 0)" % _MARK)


def check_hosts(hosts, host_ip):
    """Refuse a hostfile that names a host twice or mixes loopback with other hosts.

    ``hosts`` is read_hostfile's [(host, ssh port or None)]; ``host_ip`` the scheduler's.
    """
    seen = {}
    here = {"127.0.0.1", "::1", host_ip}
    for host, port in hosts:
        address = _address(host)
        this_machine = address in here or _is_loopback(address)
        key = ("this machine" if this_machine else address, port or "22")
        if key in seen:
            same = "this machine" if this_machine else "the same host"
            raise UsageError("the hostfile names %s twice (%s and %s, ssh port %s); list each "
                             "host once: processes go round-robin over the hosts, several on "
                             "one when there are more processes than hosts"
                             % (same, seen[key], host, key[1]))
        seen[key] = host
    loopback = [h for h, _ in hosts if _is_loopback(_address(h))]
    if loopback and len(loopback) < len(hosts):
        raise UsageError("the hostfile lists %s next to other hosts, which cannot reach it; "
                         "list this machine by an address they reach (e.g. --host-ip)"
                         % loopback[0])


def _address(host):
    """The IPv4 address of a hostfile's host (``user@`` left out: the same machine)."""
    try:
        return socket.gethostbyname(host.rpartition("@")[2])
    except OSError:  # e.g. a name only ssh's configuration knows: ssh will tell
        return host


def _is_loopback(address):
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def probe_hosts(hosts, workdir, env, command, ssh_options):
    """Check every distinct host over ssh, all at once; raise the first problem found
    (in hostfile order) as a UsageError."""
    distinct = list(dict.fromkeys(hosts))
    problems = [None] * len(distinct)

    def probe(i, host, port):
        problems[i] = _probe(host, port, workdir, env, command, ssh_options)

    threads = [threading.Thread(target=probe, args=(i, h, p), daemon=True)
               for i, (h, p) in enumerate(distinct)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for problem in problems:
        if problem:
            raise UsageError(problem)


def _probe(host, port, workdir, env, command, ssh_options):
    """The problem with ``host`` (one line), or None when the job can start there."""
    argv = ["ssh"] + ssh_options + ["-o", "BatchMode=yes",
                                    "-o", "ConnectTimeout=%d" % CONNECT_TIMEOUT_S]
    if port:
        argv += ["-p", str(port)]
    try:
        done = subprocess.run(argv + [host, probe_script(workdir, env, command)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, errors="replace",
                              timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "%s did not answer the launcher's check within %d s" % (host, PROBE_TIMEOUT_S)
    except OSError as e:
        return "cannot run ssh to reach %s: %s" % (host, e.strerror or e)
    if done.returncode == 0:
        return None
    said = [l for l in done.stdout.splitlines() if l.startswith(_MARK)]
    last = ([l.strip() for l in done.stderr.splitlines() if l.strip()] or ["no message"])[-1]
    if done.returncode == SSH_FAILED:
        return ("cannot reach %s over ssh (%s); check the hostfile, that the host is up and "
                "that its sshd lets this user in without a password" % (host, last))
    if not said:
        return "%s on %s cannot run (%s)" % (command[0], host, last)
    kind, _, rest = said[0][len(_MARK):].strip().partition(" ")
    return _explain(host, kind, rest, workdir, env, command)


def _explain(host, kind, rest, workdir, env, command):
    if kind == "workdir":
        return ("no folder %s on %s (--workdir): every host needs the repository at the same "
                "path" % (workdir, host))
    if kind == "program":
        return ("no %s on %s: every host needs the same Python environment at the same path "
                "(give the interpreter's full path)" % (command[0], host))
    if kind == "script":
        return ("no %s on %s: every host needs the repository at the same path"
                % (os.path.join(workdir, command[1]), host))
    if kind == "interface":
        return ("DMLC_INTERFACE=%s names no network interface on %s (it has %s); unset it or "
                "name one of those" % (env["DMLC_INTERFACE"], host, ", ".join(rest.split())))
    return ("%s on %s cannot import %s: install the package's environment there (pip install "
            "-r requirements.txt), or give the interpreter that has it"
            % (command[0], host, " and ".join(rest.split())))


def probe_script(workdir, env, command):
    """The shell line that checks a host for ``command`` run in ``workdir`` with ``env``."""
    q = shlex.quote
    lines = ["cd %s 2>/dev/null || { echo %s workdir; exit 3; }" % (q(workdir), _MARK),
             "command -v %s >/dev/null 2>&1 || { echo %s program; exit 3; }"
             % (q(command[0]), _MARK)]
    iface = env.get("DMLC_INTERFACE")
    if iface:
        lines.append("[ -e /sys/class/net/%s ] || { echo %s interface $(ls /sys/class/net); "
                     "exit 3; }" % (q(os.path.basename(iface)), _MARK))
    if os.path.basename(command[0]).startswith("python"):
        lines += _python_checks(workdir, command)
    return "; ".join(lines)


def _python_checks(workdir, command):
    """For a Python COMMAND: its script is there, and its Python finds MXNet (and this
    package, for the package's own scripts and modules)."""
    q = shlex.quote
    modules, script_root, lines = ["mxnet"], [], []
    if len(command) > 1 and command[1].endswith(".py"):
        script = os.path.join(workdir, command[1])
        lines.append("[ -f %s ] || { echo %s script; exit 3; }" % (q(script), _MARK))
        root = os.path.dirname(os.path.dirname(script))  # scripts/x.py: the repository
        if os.path.isdir(os.path.join(root, "gluon_cnns")):  # the same paths everywhere
            modules.append("gluon_cnns")
            script_root = [root]
    elif command[1:3] and command[1] == "-m" and command[2].startswith("gluon_cnns"):
        modules.append("gluon_cnns")
    lines.append(" ".join(q(a) for a in [command[0], "-c", _FIND_MODULES, ",".join(modules)]
                          + script_root) + " || exit 3")
    return lines
