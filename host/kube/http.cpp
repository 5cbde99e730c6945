#include "kube/http.hpp"

#include <algorithm>
#include <climits>
#include <exception>
#include <mutex>

#include "kube/backoff.hpp"

namespace knp::host::kube {

namespace {

constexpr size_t kMaxErrorBody = 64 * 1024;

std::string urlPart(CURLU* u, CURLUPart part, unsigned flags = 0) {
    char* out = nullptr;
    if (curl_url_get(u, part, &out, flags) != CURLUE_OK) return {};
    CurlChars owned(out);
    return std::string(out);
}

}  // namespace

Status curlGlobalInit() {
    static std::once_flag once;
    static CURLcode rc = CURLE_OK;
    std::call_once(once, [] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
    if (rc != CURLE_OK) return makeError("curl_global_init: {}", curl_easy_strerror(rc));
    return okStatus();
}

Result<std::unique_ptr<HttpSession>> HttpSession::create(const ClusterConfig& config, TokenSource& tokens,
                                                         const std::atomic<bool>& stop, const HttpOptions& options) {
    if (auto s = curlGlobalInit(); !s) return std::move(s).error();
    std::unique_ptr<HttpSession> s(new HttpSession(tokens, stop));
    if (auto st = s->configure(config, options); !st) return std::move(st).error();
    return s;
}

HttpSession::~HttpSession() = default;

Status HttpSession::configure(const ClusterConfig& c, const HttpOptions& o) {
    multi_.reset(curl_multi_init());
    easy_.reset(curl_easy_init());
    if (!multi_ || !easy_) return makeError("libcurl: cannot allocate a handle");
    CURL* e = easy_.get();

    CurlUrl u(curl_url());
    if (!u || curl_url_set(u.get(), CURLUPART_URL, c.server.c_str(), 0) != CURLUE_OK)
        return makeError("server {:?}: not a URL", c.server);
    std::string scheme = urlPart(u.get(), CURLUPART_SCHEME);
    std::string host = urlPart(u.get(), CURLUPART_HOST);
    std::string port = urlPart(u.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
    std::string path = urlPart(u.get(), CURLUPART_PATH);
    while (!path.empty() && path.back() == '/') path.pop_back();
    if (!c.tlsServerName.empty()) {
        // Verify the certificate for (and send SNI of) tls-server-name while connecting to
        // the configured address: address the URL to that name and pin it to the real host.
        base_ = fmt::format("{}://{}:{}{}", scheme, c.tlsServerName, port, path);
        connectTo_.reset(
            curl_slist_append(nullptr, fmt::format("{}:{}:{}:{}", c.tlsServerName, port, host, port).c_str()));
        hostHeader_ = fmt::format("Host: {}:{}", host, port);
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, connectTo_.get());
    } else {
        base_ = fmt::format("{}://{}:{}{}", scheme, host, port, path);
    }

    auto set = [&](CURLoption opt, auto value, const char* what) -> Status {
        CURLcode rc = curl_easy_setopt(e, opt, value);
        if (rc != CURLE_OK) return makeError("libcurl: {}: {}", what, curl_easy_strerror(rc));
        return okStatus();
    };
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf_);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &HttpSession::onWrite);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (auto s = set(CURLOPT_PROTOCOLS_STR, "https,http", "protocols"); !s) return s;
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o.connectTimeout.count()));
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
    curl_easy_setopt(e, CURLOPT_USERAGENT, o.userAgent.c_str());
    // HTTPS_PROXY/NO_PROXY from the environment apply, as they do for client-go.

    // TLS: verified unless the kubeconfig says insecure-skip-tls-verify.
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, c.insecureSkipTlsVerify ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, c.insecureSkipTlsVerify ? 0L : 2L);
    // PEM bytes go to libcurl as blobs (copied into the handle, never to a file); files by path.
    auto pem = [&](CURLoption blobOpt, CURLoption fileOpt, const std::string& bytes, const std::string& path,
                   const char* what) -> Status {
        if (!bytes.empty()) {
            curl_blob blob{const_cast<char*>(bytes.data()), bytes.size(), CURL_BLOB_COPY};
            return set(blobOpt, &blob, what);
        }
        if (!path.empty()) return set(fileOpt, path.c_str(), what);
        return okStatus();
    };
    if (!c.caPem.empty() || !c.caFile.empty()) {
        // The configured CA is the only trust anchor (as client-go): no system CA directory.
        if (auto s = set(CURLOPT_CAPATH, static_cast<const char*>(nullptr), "CA path"); !s) return s;
        if (auto s = pem(CURLOPT_CAINFO_BLOB, CURLOPT_CAINFO, c.caPem, c.caFile, "certificate-authority"); !s) return s;
    }
    curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
    if (auto s = pem(CURLOPT_SSLCERT_BLOB, CURLOPT_SSLCERT, c.clientCertPem, c.clientCertFile, "client-certificate");
        !s)
        return s;
    if (auto s = pem(CURLOPT_SSLKEY_BLOB, CURLOPT_SSLKEY, c.clientKeyPem, c.clientKeyFile, "client-key"); !s) return s;
    return okStatus();
}

size_t HttpSession::onWrite(char* data, size_t size, size_t n, void* self) {
    auto* s = static_cast<HttpSession*>(self);
    size_t len = size * n;
    long code = 0;
    curl_easy_getinfo(s->easy_.get(), CURLINFO_RESPONSE_CODE, &code);
    Response& r = *s->resp_;
    // No exception may unwind through libcurl's C frames.
    try {
        if (code >= 200 && code < 300) {
            if (s->req_->onBody) {
                if (s->req_->onBody(std::string_view(data, len))) return len;
                r.aborted = true;
                return 0;
            }
            if (r.body.size() + len > s->req_->maxBody) {
                r.failure = makeError("response body larger than {} bytes", s->req_->maxBody);
                return 0;
            }
            r.body.append(data, len);
            return len;
        }
        if (r.body.size() < kMaxErrorBody) r.body.append(data, std::min(len, kMaxErrorBody - r.body.size()));
        return len;
    } catch (const std::exception& e) {
        r.failure = makeError("reading the response: {}", e.what());
        return 0;
    }
}

HttpSession::Response HttpSession::get(const Request& request) {
    Response resp;
    if (stop_.load()) {
        resp.stopped = true;
        return resp;
    }
    CURL* e = easy_.get();
    req_ = &request;
    resp_ = &resp;
    std::string url = base_ + request.target;
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, request.idleTimeout.count() > 0 ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, static_cast<long>(request.idleTimeout.count()));
    CurlSlist headers(curl_slist_append(nullptr, "Accept: application/json"));
    std::string token = tokens_.token();
    if (!token.empty()) headers.reset(curl_slist_append(headers.release(), ("Authorization: Bearer " + token).c_str()));
    if (!hostHeader_.empty()) headers.reset(curl_slist_append(headers.release(), hostHeader_.c_str()));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers.get());
    errbuf_[0] = 0;

    CURLcode result = CURLE_OK;
    bool done = false;
    curl_multi_add_handle(multi_.get(), e);
    while (true) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(multi_.get(), &running);
        if (mc != CURLM_OK) {
            resp.failure = makeError("libcurl: {}", curl_multi_strerror(mc));
            break;
        }
        int queued = 0;
        while (CURLMsg* m = curl_multi_info_read(multi_.get(), &queued)) {
            if (m->msg == CURLMSG_DONE) {
                result = m->data.result;
                done = true;
            }
        }
        if (done) break;
        if (stop_.load()) {
            resp.stopped = true;
            break;
        }
        curl_multi_poll(multi_.get(), nullptr, 0, 1000, nullptr);
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp.status);
    if (resp.status != 0) {
        curl_header* h = nullptr;
        if (curl_easy_header(e, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK && h && h->value)
            resp.retryAfter = parseRetryAfter(h->value, std::chrono::system_clock::now());
    }
    curl_multi_remove_handle(multi_.get(), e);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));

    if (done && result != CURLE_OK && !resp.failure && !(resp.aborted && result == CURLE_WRITE_ERROR)) {
        resp.timedOut = result == CURLE_OPERATION_TIMEDOUT;
        resp.failure = makeError("{}", errbuf_[0] ? errbuf_ : curl_easy_strerror(result));
    }
    req_ = nullptr;
    resp_ = nullptr;
    return resp;
}

bool HttpSession::sleepFor(std::chrono::milliseconds d) {
    auto deadline = std::chrono::steady_clock::now() + d;
    while (!stop_.load()) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return true;
        curl_multi_poll(multi_.get(), nullptr, 0, static_cast<int>(std::min<int64_t>(left.count(), INT_MAX)), nullptr);
    }
    return false;
}

void HttpSession::wake() noexcept {
    if (multi_) curl_multi_wakeup(multi_.get());
}

}  // namespace knp::host::kube
