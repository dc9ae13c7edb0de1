package io.uffdemu.server.mm;

/** How an emulated access reaches memory; decides FAULT_FLAG_USER / FAULT_FLAG_REMOTE / FOLL_FORCE. */
public enum AccessMode {
    /** A load or store by a thread of the process (FAULT_FLAG_USER). */
    USER,
    /** copy_to_user / copy_from_user inside a syscall of the process. */
    KERNEL,
    /** get_user_pages_remote(): process_vm_readv / writev. */
    REMOTE,
    /** /proc/PID/mem: FOLL_FORCE, no fault retry, so userfaults fail with EIO. */
    PROC_MEM
}
