#include "http_server.hpp"

#include <array>
#include <deque>
#include <optional>
#include <unordered_map>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "common/log.hpp"

namespace knp::lab {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using host::logf;
using host::LogLevel;

namespace {
// Watch events coalesce into chunks of about this size when many are queued (the API server
// also flushes whatever it has buffered); a client must split events on newlines, not chunks.
constexpr std::size_t kChunkBytes = 64 * 1024;
constexpr std::chrono::seconds kHandshakeTimeout{30};
constexpr std::chrono::seconds kLingerTimeout{5};
}  // namespace

class Session;

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
    net::io_context& ioc;
    Api& api;
    WatchHub& hub;
    ServerLimits limits;
    ssl::context tls{ssl::context::tls_server};
    tcp::acceptor acceptor{ioc};
    std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
    bool stopping = false;

    Impl(net::io_context& c, Api& a, WatchHub& h, ServerLimits l) : ioc(c), api(a), hub(h), limits(l) {}
    void accept();
};

// One TLS connection. THREAD: io_context thread; kept alive by the handlers it has pending.
class Session : public std::enable_shared_from_this<Session>, public WatchSink {
public:
    // Holds the server's state alive: a session's last handlers may run while the io_context is
    // destroyed, after the Server.
    Session(tcp::socket socket, std::shared_ptr<Server::Impl> server)
        : keep_(std::move(server)),
          server_(*keep_),
          stream_(std::move(socket), server_.tls),
          timeoutTimer_(server_.ioc),
          bookmarkTimer_(server_.ioc),
          lingerTimer_(server_.ioc) {}

    ~Session() override {
        unregister();
        server_.sessions.erase(this);
    }

    void start() {
        server_.sessions.emplace(this, weak_from_this());
        beast::get_lowest_layer(stream_).expires_after(kHandshakeTimeout);
        stream_.async_handshake(ssl::stream_base::server, [self = shared_from_this()](beast::error_code ec) {
            if (ec) return self->abort();
            self->readRequest();
        });
    }

    // Ends the connection now (server shutdown).
    void abort() {
        closed_ = true;
        unregister();
        timeoutTimer_.cancel();
        bookmarkTimer_.cancel();
        lingerTimer_.cancel();
        beast::error_code ec;
        beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ec);
        beast::get_lowest_layer(stream_).close();
    }

    // --- WatchSink ---
    void deliver(EventType type, const ObjectPtr& object) override {
        if (!plan_ || finishing_ || stalled_ || closed_) return;
        enqueue(server_.api.eventLine(*plan_, type, object));
        pump();
    }

    void signal(StreamSignal s) override {
        if (!plan_ || closed_) return;
        switch (s) {
            case StreamSignal::Cut:
                cutPending_ = true;
                break;
            case StreamSignal::Stall:
                // A hung server: nothing more, not even the end of the watch at its timeout.
                stalled_ = true;
                unregister();
                timeoutTimer_.cancel();
                bookmarkTimer_.cancel();
                return;
            case StreamSignal::Close:
                finish();
                break;
            case StreamSignal::Bookmark:
                if (plan_->bookmarks && !finishing_) enqueue(server_.api.bookmarkLine(*plan_, false));
                break;
        }
        pump();
    }

private:
    struct Item {
        std::string data;
        bool splittable;  // a whole event line, which the splitChunks fault may cut in two chunks
    };

    void readRequest() {
        parser_.emplace();
        parser_->body_limit(server_.limits.maxBodyBytes);
        parser_->header_limit(64 * 1024);
        beast::get_lowest_layer(stream_).expires_after(server_.limits.idleTimeout);
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onRequest(ec); });
    }

    void onRequest(beast::error_code ec) {
        if (ec == http::error::body_limit) {
            ApiError e{413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728", {}, 0};
            return respond(Api::errorResponse(e), false);
        }
        if (ec) return abort();  // closed by the client, timed out, or not HTTP
        auto& msg = parser_->get();
        Request req;
        req.method = std::string(msg.method_string());
        req.target = std::string(msg.target());
        req.accept = std::string(msg[http::field::accept]);
        req.contentType = std::string(msg[http::field::content_type]);
        req.authorization = std::string(msg[http::field::authorization]);
        req.userAgent = std::string(msg[http::field::user_agent]);
        req.body = std::move(msg.body());
        bool keepAlive = msg.keep_alive();
        Outcome out = server_.api.handle(req);
        if (auto* r = std::get_if<Response>(&out)) {
            logf(LogLevel::Debug, "{} {} {}", req.method, req.target, r->status);
            return respond(std::move(*r), keepAlive);
        }
        logf(LogLevel::Debug, "{} {} watch", req.method, req.target);
        startWatch(std::move(std::get<WatchPlan>(out)));
    }

    void respond(Response r, bool keepAlive) {
        res_.emplace();
        res_->result(static_cast<http::status>(r.status));
        res_->version(11);
        res_->set(http::field::server, "knp-lab-apiserver");
        res_->set(http::field::content_type, r.contentType);
        res_->set(http::field::cache_control, "no-cache, private");
        for (const auto& [k, v] : r.headers) res_->set(k, v);
        res_->body() = std::move(r.body);
        res_->keep_alive(keepAlive);
        res_->prepare_payload();
        http::async_write(stream_, *res_, [self = shared_from_this(), keepAlive](beast::error_code ec, std::size_t) {
            self->res_.reset();
            if (ec || !keepAlive) return self->linger();
            self->readRequest();
        });
    }

    // --- watch streaming ---

    void startWatch(WatchPlan plan) {
        plan_ = std::move(plan);
        beast::get_lowest_layer(stream_).expires_never();
        header_.emplace(http::status::ok, 11);
        header_->set(http::field::server, "knp-lab-apiserver");
        header_->set(http::field::content_type,
                     plan_->table ? "application/json;as=Table;v=v1;g=meta.k8s.io" : "application/json");
        header_->set(http::field::cache_control, "no-cache, private");
        header_->chunked(true);
        header_->keep_alive(false);
        serializer_.emplace(*header_);

        if (plan_->fault == StreamSignal::Stall) {
            stalled_ = true;
        } else {
            watchId_ = server_.hub.add(plan_->filter, this);
            for (const auto& [type, obj] : plan_->initial) enqueue(server_.api.eventLine(*plan_, type, obj));
            plan_->initial.clear();
            if (plan_->initialEventsEnd) enqueue(server_.api.bookmarkLine(*plan_, true));
            if (plan_->error) {
                enqueue(Api::errorLine(*plan_->error));
                finish();
            }
            if (plan_->fault == StreamSignal::Cut) cutPending_ = true;
            armTimers();
        }
        writing_ = true;
        http::async_write_header(stream_, *serializer_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            self->writing_ = false;
            if (ec) return self->abort();
            self->watchForDisconnect();
            self->pump();
        });
    }

    void armTimers() {
        timeoutTimer_.expires_after(plan_->timeout);
        timeoutTimer_.async_wait([self = shared_from_this()](beast::error_code ec) {
            if (ec || self->stalled_ || self->closed_) return;
            // As the API server does, a last bookmark tells the client where to resume.
            if (self->plan_->bookmarks && !self->finishing_)
                self->enqueue(self->server_.api.bookmarkLine(*self->plan_, false));
            self->finish();
            self->pump();
        });
        if (plan_->bookmarks) armBookmark();
    }

    void armBookmark() {
        bookmarkTimer_.expires_after(server_.limits.bookmarkInterval);
        bookmarkTimer_.async_wait([self = shared_from_this()](beast::error_code ec) {
            if (ec || self->stalled_ || self->closed_ || self->finishing_) return;
            self->enqueue(self->server_.api.bookmarkLine(*self->plan_, false));
            self->pump();
            self->armBookmark();
        });
    }

    // A read that completes only when the client closes (or sends garbage): the watch ends.
    void watchForDisconnect() {
        stream_.async_read_some(net::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return self->abort();
            self->watchForDisconnect();
        });
    }

    void enqueue(std::string line) {
        if (finishing_) return;
        queuedBytes_ += line.size();
        queue_.push_back(Item{std::move(line), true});
        if (queuedBytes_ > server_.limits.watchQueueBytes) {
            logf(LogLevel::Warning, "watch {}: client too slow ({} bytes queued), ending the stream", watchId_,
                 queuedBytes_);
            queue_.clear();
            queuedBytes_ = 0;
            finish();
        }
    }

    void finish() {
        finishing_ = true;
        unregister();
        timeoutTimer_.cancel();
        bookmarkTimer_.cancel();
    }

    void unregister() {
        if (watchId_) server_.hub.remove(watchId_);
        watchId_ = 0;
    }

    void pump() {
        if (writing_ || stalled_ || closed_ || lastSent_) return;
        if (cutPending_) return cut();
        if (queue_.empty()) {
            if (!finishing_) return;
            lastSent_ = true;
            writing_ = true;
            net::async_write(stream_, http::make_chunk_last(),
                             [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                 self->writing_ = false;
                                 if (ec) return self->abort();
                                 self->linger();
                             });
            return;
        }
        out_.clear();
        if (server_.api.faults().splitChunks && queue_.front().splittable && queue_.front().data.size() > 1) {
            Item& front = queue_.front();
            std::size_t half = front.data.size() / 2;
            out_ = front.data.substr(0, half);
            front.data.erase(0, half);
            front.splittable = false;
        } else {
            while (!queue_.empty() && (out_.empty() || out_.size() + queue_.front().data.size() <= kChunkBytes) &&
                   !(server_.api.faults().splitChunks && !out_.empty())) {
                out_ += queue_.front().data;
                queue_.pop_front();
            }
        }
        queuedBytes_ = queuedBytes_ > out_.size() ? queuedBytes_ - out_.size() : 0;
        writing_ = true;
        net::async_write(stream_, http::make_chunk(net::buffer(out_)),
                         [self = shared_from_this()](beast::error_code ec, std::size_t) {
                             self->writing_ = false;
                             if (ec) return self->abort();
                             self->pump();
                         });
    }

    // The cut fault: a chunk header announcing a whole event, half the event, then the TCP
    // connection ends without a TLS close_notify — what a crashed server or a dropped proxy does.
    void cut() {
        cutPending_ = false;
        out_ = queue_.empty() ? server_.api.bookmarkLine(*plan_, false) : queue_.front().data;
        std::size_t half = std::max<std::size_t>(1, out_.size() / 2);
        unregister();
        stalled_ = true;  // nothing else goes out
        writing_ = true;
        net::async_write(stream_, beast::buffers_cat(http::chunk_header(out_.size()), net::buffer(out_.data(), half)),
                         [self = shared_from_this()](beast::error_code, std::size_t) {
                             self->writing_ = false;
                             self->abort();
                         });
    }

    // After the last byte: half-close and wait for the client to close, so the kernel does not
    // reset a connection whose tail the client has not read yet.
    void linger() {
        beast::error_code ec;
        beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_send, ec);
        lingerTimer_.expires_after(kLingerTimeout);
        lingerTimer_.async_wait([self = shared_from_this()](beast::error_code e) {
            if (!e) self->abort();
        });
        if (!plan_) drain();  // a watch already has its read pending
    }

    // Reads and drops what the client still sends (the rest of a refused body) until it closes.
    void drain() {
        beast::get_lowest_layer(stream_).expires_never();
        stream_.async_read_some(net::buffer(scratch_), [self = shared_from_this()](beast::error_code e, std::size_t) {
            if (e) return self->abort();
            self->drain();
        });
    }

    std::shared_ptr<Server::Impl> keep_;
    Server::Impl& server_;
    beast::ssl_stream<beast::tcp_stream> stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::optional<http::response<http::string_body>> res_;

    std::optional<WatchPlan> plan_;
    std::optional<http::response<http::empty_body>> header_;
    std::optional<http::response_serializer<http::empty_body>> serializer_;
    std::uint64_t watchId_ = 0;
    std::deque<Item> queue_;
    std::size_t queuedBytes_ = 0;
    std::string out_;
    bool writing_ = false;
    bool finishing_ = false;
    bool lastSent_ = false;
    bool cutPending_ = false;
    bool stalled_ = false;
    bool closed_ = false;
    net::steady_timer timeoutTimer_;
    net::steady_timer bookmarkTimer_;
    net::steady_timer lingerTimer_;
    std::array<char, 1024> scratch_{};
};

void Server::Impl::accept() {
    acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
        if (self->stopping) return;
        if (!ec) {
            if (self->sessions.size() >= self->limits.maxConnections) {
                logf(LogLevel::Warning, "connection limit ({}) reached, refusing a connection",
                     self->limits.maxConnections);
                socket.close(ec);
            } else {
                std::make_shared<Session>(std::move(socket), self)->start();
            }
        }
        self->accept();
    });
}

Server::Server(net::io_context& ioc, Api& api, WatchHub& hub, ServerLimits limits)
    : impl_(std::make_shared<Impl>(ioc, api, hub, limits)) {}

Server::~Server() = default;

host::Result<std::string> Server::listen(const std::string& address, const std::string& certPem,
                                         const std::string& keyPem) {
    auto colon = address.rfind(':');
    if (colon == std::string::npos) return host::makeError("--listen \"{}\": want HOST:PORT", address);
    std::string hostPart = address.substr(0, colon);
    if (hostPart.size() >= 2 && hostPart.front() == '[' && hostPart.back() == ']')
        hostPart = hostPart.substr(1, hostPart.size() - 2);
    beast::error_code ec;
    auto ip = net::ip::make_address(hostPart, ec);
    if (ec) return host::makeError("--listen \"{}\": \"{}\" is not an IP address", address, hostPart);
    unsigned long port = 0;
    try {
        port = std::stoul(address.substr(colon + 1));
    } catch (...) {
        port = 65536;
    }
    if (port > 65535) return host::makeError("--listen \"{}\": bad port", address);

    auto& tls = impl_->tls;
    tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                    ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    tls.use_certificate_chain(net::buffer(certPem), ec);
    if (ec) return host::makeError("server certificate: {}", ec.message());
    tls.use_private_key(net::buffer(keyPem), ssl::context::pem, ec);
    if (ec) return host::makeError("server key: {}", ec.message());

    tcp::endpoint ep(ip, static_cast<unsigned short>(port));
    auto& acc = impl_->acceptor;
    acc.open(ep.protocol(), ec);
    if (!ec) acc.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acc.bind(ep, ec);
    if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return host::makeError("--listen {}: {}", address, ec.message());
    impl_->accept();
    auto bound = acc.local_endpoint();
    std::string h = bound.address().to_string();
    if (bound.address().is_v6()) h = "[" + h + "]";
    return h + ":" + std::to_string(bound.port());
}

void Server::stop() {
    impl_->stopping = true;
    beast::error_code ec;
    impl_->acceptor.close(ec);
    std::vector<std::shared_ptr<Session>> live;
    for (auto& [p, w] : impl_->sessions)
        if (auto s = w.lock()) live.push_back(std::move(s));
    for (auto& s : live) s->abort();
}

}  // namespace knp::lab

namespace knp::lab {
bool Server::idle() const { return impl_->sessions.empty(); }
}  // namespace knp::lab
