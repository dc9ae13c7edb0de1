package io.uffdemu.client;

/**
 * How an emulated load/store reaches memory.
 *
 * <pre>{@code
 * AccessResult r = process.read(addr, 8, AccessMode.KERNEL); // copy_from_user: EFAULT with USER_MODE_ONLY uffds
 * }</pre>
 */
public enum AccessMode {
  /** A thread of the process in user mode (FAULT_FLAG_USER). */
  USER,
  /** The kernel on behalf of the process (copy_from_user in a syscall); no FAULT_FLAG_USER. */
  KERNEL,
  /** get_user_pages_remote (process_vm_readv/writev): FAULT_FLAG_REMOTE. */
  REMOTE,
  /** /proc/PID/mem (FOLL_FORCE). */
  PROC_MEM
}
