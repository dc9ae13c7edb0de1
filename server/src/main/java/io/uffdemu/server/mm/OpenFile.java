package io.uffdemu.server.mm;

/**
 * An open file description ({@code struct file}), shared by every fd that refers to it (fork, FORK events).
 * Either a memfd or a userfaultfd. {@link #refs} counts fd-table slots; the last close releases it
 * ({@code fput()} → {@code ->release()}).
 */
public final class OpenFile {
    final Inode inode;
    final UserfaultfdCtx uffd;
    final boolean writable;
    int refs;

    private OpenFile(Inode inode, UserfaultfdCtx uffd, boolean writable) {
        this.inode = inode;
        this.uffd = uffd;
        this.writable = writable;
    }

    static OpenFile memfd(Inode inode) {
        return new OpenFile(inode, null, true);
    }

    static OpenFile userfaultfd(UserfaultfdCtx ctx) {
        return new OpenFile(null, ctx, true);
    }

    public boolean isUffd() {
        return uffd != null;
    }

    public Inode inode() {
        return inode;
    }

    public UserfaultfdCtx uffd() {
        return uffd;
    }
}
