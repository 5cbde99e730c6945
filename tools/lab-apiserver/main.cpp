// knp-lab-apiserver: a small Kubernetes API server for tests, holding objects in memory and
// speaking the real REST and watch protocol over HTTPS, so real kubectl and knpd's watch client
// can be tested where no cluster can run. See README.md beside this file.
//
// THREAD: one thread runs one io_context, and everything (HTTP, store, watches, faults) runs on
// it: the order of events is the order of writes, with no locks.
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "api.hpp"
#include "common/log.hpp"
#include "http_server.hpp"
#include "pki.hpp"

using namespace knp::lab;
namespace host = knp::host;
namespace net = boost::asio;

namespace {

int fail(const std::string& message) {
    std::fprintf(stderr, "knp-lab-apiserver: error: %s\n", message.c_str());
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"knp-lab-apiserver: an in-memory Kubernetes API server for tests"};
    std::string listen = "127.0.0.1:0";
    std::string dir;
    std::vector<std::string> sans, crds, loads, hides;
    std::string token;
    std::string kubeVersion = "1.32";
    std::size_t history = 100000;
    ServerLimits limits;
    std::size_t maxWatchers = 1000;
    long bookmarkSeconds = 60, watchTimeout = 1800;
    bool noSystemNamespaces = false;
    int verbosity = 0;
    app.add_option("--listen", listen, "HOST:PORT to listen on; port 0 picks a free one")->capture_default_str();
    app.add_option("--dir", dir, "where the CA, certificate, token and kubeconfig are written")->required();
    app.add_option("--san", sans, "extra subject alternative name (IP or DNS) for the server certificate");
    app.add_option("--crd", crds, "serve a further kind: group/version/plural/Kind[/namespaced|cluster]");
    app.add_option("--load", loads, "create the objects of a YAML or JSON file (Lists flattened) at start-up");
    app.add_option("--hide", hides, "start with a resource hidden, as if its CRD were not installed (plural[.group])");
    app.add_option("--token", token, "the bearer token (default: random)");
    app.add_option("--kube-version", kubeVersion, "the Kubernetes version /version reports (1.MINOR)")
        ->capture_default_str();
    app.add_option("--history", history, "events kept for watches and reads from an older resourceVersion")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{1}, std::size_t{10000000}));
    app.add_option("--max-watchers", maxWatchers, "concurrent watches before 429")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{1}, std::size_t{100000}));
    app.add_option("--max-connections", limits.maxConnections, "concurrent connections")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{1}, std::size_t{100000}));
    app.add_option("--bookmark-interval", bookmarkSeconds, "seconds between bookmarks on watches that want them")
        ->capture_default_str()
        ->check(CLI::Range(1L, 3600L));
    app.add_option("--watch-timeout", watchTimeout, "seconds a watch without timeoutSeconds lasts")
        ->capture_default_str()
        ->check(CLI::Range(1L, 86400L));
    app.add_flag("--no-system-namespaces", noSystemNamespaces,
                 "do not create default, kube-system, kube-public and kube-node-lease");
    app.add_flag("-v", verbosity, "log every request (repeat for more)");
    CLI11_PARSE(app, argc, argv);
    if (verbosity > 0) host::setLogThreshold(host::LogLevel::Debug);

    std::string minor = kubeVersion;
    if (minor.starts_with("v")) minor.erase(0, 1);
    if (!minor.starts_with("1.") || minor.size() < 3) return fail("--kube-version: want 1.MINOR, e.g. 1.32");
    minor = minor.substr(2, minor.find('.', 2) == std::string::npos ? std::string::npos : minor.find('.', 2) - 2);

    Registry registry;
    for (const auto& c : crds)
        if (auto st = registry.addCrd(c); !st) return fail(st.error().message);
    for (const auto& h : hides) {
        ResourceType* rt = registry.findByName(h);
        if (!rt) return fail("--hide \"" + h + "\": unknown resource");
        rt->hidden = true;
    }

    auto pki = preparePki(dir, sans);
    if (!pki) return fail(pki.error().message);
    if (token.empty()) token = randomHex(24);

    Store store(registry, history);
    WatchHub hub(maxWatchers);
    store.setSink(&hub);
    if (!noSystemNamespaces) store.createSystemNamespaces();
    Faults faults;
    Auth auth(token);

    // Declared before the io_context: handlers still pending when it is destroyed reach these.
    ApiOptions apiOptions;
    apiOptions.kubeMinor = minor;
    apiOptions.defaultWatchTimeout = std::chrono::seconds(watchTimeout);
    limits.bookmarkInterval = std::chrono::seconds(bookmarkSeconds);
    std::string serverUrl;
    apiOptions.onToken = [&](const std::string& t) {
        if (auto st = writeCredentials(dir, serverUrl, pki->caCertPem, t); !st)
            host::logf(host::LogLevel::Error, "writing the new token: {}", st.error().message);
    };
    Api api(registry, store, hub, faults, auth, apiOptions);
    for (const auto& f : loads) {
        std::ifstream in(f);
        if (!in) return fail(f + ": cannot read");
        std::stringstream ss;
        ss << in.rdbuf();
        auto n = api.load(ss.str(), f);
        if (!n) return fail(n.error().message);
    }

    net::io_context ioc(1);
    Server server(ioc, api, hub, limits);
    auto bound = server.listen(listen, pki->certPem, pki->keyPem);
    if (!bound) return fail(bound.error().message);
    serverUrl = "https://" + bound.value();
    api.setServerAddress(bound.value());  // /api reports the address clients reach this server at
    if (auto st = writeCredentials(dir, serverUrl, pki->caCertPem, token); !st) return fail(st.error().message);

    net::signal_set signals(ioc, SIGINT, SIGTERM);
    net::steady_timer deadline(ioc);
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        host::logf(host::LogLevel::Info, "signal {}: shutting down", sig);
        server.stop();
        // The aborted operations complete at once; stop when the last connection is gone, or
        // after two seconds whatever is left.
        auto started = std::chrono::steady_clock::now();
        std::function<void()> poll = [&, started] {
            deadline.expires_after(std::chrono::milliseconds(20));
            deadline.async_wait([&, started](const boost::system::error_code& e) {
                if (e) return;
                if (server.idle() || std::chrono::steady_clock::now() - started > std::chrono::seconds(2))
                    return ioc.stop();
                poll();
            });
        };
        poll();
    });

    std::printf("listening %s\n", serverUrl.c_str());
    std::fflush(stdout);
    ioc.run();
    return 0;
}
