// knp-kube-watch: a developer tool (not installed) that runs the host's watch client and prints
// one line per event, so the list/watch path can be seen working by hand and driven by tests.
//
//   knp-kube-watch --kubeconfig lab/kubeconfig --resource v1/pods --resource networking.k8s.io/v1/networkpolicies
//
// SIGUSR1 prints one health line (JSON); SIGINT/SIGTERM stop. The tests use -o json.
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <poll.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include "common/log.hpp"
#include "kube/config.hpp"
#include "kube/watch_manager.hpp"
#include "sys/handles.hpp"

using namespace knp::host;
using namespace knp::host::kube;
namespace json = boost::json;

namespace {

int fail(const std::string& message) {
    std::fprintf(stderr, "knp-kube-watch: error: %s\n", message.c_str());
    return 1;
}

void printLine(const std::string& s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fputc('\n', stdout);
}

json::object healthJson(const WatchManager& wm) {
    json::array targets;
    auto health = wm.health();
    for (size_t i = 0; i < health.size(); ++i) {
        const TargetHealth& h = health[i];
        json::object o{{"target", i},
                       {"resource", wm.targets()[i].describe()},
                       {"synced", h.synced},
                       {"missing", h.missing},
                       {"relists", h.relists},
                       {"watchStarts", h.watchStarts},
                       {"events", h.events},
                       {"failures", h.failures},
                       {"objects", h.objects},
                       {"resourceVersion", h.resourceVersion},
                       {"lastError", h.lastError}};
        if (h.lastEventAge)
            o["lastEventAgeMs"] = std::chrono::duration_cast<std::chrono::milliseconds>(*h.lastEventAge).count();
        targets.push_back(std::move(o));
    }
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    return json::object{{"health", std::move(targets)}, {"cpuSeconds", cpu}, {"maxRssKiB", ru.ru_maxrss}};
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"knp-kube-watch: run knp's Kubernetes watch client and print its events"};
    std::string kubeconfig, context, saDir = kServiceAccountDir, output = "text", ns, labels, fields;
    std::vector<std::string> resources;
    bool inCluster = false, objects = false, exitAfterSync = false;
    int verbosity = 0;
    WatchOptions wo;
    long watchTimeout = 300, idleTimeout = 300, backoffInitial = 250, backoffMax = 30000, tokenRefresh = 60;
    uint32_t pageSize = 500;
    app.add_option("--kubeconfig", kubeconfig, "kubeconfig file");
    app.add_option("--context", context, "kubeconfig context (default: current-context)");
    app.add_flag("--in-cluster", inCluster, "use the in-cluster service account");
    app.add_option("--service-account-dir", saDir, "test override of the service-account mount")->capture_default_str();
    app.add_option("--resource", resources, "group/version/resource (core: v1/pods); repeatable")->required();
    app.add_option("--namespace", ns, "watch one namespace");
    app.add_option("--selector", labels, "label selector");
    app.add_option("--field-selector", fields, "field selector");
    app.add_option("-o,--output", output, "text | json | none")
        ->check(CLI::IsMember({"text", "json", "none"}))
        ->capture_default_str();
    app.add_flag("--objects", objects, "print each object's JSON as well");
    app.add_flag("--exit-after-sync", exitAfterSync, "exit once every resource has synced (prints a summary)");
    app.add_option("--page-size", pageSize, "LIST limit")->capture_default_str();
    app.add_option("--watch-timeout", watchTimeout, "server-side watch timeout base, seconds")->capture_default_str();
    app.add_option("--idle-timeout", idleTimeout, "drop a silent watch after this many seconds (0: never)")
        ->capture_default_str();
    app.add_option("--backoff-initial", backoffInitial, "first retry delay, ms")->capture_default_str();
    app.add_option("--backoff-max", backoffMax, "longest retry delay, ms")->capture_default_str();
    app.add_option("--token-refresh", tokenRefresh, "re-read a token file every this many seconds")
        ->capture_default_str();
    std::string retain = "full";
    app.add_option("--retain", retain, "what the cache keeps of each object: full | metadata")
        ->check(CLI::IsMember({"full", "metadata"}))
        ->capture_default_str();
    app.add_flag("-v", verbosity, "log more (repeat for more)");
    CLI11_PARSE(app, argc, argv);
    setLogThreshold(static_cast<LogLevel>(std::min(2 + verbosity, 4)));
    if (inCluster == !kubeconfig.empty()) return fail("give exactly one of --kubeconfig and --in-cluster");

    // Signals are read from a signalfd; blocked before any thread starts, so threads inherit it.
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGTERM, SIGINT, SIGUSR1}) sigaddset(&signals, s);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    sys::Fd sigfd(::signalfd(-1, &signals, SFD_CLOEXEC));
    if (!sigfd) return fail(std::string("signalfd: ") + std::strerror(errno));

    Result<ClusterConfig> config = Error{};
    if (inCluster) {
        InClusterOptions o;
        o.serviceAccountDir = saDir;
        config = inClusterConfig(o);
    } else {
        config = loadKubeconfig(kubeconfig, context);
    }
    if (!config) return fail(config.error().message);

    wo.reflector.pageSize = pageSize;
    wo.reflector.retention = retain == "full" ? ObjectRetention::Full : ObjectRetention::Metadata;
    wo.reflector.watchTimeout = std::chrono::seconds(watchTimeout);
    wo.reflector.idleTimeout = std::chrono::seconds(idleTimeout);
    wo.reflector.backoff.initial = std::chrono::milliseconds(backoffInitial);
    wo.reflector.backoff.max = std::chrono::milliseconds(backoffMax);
    wo.tokenRefresh = std::chrono::seconds(tokenRefresh);
    auto wm = WatchManager::create(std::move(*config), wo);
    if (!wm) return fail(wm.error().message);
    for (const auto& r : resources) {
        auto t = WatchTarget::parse(r);
        if (!t) return fail("--resource " + t.error().message);
        t->ns = ns;
        t->labelSelector = labels;
        t->fieldSelector = fields;
        if (auto idx = (*wm)->addTarget(*t); !idx) return fail(idx.error().message);
    }
    auto started = std::chrono::steady_clock::now();
    if (auto s = (*wm)->start(); !s) return fail(s.error().message);

    std::vector<WatchEvent> batch;
    uint64_t events = 0;
    // Readiness as a consumer sees it: a SYNCED of every target has come out of the queue.
    std::vector<bool> synced((*wm)->targets().size(), false);
    size_t syncedCount = 0;
    bool running = true;
    while (running) {
        pollfd pfd[2] = {{(*wm)->eventFd(), POLLIN, 0}, {sigfd.get(), POLLIN, 0}};
        if (::poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return fail(std::string("poll: ") + std::strerror(errno));
        }
        if (pfd[1].revents & POLLIN) {
            signalfd_siginfo si{};
            if (::read(sigfd.get(), &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGUSR1) {
                    printLine(json::serialize(healthJson(**wm)));
                    std::fflush(stdout);
                } else {
                    running = false;
                }
            }
        }
        batch.clear();
        (*wm)->drain(batch);
        for (const WatchEvent& e : batch) {
            ++events;
            if (e.type == KNP_EVENT_SYNCED && !synced[e.target]) {
                synced[e.target] = true;
                ++syncedCount;
            }
            const WatchTarget& t = (*wm)->targets()[e.target];
            if (output == "json") {
                json::object o{{"target", e.target}, {"resource", t.describe()}, {"type", eventTypeName(e.type)},
                               {"ns", e.ns},         {"name", e.name},           {"rv", e.resourceVersion}};
                if (objects && e.object) o["object"] = json::parse(e.json());
                printLine(json::serialize(o));
            } else if (output == "text") {
                std::string line = fmt::format("{:<8} {}", eventTypeName(e.type), t.describe());
                if (!e.name.empty())
                    line += fmt::format(" {}{} rv={}", e.ns.empty() ? "" : e.ns + "/", e.name, e.resourceVersion);
                if (objects && e.object) line += fmt::format(" {}", e.json());
                printLine(line);
            }
        }
        if (!batch.empty()) std::fflush(stdout);
        if (exitAfterSync && syncedCount == synced.size()) {
            double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            json::object summary = healthJson(**wm);
            summary["syncSeconds"] = secs;
            summary["eventsSeen"] = events;
            printLine(json::serialize(summary));
            running = false;
        }
    }
    (*wm)->stop();
    return 0;
}
