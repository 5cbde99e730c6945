// The ops server: HTTP routes on 127.0.0.1 (Boost.Beast), and the control socket's
// line-delimited JSON, permissions, stale-socket take-over and removal.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstring>
#include <filesystem>
#include <string>

#include "ops/control_client.hpp"
#include "ops/ops_server.hpp"
#include "sys/handles.hpp"

using namespace knp::host;
namespace json = boost::json;

namespace {

// Sends `request` bytes to 127.0.0.1:port and reads until the server closes.
std::string httpExchange(uint16_t port, const std::string& request) {
    knp::host::sys::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd);
    timeval tv{5, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
    std::string out;
    char buf[8192];
    ssize_t n;
    while ((n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
}

std::string get(uint16_t port, const std::string& target) {
    return httpExchange(port, "GET " + target + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
}

std::string body(const std::string& response) { return response.substr(response.find("\r\n\r\n") + 4); }

size_t count(const std::string& s, const std::string& what) {
    size_t n = 0;
    for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
    return n;
}

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/knp-ops-test-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

OpsHandlers testHandlers(HealthChecks& livez, HealthChecks& readyz) {
    OpsHandlers h;
    h.metrics = [] { return std::string("# HELP x X.\n# TYPE x gauge\nx 1\n"); };
    h.livez = &livez;
    h.readyz = &readyz;
    h.control = [](const json::object& req) {
        if (req.contains("boom")) throw std::runtime_error("boom");
        return json::object{{"ok", true}, {"result", req}};
    };
    return h;
}

}  // namespace

TEST_CASE("bind address: forms knpd accepts and the ones it refuses") {
    auto a = parseBindAddress(":9080");
    REQUIRE(a);
    CHECK(a->host.empty());
    CHECK(a->port == 9080);
    a = parseBindAddress("127.0.0.1:0");
    REQUIRE(a);
    CHECK(a->host == "127.0.0.1");
    a = parseBindAddress("[::1]:9090");
    REQUIRE(a);
    CHECK(a->host == "::1");
    CHECK(a->port == 9090);
    CHECK_FALSE(parseBindAddress("9080"));
    CHECK_FALSE(parseBindAddress("::1:9080"));
    CHECK_FALSE(parseBindAddress("localhost:9080"));
    CHECK_FALSE(parseBindAddress(":65536"));
    CHECK_FALSE(parseBindAddress("[::1]9080"));
    CHECK(parseBindAddress("host:1").error().message ==
          "--metrics-bind-address \"host:1\": \"host\" is not an IP address");
}

TEST_CASE("http: /metrics, /livez, /readyz, /healthz, one check, 404, 405, keep-alive") {
    HealthChecks livez("livez"), readyz("readyz");
    livez.add("ping", [] { return HealthResult{true, {}}; });
    auto synced = readyz.addFlag("watches-synced", "not yet");
    auto server = OpsServer::start({"127.0.0.1:0", ""}, testHandlers(livez, readyz));
    REQUIRE(server);
    uint16_t port = (*server)->httpPort();
    REQUIRE(port != 0);
    CHECK((*server)->httpEndpoint() == fmt::format("127.0.0.1:{}", port));

    std::string m = get(port, "/metrics");
    CHECK(m.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(m.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != std::string::npos);
    CHECK(body(m) == "# HELP x X.\n# TYPE x gauge\nx 1\n");

    CHECK(body(get(port, "/livez")) == "ok\n");
    CHECK(body(get(port, "/livez?verbose")) == "[+]ping ok\nlivez check passed\n");
    std::string r = get(port, "/readyz");
    CHECK(r.starts_with("HTTP/1.1 500"));
    CHECK(body(r) == "[-]watches-synced failed: not yet\nreadyz check failed\n");
    CHECK(get(port, "/healthz").starts_with("HTTP/1.1 500"));
    CHECK(get(port, "/readyz?exclude=watches-synced").starts_with("HTTP/1.1 200"));
    synced->set(true);
    CHECK(body(get(port, "/healthz")) == "ok\n");
    CHECK(body(get(port, "/readyz?verbose=1")) == "[+]watches-synced ok\nreadyz check passed\n");
    CHECK(get(port, "/readyz/watches-synced").starts_with("HTTP/1.1 200"));
    CHECK(get(port, "/readyz/nope").starts_with("HTTP/1.1 500"));
    CHECK(get(port, "/readyzzz").starts_with("HTTP/1.1 404"));
    CHECK(get(port, "/").starts_with("HTTP/1.1 404"));
    std::string post =
        httpExchange(port, "POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    CHECK(post.starts_with("HTTP/1.1 405"));
    CHECK(post.find("Allow: GET\r\n") != std::string::npos);
    // Two requests on one connection: the first keeps it open.
    std::string two = httpExchange(
        port, "GET /livez HTTP/1.1\r\nHost: t\r\n\r\nGET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    CHECK(count(two, "HTTP/1.1 200 OK") == 2);
    // A malformed request gets the connection closed, and the server keeps serving.
    httpExchange(port, "NONSENSE\r\n\r\n");
    CHECK(body(get(port, "/livez")) == "ok\n");
    (*server)->stop();
    (*server)->stop();  // idempotent
}

TEST_CASE("http: a taken port fails start-up with one line") {
    HealthChecks livez("livez"), readyz("readyz");
    auto first = OpsServer::start({"127.0.0.1:0", ""}, testHandlers(livez, readyz));
    REQUIRE(first);
    std::string addr = fmt::format("127.0.0.1:{}", (*first)->httpPort());
    auto second = OpsServer::start({addr, ""}, testHandlers(livez, readyz));
    REQUIRE_FALSE(second);
    CHECK(second.error().message.starts_with("--metrics-bind-address \"" + addr + "\": "));
    // knpd's choice: log it and serve without HTTP.
    auto tolerated = OpsServer::start({addr, "", true}, testHandlers(livez, readyz));
    REQUIRE(tolerated);
    CHECK((*tolerated)->httpEndpoint().empty());
    CHECK_FALSE(OpsServer::start({"nonsense", "", true}, testHandlers(livez, readyz)));  // never tolerated
    // "0" and "" disable HTTP.
    auto none = OpsServer::start({"0", ""}, testHandlers(livez, readyz));
    REQUIRE(none);
    CHECK((*none)->httpEndpoint().empty());
}

TEST_CASE("control socket: JSON lines, errors as values, 0600, one server per path, removed on stop") {
    TempDir tmp;
    std::string path = tmp.path + "/run/knpd.sock";
    HealthChecks livez("livez"), readyz("readyz");
    auto server = OpsServer::start({"0", path}, testHandlers(livez, readyz));
    REQUIRE(server);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 0777) == 0600);
    REQUIRE(::stat((tmp.path + "/run").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);

    auto r = controlRequest(path, {{"command", "status"}, {"n", 1}});
    REQUIRE(r);
    CHECK(r->at("command") == "status");
    // An {"ok": false} answer and a handler that throws both come back as errors.
    auto bad = controlRequest(path, {{"boom", true}});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message == "internal error: boom");

    {
        // Several lines on one connection; a line that is not JSON gets an error line.
        knp::host::sys::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::memcpy(a.sun_path, path.data(), path.size());
        REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        std::string req = "not json\n{\"command\":\"plugins\"}\n";
        REQUIRE(::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size()));
        ::shutdown(fd.get(), SHUT_WR);
        std::string out;
        char buf[4096];
        ssize_t n;
        while ((n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
        CHECK(out ==
              "{\"ok\":false,\"error\":\"a request is one JSON object per line\"}\n"
              "{\"ok\":true,\"result\":{\"command\":\"plugins\"}}\n");
    }
    {
        // A line over the limit is refused and the connection closed.
        knp::host::sys::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::memcpy(a.sun_path, path.data(), path.size());
        REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        std::string big(70 * 1024, 'x');
        ::send(fd.get(), big.data(), big.size(), MSG_NOSIGNAL);
        std::string out;
        char buf[4096];
        ssize_t n;
        while ((n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
        CHECK(out == "{\"ok\":false,\"error\":\"request line longer than 64 KiB\"}\n");
    }

    auto second = OpsServer::start({"0", path}, testHandlers(livez, readyz));
    REQUIRE_FALSE(second);
    CHECK(second.error().message == "--socket \"" + path + "\": another knpd is serving it");
    auto tolerated = OpsServer::start({"0", path, true}, testHandlers(livez, readyz));
    REQUIRE(tolerated);
    CHECK_FALSE((*tolerated)->socketServed());
    CHECK((*server)->socketServed());
    (*tolerated)->stop();  // must not remove the socket it does not own
    CHECK(std::filesystem::exists(path));
    (*server)->stop();
    CHECK_FALSE(std::filesystem::exists(path));
    auto gone = controlRequest(path, {{"command", "status"}});
    REQUIRE_FALSE(gone);
    CHECK(gone.error().message.find("is knpd running?") != std::string::npos);
}

TEST_CASE("control socket: a stale socket from a dead knpd is replaced; a plain file is not") {
    TempDir tmp;
    std::string path = tmp.path + "/knpd.sock";
    {
        knp::host::sys::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::memcpy(a.sun_path, path.data(), path.size());
        REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    }  // closed without unlinking: what a killed knpd leaves
    HealthChecks livez("livez"), readyz("readyz");
    auto server = OpsServer::start({"0", path}, testHandlers(livez, readyz));
    REQUIRE(server);
    CHECK(controlRequest(path, {{"command", "x"}}));
    (*server)->stop();

    std::string file = tmp.path + "/file";
    FILE* f = std::fopen(file.c_str(), "w");
    std::fclose(f);
    auto refused = OpsServer::start({"0", file}, testHandlers(livez, readyz));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message == "--socket \"" + file + "\": exists and is not a socket");
}
