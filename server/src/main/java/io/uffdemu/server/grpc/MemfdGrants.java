package io.uffdemu.server.grpc;

import io.uffdemu.server.backend.MemoryBackend;
import io.uffdemu.server.config.UffdemuProperties;
import io.uffdemu.server.mm.Errno;
import io.uffdemu.server.mm.LinuxException;
import io.uffdemu.server.mm.OpenFile;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import org.springframework.stereotype.Component;

/**
 * Cross-tenant memfd grants, the one way a memfd crosses tenants. A grant is made by the owning tenant for one
 * grantee tenant and holds the open file itself (an in-flight reference, as an SCM_RIGHTS message holds it), so a
 * later close or reuse of the granter's fd number changes nothing. The grantee installs it with an accept; the
 * granter revokes it (or its granting process exits), which refuses further accepts and closes the fds the grant
 * installed. Tokens are 128 random bits. Anything not granted to the caller's tenant is NOT_FOUND (ENOENT), as
 * for every other cross-tenant object.
 */
@Component
public class MemfdGrants {
    private static final SecureRandom RANDOM = new SecureRandom();

    /** One grant. {@code installed} lists (pid, fd) pairs it installed; guarded by the grant's monitor. */
    static final class Grant {
        final String token;
        final String granterTenant;
        final int granterPid;
        final String granteeTenant;
        final OpenFile file;
        final List<int[]> installed = new ArrayList<>();
        boolean revoked;

        Grant(String token, String granterTenant, int granterPid, String granteeTenant, OpenFile file) {
            this.token = token;
            this.granterTenant = granterTenant;
            this.granterPid = granterPid;
            this.granteeTenant = granteeTenant;
            this.file = file;
        }
    }

    private final ConcurrentHashMap<String, Grant> grants = new ConcurrentHashMap<>();
    private final MemoryBackend backend;
    private final int maxGrants;

    public MemfdGrants(MemoryBackend backend, UffdemuProperties props) {
        this.backend = backend;
        this.maxGrants = props.quotas().maxMemfdGrants();
    }

    /** GrantMemfd: the caller's process {@code pid} (checked by {@link TenantInterceptor}) grants its memfd. */
    public String grant(int pid, int fd, String granteeTenant) {
        if (granteeTenant == null || granteeTenant.isBlank() || granteeTenant.length() > 256) {
            throw Errors.invalid("grantee_tenant must name a tenant (1 to 256 characters)");
        }
        String tenant = Tenants.current();
        long held = grants.values().stream().filter(g -> g.granterTenant.equals(tenant)).count();
        if (held >= maxGrants) {
            throw LinuxException.quota(Errno.EMFILE, "GrantMemfd", "tenant memfd grant quota (" + maxGrants
                    + ") reached");
        }
        OpenFile f = backend.memfdGet(pid, fd);
        byte[] b = new byte[16];
        RANDOM.nextBytes(b);
        String token = "mg_" + HexFormat.of().formatHex(b);
        grants.put(token, new Grant(token, tenant, pid, granteeTenant.strip(), f));
        return token;
    }

    /** AcceptMemfdGrant: installs the granted memfd in the caller's process {@code pid}. */
    public int accept(int pid, String token) {
        Grant g = token == null ? null : grants.get(token);
        if (g == null || !g.granteeTenant.equals(Tenants.current())) {
            throw new LinuxException(Errno.ENOENT, "AcceptMemfdGrant", 0, "no such grant for this tenant");
        }
        synchronized (g) {
            if (g.revoked) {
                throw new LinuxException(Errno.ENOENT, "AcceptMemfdGrant", 0, "no such grant for this tenant");
            }
            int fd = backend.memfdInstall(pid, g.file);
            g.installed.add(new int[] {pid, fd});
            return fd;
        }
    }

    /** RevokeMemfdGrant by the granting tenant; returns the grantee fds closed. */
    public int revoke(String token) {
        Grant g = token == null ? null : grants.get(token);
        if (g == null || !g.granterTenant.equals(Tenants.current())) {
            throw new LinuxException(Errno.ENOENT, "RevokeMemfdGrant", 0, "no such grant of this tenant");
        }
        return drop(g);
    }

    /** The granting process exited: its grants end as if revoked. */
    public void processExited(int pid) {
        for (Grant g : grants.values()) {
            if (g.granterPid == pid) {
                drop(g);
            }
        }
    }

    private int drop(Grant g) {
        int closed = 0;
        synchronized (g) {
            if (g.revoked) {
                return 0;
            }
            g.revoked = true;
            grants.remove(g.token);
            for (int[] pf : g.installed) {
                if (backend.closeIfSame(pf[0], pf[1], g.file)) {
                    closed++;
                }
            }
            g.installed.clear();
            backend.memfdPut(g.file);
        }
        return closed;
    }

    /** Live grants (for tests and gauges). */
    public int size() {
        return grants.size();
    }
}
