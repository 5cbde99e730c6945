#include "ops/ops_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <optional>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include "common/log.hpp"

namespace knp::host {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using unixsock = asio::local::stream_protocol;

namespace {

constexpr auto kHttpTimeout = std::chrono::seconds(10);
constexpr auto kControlIdle = std::chrono::seconds(60);
// Limits: a scraper or a local client cannot make the ops thread hold unbounded state.
constexpr size_t kMaxSessions = 64;  // per endpoint
constexpr size_t kMaxControlLine = 64 * 1024;
constexpr uint32_t kMaxHeader = 8 * 1024;
constexpr uint64_t kMaxBody = 4 * 1024;

std::string endpointText(const tcp::endpoint& ep) {
    const auto a = ep.address();
    return a.is_v6() ? fmt::format("[{}]:{}", a.to_string(), ep.port())
                     : fmt::format("{}:{}", a.to_string(), ep.port());
}

struct Query {
    bool verbose = false;
    std::vector<std::string> exclude;
};

Query parseQuery(std::string_view q) {
    Query out;
    while (!q.empty()) {
        size_t amp = q.find('&');
        std::string_view kv = q.substr(0, amp);
        q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
        size_t eq = kv.find('=');
        std::string_view key = kv.substr(0, eq);
        std::string_view value = eq == std::string_view::npos ? std::string_view() : kv.substr(eq + 1);
        if (key == "verbose") out.verbose = value != "false" && value != "0";
        if (key == "exclude" && !value.empty()) out.exclude.emplace_back(value);
    }
    return out;
}

}  // namespace

Result<BindAddress> parseBindAddress(std::string_view text) {
    BindAddress out;
    std::string_view host, port;
    if (!text.empty() && text.front() == '[') {
        size_t close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
            return makeError("--metrics-bind-address {:?}: expected [ADDRESS]:PORT", text);
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        size_t colon = text.rfind(':');
        if (colon == std::string_view::npos)
            return makeError("--metrics-bind-address {:?}: expected HOST:PORT or :PORT", text);
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos)
            return makeError("--metrics-bind-address {:?}: write an IPv6 address in brackets, [ADDRESS]:PORT", text);
    }
    unsigned n = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
    if (port.empty() || ec != std::errc() || end != port.data() + port.size() || n > 65535)
        return makeError("--metrics-bind-address {:?}: port {:?} must be a number in 0..65535", text, port);
    out.port = static_cast<uint16_t>(n);
    if (!host.empty()) {
        boost::system::error_code aec;
        (void)asio::ip::make_address(std::string(host), aec);
        if (aec) return makeError("--metrics-bind-address {:?}: {:?} is not an IP address", text, host);
        out.host = host;
    }
    return out;
}

struct OpsServer::Impl {
    OpsHandlers handlers;
    // Declared before the io_context: sessions destroyed with it still update them.
    size_t httpSessions = 0;  // ops thread only
    size_t controlSessions = 0;
    std::string socketPath;
    struct stat socketStat {};

    asio::io_context ioc{1};
    std::optional<tcp::acceptor> http;
    std::optional<unixsock::acceptor> control;

    Status bindHttp(const BindAddress& a, std::string_view text);
    Status bindControl(const std::string& path);
    void acceptHttp();
    void acceptControl();
    http::response<http::string_body> route(const http::request<http::string_body>& req) const;
    void removeSocket() noexcept;
};

namespace {

class HttpSession : public std::enable_shared_from_this<HttpSession> {
public:
    HttpSession(tcp::socket socket, OpsServer::Impl& server) : stream_(std::move(socket)), server_(server) {
        ++server_.httpSessions;
    }
    ~HttpSession() { --server_.httpSessions; }

    void read() {
        parser_.emplace();
        parser_->header_limit(kMaxHeader);
        parser_->body_limit(kMaxBody);
        stream_.expires_after(kHttpTimeout);
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](beast::error_code ec, size_t) { self->onRead(ec); });
    }

private:
    void onRead(beast::error_code ec) {
        if (ec == http::error::end_of_stream) return shutdown();
        if (ec) return;  // timeout, reset or a malformed request: drop the connection
        http::request<http::string_body> req = parser_->release();
        response_ = server_.route(req);
        response_.keep_alive(req.keep_alive());
        response_.prepare_payload();
        http::async_write(stream_, response_, [self = shared_from_this()](beast::error_code wec, size_t) {
            if (wec) return;
            if (!self->response_.keep_alive()) return self->shutdown();
            self->read();
        });
    }
    void shutdown() {
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    }

    beast::tcp_stream stream_;
    OpsServer::Impl& server_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::string_body> response_;
};

class ControlSession : public std::enable_shared_from_this<ControlSession> {
public:
    ControlSession(unixsock::socket socket, OpsServer::Impl& server)
        : socket_(std::move(socket)), server_(server), buffer_(kMaxControlLine), idle_(socket_.get_executor()) {
        ++server_.controlSessions;
    }
    ~ControlSession() { --server_.controlSessions; }

    void read() {
        idle_.expires_after(kControlIdle);
        idle_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
            if (ec) return;
            if (auto self = weak.lock()) self->socket_.close();
        });
        asio::async_read_until(
            socket_, buffer_, '\n',
            [self = shared_from_this()](boost::system::error_code ec, size_t n) { self->onLine(ec, n); });
    }

private:
    void onLine(boost::system::error_code ec, size_t n) {
        idle_.cancel();
        if (ec == asio::error::not_found) {
            json::object err{{"ok", false}, {"error", "request line longer than 64 KiB"}};
            return reply(std::move(err), false);
        }
        if (ec) return;
        auto begin = asio::buffers_begin(buffer_.data());
        std::string line(begin, begin + static_cast<ptrdiff_t>(n - 1));
        buffer_.consume(n);
        reply(handle(line), true);
    }
    json::object handle(std::string_view line) const {
        boost::system::error_code ec;
        json::value v = json::parse(line, ec);
        if (ec || !v.is_object()) return {{"ok", false}, {"error", "a request is one JSON object per line"}};
        try {
            return server_.handlers.control(v.as_object());
        } catch (const std::exception& e) {
            return {{"ok", false}, {"error", fmt::format("internal error: {}", e.what())}};
        }
    }
    void reply(json::object response, bool more) {
        out_ = json::serialize(response);
        out_.push_back('\n');
        asio::async_write(socket_, asio::buffer(out_),
                          [self = shared_from_this(), more](boost::system::error_code ec, size_t) {
                              if (!ec && more) self->read();
                          });
    }

    unixsock::socket socket_;
    OpsServer::Impl& server_;
    asio::streambuf buffer_;
    asio::steady_timer idle_;
    std::string out_;
};

}  // namespace

Status OpsServer::Impl::bindHttp(const BindAddress& a, std::string_view text) {
    auto tryBind = [&](const tcp::endpoint& ep, bool dualStack) {
        boost::system::error_code ec;
        tcp::acceptor acc(ioc);
        if (acc.open(ep.protocol(), ec); ec) return ec;
        acc.set_option(asio::socket_base::reuse_address(true), ec);
        if (dualStack) acc.set_option(asio::ip::v6_only(false), ec);
        if (acc.bind(ep, ec); ec) return ec;
        if (acc.listen(asio::socket_base::max_listen_connections, ec); ec) return ec;
        http.emplace(std::move(acc));
        return ec;
    };
    boost::system::error_code ec;
    if (a.host.empty()) {
        // Every address, both families on one socket; IPv4 only where IPv6 is unavailable.
        ec = tryBind(tcp::endpoint(tcp::v6(), a.port), true);
        if (ec && ec != asio::error::address_in_use) ec = tryBind(tcp::endpoint(tcp::v4(), a.port), false);
    } else {
        ec = tryBind(tcp::endpoint(asio::ip::make_address(a.host), a.port), false);
    }
    if (ec) return makeError("--metrics-bind-address {:?}: {}", text, ec.message());
    return okStatus();
}

Status OpsServer::Impl::bindControl(const std::string& path) {
    if (path.size() >= sizeof(sockaddr_un::sun_path))
        return makeError("--socket {:?}: longer than a unix socket path may be ({} bytes)", path,
                         sizeof(sockaddr_un::sun_path) - 1);
    // The directory is knpd's (0700) when knpd creates it; an existing one is left as it is.
    std::filesystem::path dir = std::filesystem::path(path).parent_path();
    if (!dir.empty() && ::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return makeError("--socket {:?}: cannot create {}: {}", path, dir.string(), std::strerror(errno));
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) return makeError("--socket {:?}: exists and is not a socket", path);
        unixsock::socket probe(ioc);
        boost::system::error_code ec;
        probe.connect(unixsock::endpoint(path), ec);
        if (!ec) return makeError("--socket {:?}: another knpd is serving it", path);
        ::unlink(path.c_str());  // left behind by a knpd that died
    }
    boost::system::error_code ec;
    unixsock::acceptor acc(ioc);
    if (acc.open(unixsock(), ec); !ec) acc.bind(unixsock::endpoint(path), ec);
    if (ec) return makeError("--socket {:?}: {}", path, ec.message());
    // Root (or knpd's own user) only. Until chmod the node has the umask's mode; peers are
    // also checked by credentials on accept, so that window admits nobody.
    if (::chmod(path.c_str(), 0600) != 0 || ::lstat(path.c_str(), &socketStat) != 0) {
        ::unlink(path.c_str());
        return makeError("--socket {:?}: {}", path, std::strerror(errno));
    }
    if (acc.listen(asio::socket_base::max_listen_connections, ec); ec) {
        ::unlink(path.c_str());
        return makeError("--socket {:?}: listen: {}", path, ec.message());
    }
    socketPath = path;
    control.emplace(std::move(acc));
    return okStatus();
}

void OpsServer::Impl::removeSocket() noexcept {
    if (socketPath.empty()) return;
    // Only our own socket: a successor may already have replaced it.
    struct stat st {};
    if (::lstat(socketPath.c_str(), &st) == 0 && st.st_dev == socketStat.st_dev && st.st_ino == socketStat.st_ino)
        ::unlink(socketPath.c_str());
    socketPath.clear();
}

void OpsServer::Impl::acceptHttp() {
    if (!http) return;
    http->async_accept([this](boost::system::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted) return;
        if (!ec && httpSessions < kMaxSessions) std::make_shared<HttpSession>(std::move(socket), *this)->read();
        acceptHttp();
    });
}

void OpsServer::Impl::acceptControl() {
    if (!control) return;
    control->async_accept([this](boost::system::error_code ec, unixsock::socket socket) {
        if (ec == asio::error::operation_aborted) return;
        if (!ec && controlSessions < kMaxSessions) {
            ucred cred{};
            socklen_t len = sizeof cred;
            if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
                (cred.uid == 0 || cred.uid == ::geteuid())) {
                std::make_shared<ControlSession>(std::move(socket), *this)->read();
            } else {
                logf(LogLevel::Warning, "knpd: control socket: refused a client of uid {}", cred.uid);
            }
        }
        acceptControl();
    });
}

http::response<http::string_body> OpsServer::Impl::route(const http::request<http::string_body>& req) const {
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::server, "knpd");
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    if (req.method() != http::verb::get) {
        res.result(http::status::method_not_allowed);
        res.set(http::field::allow, "GET");
        res.body() = "method not allowed\n";
        return res;
    }
    std::string_view target(req.target().data(), req.target().size());
    size_t q = target.find('?');
    std::string_view path = target.substr(0, q);
    Query query = parseQuery(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));

    if (path == "/metrics" && handlers.metrics) {
        res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        res.body() = handlers.metrics();
        return res;
    }
    // /livez, /readyz, /healthz (readyz), and /<kind>/<check> for one check.
    for (auto [prefix, checks] : {std::pair{std::string_view("/livez"), handlers.livez},
                                  std::pair{std::string_view("/readyz"), handlers.readyz},
                                  std::pair{std::string_view("/healthz"), handlers.readyz}}) {
        if (checks == nullptr || !path.starts_with(prefix)) continue;
        std::string_view rest = path.substr(prefix.size());
        if (!rest.empty() && (rest.front() != '/' || rest.size() == 1)) continue;
        std::string_view only = rest.empty() ? std::string_view() : rest.substr(1);
        HealthChecks::Report report = checks->run(only, query.exclude);
        res.result(report.ok ? http::status::ok : http::status::internal_server_error);
        res.body() = checks->format(report, query.verbose) + "\n";
        return res;
    }
    res.result(http::status::not_found);
    res.body() = "404 page not found\n";
    return res;
}

Result<std::unique_ptr<OpsServer>> OpsServer::start(const OpsOptions& options, OpsHandlers handlers) {
    std::unique_ptr<OpsServer> self(new OpsServer());
    self->impl_ = std::make_unique<Impl>();
    Impl& impl = *self->impl_;
    impl.handlers = std::move(handlers);
    auto tolerable = [&](Status s, std::string_view without) -> Status {
        if (s || !options.tolerateBindErrors) return s;
        logf(LogLevel::Error, "knpd: {}; serving no {}", s.error().message, without);
        return okStatus();
    };
    if (!options.metricsBindAddress.empty() && options.metricsBindAddress != "0") {
        auto a = parseBindAddress(options.metricsBindAddress);
        if (!a) return std::move(a).error();
        Status s = tolerable(impl.bindHttp(*a, options.metricsBindAddress), "/metrics, /livez or /readyz");
        if (!s) return std::move(s).error();
        if (impl.http) {
            auto ep = impl.http->local_endpoint();
            self->httpEndpoint_ = endpointText(ep);
            self->httpPort_ = ep.port();
        }
    }
    if (!options.socketPath.empty()) {
        Status s = tolerable(impl.bindControl(options.socketPath), "control socket");
        if (!s) return std::move(s).error();
    }
    impl.acceptHttp();
    impl.acceptControl();
    self->thread_ = std::thread([&impl] {
        while (true) {
            try {
                impl.ioc.run();
                return;
            } catch (const std::exception& e) {
                logf(LogLevel::Error, "knpd: ops thread: {}", e.what());
            }
        }
    });
    return self;
}

bool OpsServer::socketServed() const noexcept { return impl_ && impl_->control.has_value(); }

void OpsServer::stop() {
    if (!impl_) return;
    impl_->ioc.stop();
    if (thread_.joinable()) thread_.join();
    boost::system::error_code ec;
    if (impl_->http) impl_->http->close(ec);
    if (impl_->control) impl_->control->close(ec);
    impl_->removeSocket();
}

OpsServer::~OpsServer() {
    stop();
    impl_.reset();  // pending sessions are destroyed with the io_context
}

}  // namespace knp::host
