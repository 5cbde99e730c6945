// One HTTP(S) connection's worth of the Kubernetes API: GET requests with the cluster's TLS
// settings and the current bearer token, a body either buffered (LIST) or streamed to a
// callback (WATCH), and sleeps that stop() interrupts at once.
//
// Each session runs its easy handle inside a private multi handle, so a blocked transfer and a
// backoff sleep both wait in curl_multi_poll(), which wake() (curl_multi_wakeup) interrupts
// from another thread: stopping never waits for a timeout, and waiting never spins.
//
// THREAD: thread-bound to the reflector thread that owns it, except wake(), which any thread
// may call.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "kube/config.hpp"
#include "kube/curl.hpp"

namespace knp::host::kube {

struct HttpOptions {
    std::chrono::milliseconds connectTimeout{10000};
    std::string userAgent = "knp/0.1";
};

class HttpSession {
public:
    // Fails when libcurl refuses a TLS setting (e.g. no blob support).
    static Result<std::unique_ptr<HttpSession>> create(const ClusterConfig& config, TokenSource& tokens,
                                                       const std::atomic<bool>& stop, const HttpOptions& options = {});
    ~HttpSession();
    HttpSession(const HttpSession&) = delete;
    HttpSession& operator=(const HttpSession&) = delete;

    struct Request {
        std::string target;                    // path and query below the server URL
        std::chrono::milliseconds timeout{0};  // whole request; 0 = none
        std::chrono::seconds idleTimeout{0};   // abort when no byte arrives for this long; 0 = none
        size_t maxBody = size_t{1} << 30;      // buffered bodies (LIST pages)
        // 2xx bodies go here chunk by chunk instead of into Response::body; return false to
        // abort the transfer (Response::aborted).
        std::function<bool(std::string_view)> onBody;
    };
    struct Response {
        long status = 0;   // 0: no HTTP response at all
        std::string body;  // buffered 2xx body, or the first 64 KiB of an error body
        std::optional<std::chrono::milliseconds> retryAfter;
        std::optional<Error> failure;  // transport failure (connect, TLS, timeout, cut stream)
        bool aborted = false;          // onBody returned false
        bool stopped = false;          // stop was requested
        bool timedOut = false;         // the request or idle timeout fired
    };
    Response get(const Request& request);

    // Sleeps up to `d`; false when stop was requested (at once, not after `d`).
    bool sleepFor(std::chrono::milliseconds d);
    void wake() noexcept;  // any thread

    // "https://host:port/prefix" as requests are sent (with tls-server-name, that name).
    const std::string& baseUrl() const noexcept { return base_; }

private:
    HttpSession(TokenSource& tokens, const std::atomic<bool>& stop) : tokens_(tokens), stop_(stop) {}
    Status configure(const ClusterConfig& config, const HttpOptions& options);
    static size_t onWrite(char* data, size_t size, size_t n, void* self);

    TokenSource& tokens_;
    const std::atomic<bool>& stop_;
    CurlMulti multi_;
    CurlEasy easy_;
    CurlSlist connectTo_;
    std::string base_;
    std::string hostHeader_;
    char errbuf_[CURL_ERROR_SIZE] = {};
    // Per request.
    const Request* req_ = nullptr;
    Response* resp_ = nullptr;
};

}  // namespace knp::host::kube
