// The lab server's files in --dir: a CA (kept across restarts when present, so kubeconfigs stay
// valid), a server certificate issued for every start, the bearer token and a kubeconfig that
// kubectl and knpd use as is. THREAD: start-up, and the admin API's token change, on the
// io_context thread.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace knp::lab {

struct Pki {
    std::string caCertPem;
    std::string certPem;  // the server certificate
    std::string keyPem;   // its key
};

// ECDSA P-256 keys, SHA-256 signatures; SANs 127.0.0.1, ::1, localhost and `extraSans` (IP
// literals become IP SANs, anything else a DNS SAN). Writes ca.crt, ca.key, tls.crt, tls.key.
host::Result<Pki> preparePki(const std::filesystem::path& dir, const std::vector<std::string>& extraSans);

// DIR/token, and DIR/kubeconfig naming `server` ("https://127.0.0.1:43121"), the CA inline and
// the token; both replaced atomically (a reader never sees half a file).
host::Status writeCredentials(const std::filesystem::path& dir, const std::string& server, const std::string& caPem,
                              const std::string& token);

}  // namespace knp::lab
