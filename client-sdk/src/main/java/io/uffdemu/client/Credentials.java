package io.uffdemu.client;

/**
 * The credentials of an emulated process that matter to userfaultfd.
 *
 * <pre>{@code
 * Process p = client.createProcess("vmm", Credentials.user(1000)); // needs UFFD_USER_MODE_ONLY or /dev/userfaultfd
 * }</pre>
 *
 * @param capSysPtrace CAP_SYS_PTRACE (lets userfaultfd(2) handle kernel faults when
 *     vm.unprivileged_userfaultfd = 0)
 */
public record Credentials(int uid, boolean capSysPtrace) {
  /** uid 0 with CAP_SYS_PTRACE. */
  public static final Credentials ROOT = new Credentials(0, true);

  /** An unprivileged user. */
  public static Credentials user(int uid) {
    return new Credentials(uid, false);
  }
}
