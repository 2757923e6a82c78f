"""The command line of ``gluon-cnns-launch``: its flags, the hostfile, and what a job may ask."""
import os
import re

from ..errors import UsageError
from .common import OneLineParser

PROG = "gluon-cnns-launch"
# The most processes (scheduler, servers, workers) one launcher starts and follows,
# each with an output pipe and a thread.
MAX_PROCESSES = 4096
# Open files the launcher needs besides one pipe per process (Python, its modules, spare).
_SPARE_FILES = 64


def build_parser():
    parser = OneLineParser(
        prog=PROG, usage="%(prog)s -n WORKERS [-s SERVERS] [options] -- COMMAND [ARGS...]",
        description="Start a scheduler, servers and workers for MXNet's dist_sync / dist_async "
                    "kvstore, each running COMMAND, and forward their output.")
    add = parser.add_argument
    add("-n", "--num-workers", type=int, required=True, metavar="N", help="number of workers")
    add("-s", "--num-servers", type=int, metavar="N",
        help="number of servers (default: as many as workers)")
    add("-H", "--hostfile", metavar="FILE",
        help="run servers and workers on these hosts over ssh (one IP per line, optionally "
             "IP:SSH_PORT); without it everything runs here on 127.0.0.1")
    add("--host-ip", metavar="IP",
        help="with --hostfile: this machine's address, where the scheduler listens "
             "(default: what this host's name resolves to)")
    add("--port", type=int, default=0, metavar="P",
        help="the scheduler's port (default: a free one)")
    add("--workdir", metavar="DIR", help="with --hostfile: folder to cd to on the hosts "
                                         "(default: the current folder)")
    add("--env", action="append", default=[], metavar="NAME[=VALUE]",
        help="also set NAME (to VALUE, or to its value here) for every process; repeatable")
    add("--timeout", type=float, metavar="SECONDS",
        help="stop everything and exit 124 after this long (default: no limit)")
    return parser


def parse_args(argv):
    """(options, command): the launcher's own flags come before ``--``."""
    if "--" not in argv:
        if any(a in ("-h", "--help") for a in argv):
            build_parser().print_help()
            raise SystemExit(0)
        raise UsageError("give the command to run after --, e.g. -- python scripts/train.py "
                         "--kvstore dist_sync")
    cut = argv.index("--")
    args, command = build_parser().parse_args(argv[:cut]), argv[cut + 1:]
    if not command:
        raise UsageError("no command after --; e.g. -- python scripts/train.py "
                         "--kvstore dist_sync")
    if args.num_servers is None:
        args.num_servers = args.num_workers
    if args.num_workers < 1:
        raise UsageError("-n must be at least 1 worker, got %d" % args.num_workers)
    if args.num_servers < 1:
        raise UsageError("-s must be at least 1 server, got %d" % args.num_servers)
    check_capacity(args.num_workers, args.num_servers)
    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be in 0..65535, got %d" % args.port)
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if args.hostfile is None and (args.host_ip or args.workdir):
        raise UsageError("--host-ip and --workdir apply with --hostfile only; local jobs use "
                         "127.0.0.1 and the current folder")
    args.env = dict(_parse_env(item) for item in args.env)
    return args, command


def check_capacity(num_workers, num_servers):
    """Refuse a job the launcher cannot start and follow; raise the open-file limit if needed.

    Every process costs the launcher one open pipe (its output) and a thread.
    """
    total = num_workers + num_servers + 1
    job = "-n %d -s %d is %d processes with the scheduler" % (num_workers, num_servers, total)
    if total > MAX_PROCESSES:
        raise UsageError("%s; one launcher starts at most %d" % (job, MAX_PROCESSES))
    try:
        import resource
    except ImportError:  # not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = total + _SPARE_FILES
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    if hard == resource.RLIM_INFINITY or hard >= need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        return
    raise UsageError("%s, and following them needs %d open files, but the limit here is %d "
                     "(ulimit -n); raise it (ulimit -n %d) or start fewer processes"
                     % (job, need, hard, need))


def _parse_env(item):
    name, has_value, value = item.partition("=")
    if not name.isidentifier():
        raise UsageError("--env expects NAME or NAME=VALUE, got %r" % item)
    if not has_value:
        if name not in os.environ:
            raise UsageError("--env %s: %s is not set here; give --env %s=VALUE"
                             % (name, name, name))
        value = os.environ[name]
    return name, value


# [USER@]NAME: what ssh takes as its destination. Nothing else: a host starting with "-"
# would be read by ssh as an option (-oProxyCommand=... runs a local command), and a space
# or a shell character is no host name.
_HOST = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9._-]*@)?[A-Za-z0-9_][A-Za-z0-9._-]*$")
_PORT = re.compile(r"^[0-9]{1,5}$")  # ASCII digits: str.isdigit() also takes '²'


def read_hostfile(path):
    """[(host, ssh_port or None)] from a file of ``HOST`` or ``HOST:PORT`` lines ('#' comments)."""
    from ..io import NotRegularFile, open_regular
    try:
        with open_regular(path, text=True) as f:  # a named pipe would block the launcher
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError("cannot read --hostfile %s: %s" % (path, e.strerror or e))
    except NotRegularFile as e:
        raise UsageError("cannot read --hostfile %s: it is %s, not a file of hosts"
                         % (path, e.kind)) from None
    except UnicodeDecodeError:
        raise UsageError("cannot read --hostfile %s: not a text file of hosts" % path) from None
    hosts = []
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        host, _, port = line.partition(":")
        if not _HOST.match(host) or (port and not (_PORT.match(port) and 0 < int(port) < 65536)):
            raise UsageError("%s line %d: expected [USER@]HOST or [USER@]HOST:SSH_PORT, a host "
                             "of letters, digits, '.', '-' and '_' not starting with '-' and a "
                             "port in 1..65535, got %r" % (path, number, line))
        hosts.append((host, port or None))
    if not hosts:
        raise UsageError("--hostfile %s lists no hosts" % path)
    return hosts
