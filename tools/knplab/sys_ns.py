"""Network namespaces, `ip`, and processes that outlive the command that started them."""
import ctypes
import os
import signal
import subprocess
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class LabError(Exception):
    pass


def run(*cmd, check=True, input=None, timeout=60):
    r = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout)
    if check and r.returncode != 0:
        raise LabError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def ip(*args, ns=None, check=True):
    return run("ip", *(["-n", ns] if ns else []), *args, check=check)


def sysctl(ns, *settings):
    """sysctl -w inside a namespace (/proc/sys/net is per namespace of the writer)."""
    run("ip", "netns", "exec", ns, "sysctl", "-qw", *settings)


def netns_list():
    return [line.split()[0] for line in run("ip", "netns", "list").stdout.splitlines() if line.strip()]


def netns_exists(name):
    return os.path.exists(f"/run/netns/{name}")


def enter(ns):
    """Moves the CALLING THREAD into network namespace `ns` (setns affects one thread only):
    sockets it creates afterwards live there. Use from a thread made for the purpose."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns {ns}: {os.strerror(e)}")
    finally:
        os.close(fd)


def start(cmd, log, ns=None, nsenter=False, env=None):
    """Starts a detached process (own session, stdin /dev/null, output to `log`), inside
    namespace `ns` when given: `ip netns exec` (which also remounts /sys), or `nsenter --net`
    for processes that refer to other namespaces by name (the agent)."""
    if ns and nsenter:
        cmd = ["nsenter", f"--net=/run/netns/{ns}", "--", *cmd]
    elif ns:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    with open(log, "ab") as out:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                             env=env, close_fds=True)
    return p


def start_time(pid):
    """The process's start time in clock ticks (field 22 of /proc/PID/stat), or None: with the
    pid it names a process unambiguously (pids are reused)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def kill_all(pids, grace=3.0):
    """SIGTERM, then SIGKILL what is still there after `grace` seconds. `pids` is a list of
    (pid, start_time or None); a pid whose start time changed is someone else's now."""
    def alive(p, t):
        now = start_time(p)
        return now is not None and (t is None or now == t)

    live = [(p, t) for p, t in pids if alive(p, t)]
    for p, _ in live:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        live = [(p, t) for p, t in live if alive(p, t)]
        time.sleep(0.05)
    for p, _ in live:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def netns_pids(ns):
    r = run("ip", "netns", "pids", ns, check=False)
    return [int(x) for x in r.stdout.split() if x.isdigit()]


def processes_with_args(args):
    """Pids of processes whose command line contains `args` as consecutive arguments."""
    n = len(args)
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(argv[i:i + n] == args for i in range(len(argv) - n + 1)):
            found.append(int(pid))
    return found
