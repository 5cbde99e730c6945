// HTTPS for the lab API server: Boost.Beast over Asio SSL. One connection is one Session;
// requests are read one at a time (HTTP/1.1 keep-alive) and handed to the Api; a watch turns its
// connection into a chunked stream that ends with the watch (Connection: close).
//
// THREAD: everything runs on the one thread that runs the io_context: no locks anywhere, and
// the Store, the WatchHub and every Session see one consistent order of events.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "api.hpp"
#include "common/result.hpp"

namespace boost::asio {
class io_context;
}

namespace knp::lab {

struct ServerLimits {
    // Request bodies: the real API server's limit is 3 MiB (an etcd value is at most 1.5 MiB);
    // anything larger is refused before it is buffered.
    std::size_t maxBodyBytes = 3 * 1024 * 1024;
    std::size_t maxConnections = 1024;
    // A watch whose client does not read falls behind; past this many queued bytes its stream
    // is ended (as the API server drops a slow watcher), and the client resumes from its last RV.
    std::size_t watchQueueBytes = 256 * 1024 * 1024;
    std::chrono::seconds bookmarkInterval{60};
    std::chrono::seconds idleTimeout{120};  // longer than Go's 90 s idle-connection timeout
};

class Server {
public:
    Server(boost::asio::io_context& ioc, Api& api, WatchHub& hub, ServerLimits limits);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Binds "127.0.0.1:0", "[::1]:6443", …; returns the bound "host:port" (brackets for IPv6).
    host::Result<std::string> listen(const std::string& address, const std::string& certPem, const std::string& keyPem);
    // Stops accepting and ends every connection; the io_context then runs out of work.
    void stop();
    // No connection left.
    bool idle() const;

    struct Impl;  // public so the sessions in http_server.cpp can name it

private:
    std::shared_ptr<Impl> impl_;  // shared with the sessions
};

}  // namespace knp::lab
