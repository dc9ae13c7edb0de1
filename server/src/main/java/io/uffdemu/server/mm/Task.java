package io.uffdemu.server.mm;

import java.util.TreeMap;

/**
 * A process: analogue of {@code struct task_struct} (one thread group) with its {@code struct files_struct}
 * and credentials. Guarded by the kernel lock.
 */
public final class Task {
    final int pid;
    final String name;
    final int uid;
    /** CAP_SYS_PTRACE in the task's credentials. */
    final boolean capSysPtrace;
    final int parentPid;
    final MmStruct mm;
    final TreeMap<Integer, OpenFile> fds = new TreeMap<>();
    boolean exited;
    /** Opaque owner tag (the tenant that created the process); not interpreted by the core. */
    final String owner;
    /** The memory cgroup the task belongs to ({@code mm->memcg} via {@code mm->owner}); charged for its memory. */
    final MemCgroup memcg;

    Task(int pid, String name, int uid, boolean capSysPtrace, int parentPid, MmStruct mm, String owner,
            MemCgroup memcg) {
        this.memcg = memcg;
        this.pid = pid;
        this.name = name;
        this.uid = uid;
        this.capSysPtrace = capSysPtrace;
        this.parentPid = parentPid;
        this.mm = mm;
        this.owner = owner;
        mm.owner = this;
        mm.pt.memcg = memcg;
        memcg.chargePgtables(mm.pt.tableCount());
    }

    /** RLIMIT_NOFILE of every emulated process (the usual soft limit). */
    static final int RLIMIT_NOFILE = 1024;

    /** EMFILE when the fd table is full; checked before a call creates anything to install. */
    void checkFdRoom(String call) {
        if (fds.size() >= RLIMIT_NOFILE) {
            throw new LinuxException(Errno.EMFILE, call);
        }
    }

    /** {@code get_unused_fd_flags()}: the lowest free descriptor. */
    int installFd(OpenFile f) {
        int fd = 0;
        for (Integer used : fds.keySet()) {
            if (used != fd) {
                break;
            }
            fd++;
        }
        fds.put(fd, f);
        f.refs++;
        return fd;
    }

    public int pid() {
        return pid;
    }

    public String name() {
        return name;
    }

    public int uid() {
        return uid;
    }

    public boolean capSysPtrace() {
        return capSysPtrace;
    }

    public int parentPid() {
        return parentPid;
    }

    public MmStruct mm() {
        return mm;
    }

    public String owner() {
        return owner;
    }

    public MemCgroup memcg() {
        return memcg;
    }

    public java.util.Set<Integer> fdNumbers() {
        return java.util.Set.copyOf(fds.keySet());
    }
}
