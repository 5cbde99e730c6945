// The ops thread: one Boost.Asio event loop serving
//   - HTTP (Boost.Beast) on --metrics-bind-address: /metrics, /livez, /readyz, /healthz;
//   - the local control socket (--socket): line-delimited JSON requests for knpctl
//     (explain, status, plugins), one JSON object per line each way.
//
// Every handler runs on the ops thread, one at a time; nothing here touches the packet path.
// The control socket is created mode 0600 in a directory knpd creates mode 0700, refuses peers
// that are neither root nor knpd's own user (SO_PEERCRED), and is removed on stop.
//
// THREAD: start/stop (and the destructor) on the control thread; the handlers on the ops thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include <boost/json/object.hpp>

#include "common/result.hpp"
#include "ops/control_client.hpp"
#include "ops/health.hpp"

namespace knp::host {

struct OpsOptions {
    // host:port, [v6]:port or :port (every address, dual-stack); "" or "0" disables HTTP.
    std::string metricsBindAddress = ":9080";
    // The control socket; "" disables it.
    std::string socketPath = kDefaultControlSocket;
    // A port or socket another process holds: log an error and serve without that endpoint
    // (knpd: enforcement must not depend on its metrics) instead of failing start().
    bool tolerateBindErrors = false;
};

struct OpsHandlers {
    std::function<std::string()> metrics;  // Prometheus text
    const HealthChecks* livez = nullptr;
    const HealthChecks* readyz = nullptr;  // also behind /healthz
    // One control request → its response object ({"ok":true,...} or {"ok":false,"error":...}).
    std::function<boost::json::object(const boost::json::object&)> control;
};

struct BindAddress {
    std::string host;  // empty: every address
    uint16_t port = 0;
};
// Parses --metrics-bind-address; the host must be an IP literal (or empty).
Result<BindAddress> parseBindAddress(std::string_view text);

class OpsServer {
public:
    // Binds both endpoints on the calling thread (so a taken port or a live socket fails
    // start-up with one line, unless tolerated), then serves them on the ops thread. A malformed
    // address always fails.
    static Result<std::unique_ptr<OpsServer>> start(const OpsOptions& options, OpsHandlers handlers);
    ~OpsServer();
    OpsServer(const OpsServer&) = delete;
    OpsServer& operator=(const OpsServer&) = delete;

    // Stops serving, joins the ops thread and removes the socket. Idempotent.
    void stop();
    // The HTTP endpoint as bound ("127.0.0.1:9080", "[::]:9080"); empty when disabled.
    const std::string& httpEndpoint() const noexcept { return httpEndpoint_; }
    uint16_t httpPort() const noexcept { return httpPort_; }
    bool socketServed() const noexcept;

    struct Impl;

private:
    OpsServer() = default;

    std::unique_ptr<Impl> impl_;
    std::thread thread_;
    std::string httpEndpoint_;
    uint16_t httpPort_ = 0;
};

}  // namespace knp::host
