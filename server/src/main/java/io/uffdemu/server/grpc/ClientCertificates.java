package io.uffdemu.server.grpc;

import io.uffdemu.server.config.UffdemuProperties;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import javax.naming.InvalidNameException;
import javax.naming.ldap.LdapName;
import javax.naming.ldap.Rdn;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;

/**
 * Client-certificate tenants ({@code uffdemu.auth.mtls.*}): verifies the peer's chain against the configured client
 * CA with the JDK's PKIX trust manager, takes the identity the configuration names (subject CN or a subject
 * alternative name) and maps it to a tenant. The result is cached on the TLS session, so a connection pays for the
 * verification once.
 */
final class ClientCertificates {
    /** Outcome of looking at a call's TLS session: a tenant, or why there is none. */
    record Result(String tenant, String refusal) {
        static Result none() {
            return new Result(null, null);
        }
    }

    private static final String SESSION_KEY = "uffdemu.tenant";
    private final X509TrustManager trust;
    private final String tenantFrom;
    private final Map<String, String> tenantByIdentity = new HashMap<>();

    ClientCertificates(UffdemuProperties.Mtls cfg) {
        if (cfg.clientCa() == null) {
            throw new IllegalArgumentException("uffdemu.auth.mtls.client-ca must name the PEM file of the client CA");
        }
        this.tenantFrom = cfg.tenantFrom() == null ? "cn" : cfg.tenantFrom().trim().toLowerCase();
        if (!List.of("cn", "san-dns", "san-uri", "san-email").contains(tenantFrom)) {
            throw new IllegalArgumentException("uffdemu.auth.mtls.tenant-from must be cn, san-dns, san-uri or san-email");
        }
        for (String e : cfg.tenants()) {
            int eq = e.lastIndexOf('=');
            if (eq <= 0 || eq == e.length() - 1) {
                throw new IllegalArgumentException("uffdemu.auth.mtls.tenants entries must be identity=tenant: " + e);
            }
            tenantByIdentity.put(e.substring(0, eq).strip(), e.substring(eq + 1).strip());
        }
        this.trust = trustManager(cfg.clientCa());
    }

    private static X509TrustManager trustManager(java.nio.file.Path caFile) {
        try (InputStream in = Files.newInputStream(caFile)) {
            Collection<? extends Certificate> cas = CertificateFactory.getInstance("X.509").generateCertificates(in);
            if (cas.isEmpty()) {
                throw new IllegalArgumentException("uffdemu.auth.mtls.client-ca: no certificate in " + caFile);
            }
            KeyStore ks = KeyStore.getInstance(KeyStore.getDefaultType());
            ks.load(null, null);
            int i = 0;
            for (Certificate c : cas) {
                ks.setCertificateEntry("ca" + i++, c);
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(ks);
            for (TrustManager tm : tmf.getTrustManagers()) {
                if (tm instanceof X509TrustManager x) {
                    return x;
                }
            }
            throw new IllegalStateException("no X509TrustManager");
        } catch (IOException | GeneralSecurityException e) {
            throw new IllegalArgumentException("uffdemu.auth.mtls.client-ca: cannot load " + caFile + ": " + e, e);
        }
    }

    /** The tenant the session's client certificate names; none when the client sent no certificate. */
    Result tenantOf(SSLSession session) {
        if (session == null) {
            return Result.none();
        }
        Object cached = session.getValue(SESSION_KEY);
        if (cached instanceof Result r) {
            return r;
        }
        Result r = resolve(session);
        session.putValue(SESSION_KEY, r);
        return r;
    }

    private Result resolve(SSLSession session) {
        Certificate[] peer;
        try {
            peer = session.getPeerCertificates();
        } catch (SSLPeerUnverifiedException e) {
            return Result.none();
        }
        if (peer == null || peer.length == 0 || !(peer[0] instanceof X509Certificate)) {
            return Result.none();
        }
        X509Certificate[] chain = new X509Certificate[peer.length];
        for (int i = 0; i < peer.length; i++) {
            chain[i] = (X509Certificate) peer[i];
        }
        try {
            trust.checkClientTrusted(chain, chain[0].getPublicKey().getAlgorithm());
        } catch (Exception e) {
            return new Result(null, "client certificate not issued by the configured client CA");
        }
        String identity = identity(chain[0]);
        if (identity == null || identity.isBlank()) {
            return new Result(null, "client certificate has no " + tenantFrom + " identity");
        }
        String tenant = tenantByIdentity.isEmpty() ? identity : tenantByIdentity.get(identity);
        if (tenant == null) {
            return new Result(null, "client certificate identity is not mapped to a tenant");
        }
        return new Result(tenant, null);
    }

    String identity(X509Certificate cert) {
        if (tenantFrom.equals("cn")) {
            try {
                List<Rdn> rdns = new LdapName(cert.getSubjectX500Principal().getName()).getRdns();
                for (int i = rdns.size() - 1; i >= 0; i--) { // most specific CN first
                    if (rdns.get(i).getType().equalsIgnoreCase("CN")) {
                        return rdns.get(i).getValue().toString();
                    }
                }
                return null;
            } catch (InvalidNameException e) {
                return null;
            }
        }
        int type = switch (tenantFrom) {
            case "san-email" -> 1;
            case "san-dns" -> 2;
            default -> 6; // san-uri
        };
        try {
            Collection<List<?>> sans = cert.getSubjectAlternativeNames();
            if (sans == null) {
                return null;
            }
            for (List<?> san : sans) {
                if (san.size() >= 2 && san.get(0) instanceof Integer t && t == type && san.get(1) instanceof String v) {
                    return v;
                }
            }
            return null;
        } catch (java.security.cert.CertificateParsingException e) {
            return null;
        }
    }
}
