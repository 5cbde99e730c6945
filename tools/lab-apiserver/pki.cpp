#include "pki.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "objects.hpp"
#include "ossl.hpp"

namespace knp::lab {

namespace fs = std::filesystem;

namespace {

host::Error opensslError(std::string_view what) {
    unsigned long code = ERR_get_error();
    char buf[256] = "unknown error";
    if (code) ERR_error_string_n(code, buf, sizeof buf);
    ERR_clear_error();
    return host::makeError("{}: {}", what, buf);
}

host::Status writeFileAtomic(const fs::path& path, const std::string& content, mode_t mode) {
    fs::path tmp = path;
    tmp += ".tmp";
    // Created with its final mode: a key or token is never readable by others, not even briefly.
    host::sys::Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd) return host::makeError("{}: {}", tmp.string(), std::strerror(errno));
    ::fchmod(fd.get(), mode);
    std::size_t off = 0;
    while (off < content.size()) {
        ssize_t n = ::write(fd.get(), content.data() + off, content.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return host::makeError("{}: {}", tmp.string(), std::strerror(errno));
        }
        off += static_cast<std::size_t>(n);
    }
    fd.reset();
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) return host::makeError("{}: {}", path.string(), ec.message());
    return host::okStatus();
}

std::string readFile(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

host::Result<std::string> pem(X509* cert) {
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return opensslError("PEM_write_bio_X509");
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

host::Result<std::string> pem(EVP_PKEY* key) {
    ossl::Bio bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
        return opensslError("PEM_write_bio_PrivateKey");
    char* data = nullptr;
    long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

host::Status addExt(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    ossl::Ext ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str()));
    if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) return opensslError(fmt::format("extension {}", value));
    return host::okStatus();
}

// A certificate for `key`, signed by `issuerKey` (self-signed when `issuer` is null).
host::Result<ossl::Cert> makeCert(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* issuerKey, long days,
                                  const std::vector<std::pair<int, std::string>>& exts) {
    ossl::Cert cert(X509_new());
    if (!cert) return opensslError("X509_new");
    X509_set_version(cert.get(), 2);
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof serial) != 1) return opensslError("RAND_bytes");
    serial[0] &= 0x7f;  // positive
    ossl::Bignum bn(BN_bin2bn(serial, sizeof serial, nullptr));
    if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get()))) return opensslError("serial");
    // Valid from an hour ago: tolerates clock differences between this and other processes.
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), days * 24 * 3600);
    X509_set_pubkey(cert.get(), key);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
    X509* iss = issuer ? issuer : cert.get();
    for (const auto& [nid, value] : exts)
        if (auto st = addExt(cert.get(), iss, nid, value); !st) return st.error();
    if (X509_sign(cert.get(), issuerKey, EVP_sha256()) == 0) return opensslError("X509_sign");
    return cert;
}

bool isIp(const std::string& s) {
    unsigned char buf[16];
    return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

host::Result<Pki> preparePki(const fs::path& dir, const std::vector<std::string>& extraSans) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return host::makeError("{}: {}", dir.string(), ec.message());
    fs::path caCrt = dir / "ca.crt", caKeyPath = dir / "ca.key";
    ossl::Key caKey;
    ossl::Cert caCert;
    if (fs::exists(caCrt) && fs::exists(caKeyPath)) {
        std::string c = readFile(caCrt), k = readFile(caKeyPath);
        ossl::Bio cb(BIO_new_mem_buf(c.data(), static_cast<int>(c.size())));
        ossl::Bio kb(BIO_new_mem_buf(k.data(), static_cast<int>(k.size())));
        caCert.reset(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
        caKey.reset(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
        if (!caCert || !caKey) return opensslError(fmt::format("{}: reading the existing CA", dir.string()));
    } else {
        caKey.reset(EVP_EC_gen("P-256"));
        if (!caKey) return opensslError("EVP_EC_gen");
        auto c = makeCert(caKey.get(), "knp-lab-ca", nullptr, caKey.get(), 3650,
                          {{NID_basic_constraints, "critical,CA:TRUE"},
                           {NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"},
                           {NID_subject_key_identifier, "hash"}});
        if (!c) return c.error();
        caCert = std::move(c.value());
        auto keyPem = pem(caKey.get());
        auto certPem = pem(caCert.get());
        if (!keyPem) return keyPem.error();
        if (!certPem) return certPem.error();
        if (auto st = writeFileAtomic(caKeyPath, *keyPem, 0600); !st) return st.error();
        if (auto st = writeFileAtomic(caCrt, *certPem, 0644); !st) return st.error();
    }

    std::string san = "IP:127.0.0.1,IP:::1,DNS:localhost";
    for (const auto& s : extraSans) san += (isIp(s) ? ",IP:" : ",DNS:") + s;
    ossl::Key key(EVP_EC_gen("P-256"));
    if (!key) return opensslError("EVP_EC_gen");
    auto cert = makeCert(key.get(), "knp-lab-apiserver", caCert.get(), caKey.get(), 365,
                         {{NID_basic_constraints, "critical,CA:FALSE"},
                          {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
                          {NID_ext_key_usage, "serverAuth"},
                          {NID_subject_key_identifier, "hash"},
                          {NID_authority_key_identifier, "keyid:always"},
                          {NID_subject_alt_name, san}});
    if (!cert) return cert.error();
    Pki out;
    auto caPem = pem(caCert.get());
    auto certPem = pem(cert.value().get());
    auto keyPem = pem(key.get());
    if (!caPem) return caPem.error();
    if (!certPem) return certPem.error();
    if (!keyPem) return keyPem.error();
    out.caCertPem = std::move(caPem.value());
    out.certPem = std::move(certPem.value());
    out.keyPem = std::move(keyPem.value());
    if (auto st = writeFileAtomic(dir / "tls.crt", out.certPem, 0644); !st) return st.error();
    if (auto st = writeFileAtomic(dir / "tls.key", out.keyPem, 0600); !st) return st.error();
    return out;
}

host::Status writeCredentials(const fs::path& dir, const std::string& server, const std::string& caPem,
                              const std::string& token) {
    if (auto st = writeFileAtomic(dir / "token", token, 0600); !st) return st;
    std::string kubeconfig = fmt::format(
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "- name: knp-lab\n"
        "  cluster:\n"
        "    server: {}\n"
        "    certificate-authority-data: {}\n"
        "users:\n"
        "- name: knp-lab\n"
        "  user:\n"
        "    token: {}\n"
        "contexts:\n"
        "- name: knp-lab\n"
        "  context:\n"
        "    cluster: knp-lab\n"
        "    user: knp-lab\n"
        "    namespace: default\n"
        "current-context: knp-lab\n"
        "preferences: {{}}\n",
        server, base64Encode(caPem), token);
    return writeFileAtomic(dir / "kubeconfig", kubeconfig, 0600);
}

}  // namespace knp::lab
