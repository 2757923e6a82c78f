"""What this machine's CPU is and can do, read once from /proc/cpuinfo (no MXNet import)."""
import functools
import math
import os
import platform


@functools.lru_cache(maxsize=1)
def _cpuinfo():
    """The first processor's ``key: value`` lines of /proc/cpuinfo (empty where there is none)."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough: the others are the same model
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_model():
    """The CPU's model name (Linux /proc/cpuinfo), else what the platform module says."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_features():
    """The CPU's feature flags from /proc/cpuinfo (an empty set where there is none)."""
    return set(_cpuinfo().get("flags", "").split())


def bf16_supported():
    """True if the CPU has bfloat16 dot-product instructions (AVX512-BF16 or AMX).

    Without them oneDNN still computes in bf16, by emulation, slower than fp32.
    """
    return bool(cpu_features() & {"avx512_bf16", "amx_bf16"})


def machine_description():
    """The CPU model and its core count, e.g. "AMD EPYC 9B14, 2 cores"."""
    import os
    return "%s, %d cores" % (cpu_model(), os.cpu_count() or 0)


CPU_SYSFS = "/sys/devices/system/cpu"
PROC_CGROUP = "/proc/self/cgroup"
CGROUP_ROOT = "/sys/fs/cgroup"


# ---------------------------------------------------------------- reading the machine

def parse_cpu_list(text):
    """The CPU ids of a kernel list such as ``0,4`` or ``0-3,8-11``, as a frozenset."""
    cpus = set()
    for part in text.strip().split(","):
        if not part.strip():
            continue
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return frozenset(cpus)


def _read(path):
    """The stripped text of ``path``, or None when it cannot be read."""
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def allowed_cpus(getaffinity=None):
    """The logical CPUs this process may run on (its affinity mask)."""
    getaffinity = getaffinity or getattr(os, "sched_getaffinity", None)
    if getaffinity is None:  # not Linux: every CPU
        return frozenset(range(os.cpu_count() or 1))
    return frozenset(getaffinity(0))


def physical_cores(cpus, sysfs=CPU_SYSFS):
    """How many physical cores the logical ``cpus`` span: SMT siblings count once.

    Reads ``cpuN/topology/thread_siblings_list`` (``0,4`` or ``0-1``); a CPU
    whose file is missing counts as a core of its own.
    """
    cores = set()
    for cpu in cpus:
        topology = os.path.join(sysfs, "cpu%d" % cpu, "topology")
        text = (_read(os.path.join(topology, "thread_siblings_list"))
                or _read(os.path.join(topology, "core_cpus_list")))
        try:
            siblings = parse_cpu_list(text) if text else frozenset([cpu])
        except ValueError:
            siblings = frozenset([cpu])
        cores.add(siblings & cpus or frozenset([cpu]))
    return len(cores)


def cgroup_v2_quota(path):
    """CPUs allowed by a cgroup v2 ``cpu.max`` file (``"max 100000"`` or ``"150000 100000"``);
    None for no limit or no readable file."""
    fields = (_read(path) or "").split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_v1_quota(quota_path, period_path):
    """CPUs allowed by cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1: no limit)."""
    try:
        quota, period = int(_read(quota_path) or ""), int(_read(period_path) or "")
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _cgroup_dirs(proc_cgroup, root):
    """``(version, folder)`` of every cgroup folder whose CPU limit applies, leaf first.

    From ``/proc/self/cgroup``: ``0::/path`` (v2) and ``N:cpu,cpuacct:/path``
    (v1). Each folder's ancestors up to the mount point are included (a parent's
    quota limits its children too), and so is the mount point itself, which is
    where a container sees its own cgroup.
    """
    dirs = []
    for line in (_read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            mounts, version = [root], 2
        elif "cpu" in controllers.split(","):
            names = [controllers] + [n for n in ("cpu,cpuacct", "cpu") if n != controllers]
            mounts, version = [os.path.join(root, name) for name in names], 1
        else:
            continue
        for mount in mounts:
            folder = os.path.normpath(os.path.join(mount, path.lstrip("/")))
            while True:
                dirs.append((version, folder))
                if len(folder) <= len(mount) or not folder.startswith(mount):
                    break
                folder = os.path.dirname(folder)
    return list(dict.fromkeys(dirs))


def cgroup_cpu_limit(proc_cgroup=PROC_CGROUP, root=CGROUP_ROOT):
    """The smallest CPU quota of this process's cgroups (v1 or v2) in CPUs, or None."""
    limits = []
    for version, folder in _cgroup_dirs(proc_cgroup, root):
        if version == 2:
            limit = cgroup_v2_quota(os.path.join(folder, "cpu.max"))
        else:
            limit = cgroup_v1_quota(os.path.join(folder, "cpu.cfs_quota_us"),
                                    os.path.join(folder, "cpu.cfs_period_us"))
        if limit is not None:
            limits.append(limit)
    return min(limits) if limits else None


def available_cores(cpus=None, sysfs=CPU_SYSFS, proc_cgroup=PROC_CGROUP, root=CGROUP_ROOT):
    """Physical cores this process can keep busy: affinity, less SMT siblings, within
    the cgroup quota (rounded down: a thread over the quota is throttled), at least 1."""
    cpus = allowed_cpus() if cpus is None else frozenset(cpus)
    cores = physical_cores(cpus, sysfs)
    limit = cgroup_cpu_limit(proc_cgroup, root)
    if limit is not None:
        cores = min(cores, int(math.floor(limit + 1e-9)))
    return max(1, cores)
