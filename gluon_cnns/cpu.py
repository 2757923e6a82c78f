"""What this machine's CPU is and can do, read once from /proc/cpuinfo (no MXNet import)."""
import functools
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
