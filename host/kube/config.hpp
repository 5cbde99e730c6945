// Where the Kubernetes API server is and how to authenticate to it: a kubeconfig file
// (--kubeconfig) or the in-cluster service account. Both produce a ClusterConfig; the watch
// client never looks at the source again, except for the token file, which it re-reads
// because service-account tokens rotate (TokenSource).
//
// THREAD: ClusterConfig is a plain value. loadKubeconfig/inClusterConfig may run on any thread.
// TokenSource is thread-safe (every reflector thread shares one).
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "common/result.hpp"

namespace knp::host::kube {

struct ClusterConfig {
    // "https://host:port" plus an optional path prefix (kept: some proxies serve the API under
    // one); never a trailing slash. IPv6 hosts are bracketed.
    std::string server;
    std::string tlsServerName;           // verify the certificate for this name (and send it as SNI)
    bool insecureSkipTlsVerify = false;  // only ever from a kubeconfig that says so
    // Trust anchors: a PEM file or PEM bytes (inline data never touches the disk). Neither:
    // the system trust store.
    std::string caFile, caPem;
    // Client certificate authentication (file or inline PEM for each).
    std::string clientCertFile, clientCertPem, clientKeyFile, clientKeyPem;
    // Bearer token: a file (re-read, it rotates) wins over an inline token.
    std::string token, tokenFile;
    std::string defaultNamespace;  // the context's namespace, or the service account's
    std::string source;            // for logs: `kubeconfig "/path" context "name"` or `in-cluster`
};

// Parses a kubeconfig. `context` empty: current-context. Relative file paths are relative to
// the kubeconfig's directory, as kubectl resolves them. Errors are one line naming the file,
// line and field, e.g. `lab.kubeconfig:9: users[0] ("admin").user.client-key-data: not base64`.
// Unsupported authentication (exec, auth-provider, username/password) is an error, not ignored.
Result<ClusterConfig> loadKubeconfig(const std::string& path, const std::string& context = "");
// Same, from text; `name` is used in errors and `baseDir` resolves relative paths.
Result<ClusterConfig> parseKubeconfig(const std::string& text, const std::string& name, const std::string& baseDir,
                                      const std::string& context = "");

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

struct InClusterOptions {
    // Test-only override; production always uses the standard mount.
    std::string serviceAccountDir = kServiceAccountDir;
    // Environment lookup (tests inject one instead of mutating the process environment).
    std::function<const char*(const char*)> getenv;
};
// KUBERNETES_SERVICE_HOST/_PORT, ca.crt, token (must be readable now) and namespace (optional)
// from the service-account directory.
Result<ClusterConfig> inClusterConfig(const InClusterOptions& options = {});

// "https://" + host + ":" + port, bracketing an IPv6 literal (and leaving a bracketed one be).
std::string httpsUrl(std::string_view host, std::string_view port);

// Decodes standard base64 (whitespace ignored, padding optional); nullopt when malformed.
std::optional<std::string> base64Decode(std::string_view in);

// The bearer token. With a file, the file is re-read when the cached copy is older than
// `refresh` and after invalidate() (called on every 401), so a rotated token is picked up
// without a restart; a file that cannot be read keeps the last good token and is logged once
// per failure streak.
class TokenSource {
public:
    using Clock = std::chrono::steady_clock;
    TokenSource(std::string inlineToken, std::string file, Clock::duration refresh = std::chrono::minutes(1));

    // The token to send ("" = none). Reads the file when due.
    std::string token();
    // The server rejected the token: read the file again on the next token().
    void invalidate();
    bool hasFile() const { return !file_.empty(); }

private:
    std::mutex mu_;
    const std::string inline_;
    const std::string file_;
    const Clock::duration refresh_;
    std::string cached_;
    Clock::time_point readAt_{};
    bool stale_ = true;
    bool failing_ = false;
};

// Reads a whole (small) file; the error names the path. Limit: 1 MiB (tokens, certificates).
Result<std::string> readSmallFile(const std::string& path);

}  // namespace knp::host::kube
