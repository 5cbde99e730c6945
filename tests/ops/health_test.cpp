// Health checks (kube-apiserver's /readyz format) and the log formats (klog text, JSON lines).
#include <doctest/doctest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdio>
#include <string>

#include "common/log.hpp"
#include "ops/health.hpp"

using namespace knp::host;

TEST_CASE("health: all passing is \"ok\", verbose lists every check") {
    HealthChecks h("readyz");
    CHECK(h.add("ping", [] { return HealthResult{true, {}}; }));
    CHECK(h.add("plugins", [] { return HealthResult{true, "2 instances"}; }));
    CHECK_FALSE(h.add("ping", [] { return HealthResult{false, {}}; }));  // names are unique
    auto r = h.run();
    CHECK(r.ok);
    CHECK(h.format(r, false) == "ok");
    CHECK(h.format(r, true) == "[+]ping ok\n[+]plugins ok: 2 instances\nreadyz check passed");
}

TEST_CASE("health: a failing check fails the report and says why; exclude and one check") {
    HealthChecks h("readyz");
    h.add("ping", [] { return HealthResult{true, {}}; });
    auto watches = h.addFlag("watches-synced", "not synced yet");
    REQUIRE(watches);
    CHECK_FALSE(h.addFlag("watches-synced", "again"));
    auto r = h.run();
    CHECK_FALSE(r.ok);
    CHECK(h.format(r, false) == "[+]ping ok\n[-]watches-synced failed: not synced yet\nreadyz check failed");
    CHECK(h.run({}, {"watches-synced"}).ok);
    CHECK(h.run("ping").ok);
    CHECK_FALSE(h.run("watches-synced").ok);
    CHECK_FALSE(h.run("no-such-check").ok);
    watches->set(true, "3 watches");
    CHECK(h.run().ok);
    h.remove("ping");
    CHECK(h.format(h.run(), true) == "[+]watches-synced ok: 3 watches\nreadyz check passed");
}

TEST_CASE("health: a check that throws fails, it does not escape") {
    HealthChecks h("livez");
    h.add("boom", []() -> HealthResult { throw std::runtime_error("kaput"); });
    auto r = h.run();
    CHECK_FALSE(r.ok);
    CHECK(r.checks[0].second.message == "check threw: kaput");
}

namespace {

// Captures what logWrite sends to stderr.
std::string captureLog(const std::function<void()>& fn) {
    std::fflush(stderr);
    FILE* tmp = std::tmpfile();
    int saved = ::dup(STDERR_FILENO);
    ::dup2(::fileno(tmp), STDERR_FILENO);
    fn();
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    std::string out;
    std::rewind(tmp);
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, tmp)) > 0) out.append(buf, n);
    std::fclose(tmp);
    return out;
}

struct LogSettings {
    LogLevel threshold = logThreshold();
    LogFormat format = logFormat();
    ~LogSettings() {
        setLogThreshold(threshold);
        setLogFormat(format);
    }
};

}  // namespace

TEST_CASE("log: JSON lines carry ts, level, v, msg and the fields, escaped") {
    LogSettings restore;
    setLogFormat(LogFormat::Json);
    setLogThreshold(LogLevel::Info);
    std::string out = captureLog([] {
        logKV(LogLevel::Info, "knpd: reloaded \"x\"\nsecond line", {{"file", "/etc/a b.yaml"}, {"ctl", "\x01"}});
        logKV(LogLevel::Debug, "not printed at -v=2", {});
        logf(LogLevel::Warning, "plugin={:?} said {}", "np", 42);
    });
    std::vector<boost::json::object> lines;
    size_t start = 0;
    for (size_t nl; (nl = out.find('\n', start)) != std::string::npos; start = nl + 1)
        lines.push_back(boost::json::parse(out.substr(start, nl - start)).as_object());
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].at("level") == "info");
    CHECK(lines[0].at("v") == 2);
    CHECK(lines[0].at("msg") == "knpd: reloaded \"x\"\nsecond line");
    CHECK(lines[0].at("file") == "/etc/a b.yaml");
    CHECK(lines[0].at("ctl") == "\x01");
    std::string ts(lines[0].at("ts").as_string());
    CHECK(ts.size() == 27);
    CHECK(ts.back() == 'Z');
    CHECK(lines[1].at("level") == "warning");
    CHECK(lines[1].at("msg") == "plugin=\"np\" said 42");
}

TEST_CASE("log: klog text, one line a record, quoted fields; per-packet level off by default") {
    LogSettings restore;
    setLogFormat(LogFormat::Text);
    setLogThreshold(LogLevel::Info);
    CHECK_FALSE(logEnabled(LogLevel::Packet));
    std::string out = captureLog([] {
        logKV(LogLevel::Error, "a\nb", {{"plugin", "say \"hi\""}});
        logKV(LogLevel::Packet, "packet decision", {{"verdict", "drop"}});
    });
    REQUIRE(out.size() > 22);
    CHECK(out[0] == 'E');
    CHECK(out.find('\n') == out.size() - 1);
    CHECK(out.ends_with(" a b plugin=\"say \\\"hi\\\"\"\n"));
    setLogThreshold(LogLevel::Packet);
    CHECK(captureLog([] {
              logKV(LogLevel::Packet, "packet decision", {{"verdict", "drop"}});
          }).ends_with(" packet decision verdict=\"drop\"\n"));
}

TEST_CASE("log: a record longer than the stack buffer is written whole") {
    LogSettings restore;
    setLogFormat(LogFormat::Text);
    setLogThreshold(LogLevel::Info);
    std::string big(10000, 'x');
    std::string out = captureLog([&] { logWrite(LogLevel::Info, big); });
    CHECK(out.find(big + "\n") != std::string::npos);
}
