// knpd: the node agent. Loads the pipeline, learns the cluster, programs nftables and judges
// queued packets. The cluster comes from the Kubernetes API (--kubeconfig, or in-cluster
// config when run as a pod), or from a state file (--state, re-read on SIGHUP) — the same
// objects `knpctl simulate` takes, for labs and tests without an API server.
//
// Signals: SIGTERM/SIGINT stop cleanly (fail-closed also removes the table); SIGHUP reloads
// the state. A reload that fails (a malformed file, a plugin error) is logged in one line and
// the previous state stays in force.
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <poll.h>

#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "common/log.hpp"
#include "dataplane/dataplane.hpp"
#include "ops/agent.hpp"
#include "ops/control_client.hpp"
#include "ops/exposition.hpp"
#include "ops/health.hpp"
#include "ops/ops_server.hpp"
#include "pipeline/config.hpp"
#include "pipeline/pipeline.hpp"
#include "state/state_file.hpp"
#include "state/kube_sync.hpp"
#include "state/state_sync.hpp"
#include "sys/handles.hpp"

using namespace knp::host;

namespace {

struct Flags {
    std::string hostname;
    std::string pipeline = KNP_PIPELINE_PATH;
    std::vector<std::string> pluginDirs;
    std::string state;
    std::string kubeconfig;
    std::string kubeContext;
    uint16_t queueId = 100;
    uint16_t queueCount = 1;
    uint32_t queueLength = 4096;
    bool failOpen = true;
    std::string table = "kube-network-policies";
    int verbosity = 2;
    // --- ops: metrics and health (HTTP), log format, control socket ---
    std::string metricsBindAddress = ":9080";
    std::string loggingFormat = "text";
    std::string socketPath = kDefaultControlSocket;
};

int fail(const Error& e) {
    logf(LogLevel::Error, "knpd: {}", e.message);
    return 1;
}

// Loads the state file and applies it; on failure nothing changes.
Status reload(const Flags& f, StateSync& sync, const Pipeline& pipeline, Dataplane& dp) {
    auto objects = loadStateFile(f.state);
    if (!objects) return std::move(objects).error();
    auto out = sync.sync(*objects);
    if (!out) return std::move(out).error();
    for (const auto& e : out->errors) logf(LogLevel::Error, "{}", e.message);
    return dp.publish(pipeline.current(), out->cluster);
}

}  // namespace

int main(int argc, char** argv) {
    Flags f;
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) f.hostname = host;

    CLI::App app{"knpd: enforces Kubernetes network policies on this node through a plugin pipeline"};
    app.add_option("--hostname-override", f.hostname, "this node's name (default: the host name)")
        ->capture_default_str();
    app.add_option("--pipeline", f.pipeline, "pipeline.yaml")->capture_default_str();
    app.add_option("--plugin-dir", f.pluginDirs, "directory searched first for plugin libraries (repeatable)");
    auto* stateOpt = app.add_option("--state", f.state,
                                    "enforce a cluster state file (YAML objects, re-read on SIGHUP) instead of "
                                    "watching the API server");
    app.add_option("--kubeconfig", f.kubeconfig, "kubeconfig to reach the API server (default: in-cluster config)")
        ->excludes(stateOpt);
    app.add_option("--kube-context", f.kubeContext, "kubeconfig context (default: its current-context)");
    app.add_option("--nfqueue-id", f.queueId, "first NFQUEUE queue number")->capture_default_str();
    app.add_option("--nfqueue-count", f.queueCount, "number of queues (one reader thread each)")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    app.add_option("--queue-length", f.queueLength, "packets each queue may hold")->capture_default_str();
    app.add_option("--fail-open", f.failOpen,
                   "accept traffic when knpd cannot judge it (no reader, full queue); false: drop it and "
                   "remove the ruleset on clean shutdown")
        ->capture_default_str();
    app.add_option("--table-name", f.table, "nftables table (family inet)")->capture_default_str();
    app.add_option("-v,--v", f.verbosity, "log verbosity 0-5 (5: per-packet decisions, rate-limited)")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)  // the last one wins, as with klog
        ->capture_default_str();
    // --- ops flags ---
    app.add_option("--metrics-bind-address", f.metricsBindAddress,
                   "address for /metrics, /livez, /readyz and /healthz: HOST:PORT, [IPv6]:PORT or :PORT (every "
                   "address); \"0\" disables")
        ->capture_default_str();
    app.add_option("--logging-format", f.loggingFormat, "log format: text (klog style) or json (one object per line)")
        ->check(CLI::IsMember({"text", "json"}))
        ->capture_default_str();
    app.add_option("--socket", f.socketPath,
                   "control socket for knpctl explain/status/plugins (created mode 0600, removed on exit); \"\" "
                   "disables")
        ->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    setLogThreshold(static_cast<LogLevel>(std::clamp(f.verbosity, 0, kMaxLogVerbosity)));
    setLogFormat(f.loggingFormat == "json" ? LogFormat::Json : LogFormat::Text);
    // ops: a malformed address fails here, before anything touches the kernel.
    if (f.metricsBindAddress != "0" && !f.metricsBindAddress.empty())
        if (auto a = parseBindAddress(f.metricsBindAddress); !a) return fail(a.error());

    // Signals are read synchronously from a signalfd: no handler runs on an arbitrary thread.
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // before any thread starts: they inherit it
    sys::Fd sigfd(signalfd(-1, &signals, SFD_CLOEXEC));
    if (!sigfd) return fail(makeError("signalfd: {}", std::strerror(errno)));

    auto cfg = parsePipelineFile(f.pipeline);
    if (!cfg) return fail(cfg.error());
    LoadOptions lo;
    lo.searchPath = PluginSearchPath::standard(f.pluginDirs);
    lo.nodeName = f.hostname;
    auto pipeline = Pipeline::load(*cfg, lo);
    if (!pipeline) return fail(pipeline.error());

    auto method = detectQueueMethod();
    if (!method) return fail(method.error());

    DataplaneOptions dopts;
    dopts.ruleset.table = f.table;
    dopts.ruleset.queueNum = f.queueId;
    dopts.ruleset.queueCount = f.queueCount;
    dopts.ruleset.bypass = f.failOpen;
    dopts.queue.maxLen = f.queueLength;
    dopts.queue.failOpen = f.failOpen;
    dopts.removeOnStop = !f.failOpen;
    Dataplane dp(dopts, *method);
    // Readers first: once the rules queue traffic, someone is there to answer.
    if (auto s = dp.start(); !s) return fail(s.error());

    // --- ops: /metrics and health on the ops thread, with the control socket; up before the
    // first load so /livez answers and /readyz says why it is not ready yet ---
    MetricsRegistry metrics;
    HealthChecks livez("livez"), readyz("readyz");
    // Set once the cluster is known: the state file loaded, or every watch synced.
    auto clusterLoaded = readyz.addFlag("cluster-state", "the cluster state has not been loaded or synced yet");
    AgentOps agent(dp,
                   {f.hostname, f.pipeline, *method == QueueMethod::Expression ? "expression" : "compat", f.failOpen},
                   metrics, livez, readyz);
    agent.pipelineLoaded(**pipeline);
    auto ops = OpsServer::start({f.metricsBindAddress, f.socketPath, /*tolerateBindErrors=*/true}, agent.handlers());
    if (!ops) {
        (void)dp.stop();
        return fail(ops.error());
    }
    if (!(*ops)->httpEndpoint().empty())
        logKV(LogLevel::Info, "knpd: serving /metrics, /livez, /readyz", {{"address", (*ops)->httpEndpoint()}});
    if ((*ops)->socketServed()) logKV(LogLevel::Info, "knpd: control socket", {{"path", f.socketPath}});
    // --- end ops ---

    auto enforcing = [&] {
        logf(LogLevel::Info,
             "knpd: enforcing node={:?} pipeline={:?} instances={} table=inet/{} queues={}-{} method={:?} fail-open={}",
             f.hostname, f.pipeline, (*pipeline)->instances().size(), f.table, f.queueId, f.queueId + f.queueCount - 1,
             queueMethodName(*method), f.failOpen);
    };
    // The cluster's source: a state file, or the API server's watches.
    StateSync sync(**pipeline, f.hostname);
    std::unique_ptr<kube::WatchManager> watches;
    std::unique_ptr<KubeSync> kubeSync;
    if (!f.state.empty()) {
        if (auto s = reload(f, sync, **pipeline, dp); !s) {
            (void)dp.stop();
            return fail(s.error());
        }
        clusterLoaded->set(true, fmt::format("{} loaded", f.state));
        enforcing();
    } else {
        auto kc = f.kubeconfig.empty() ? kube::inClusterConfig() : kube::loadKubeconfig(f.kubeconfig, f.kubeContext);
        auto wm = kc ? kube::WatchManager::create(*kc) : Result<std::unique_ptr<kube::WatchManager>>(kc.error());
        if (!wm) {
            (void)dp.stop();
            return fail(wm.error());
        }
        watches = std::move(*wm);
        kubeSync = std::make_unique<KubeSync>(**pipeline, *watches, f.hostname);
        Status s = kubeSync->addTargets();
        if (s) s = watches->start();
        if (!s) {
            (void)dp.stop();
            return fail(s.error());
        }
        logf(LogLevel::Info, "knpd: watching {} ({} targets); enforcing once every watch has synced",
             watches->config().source, watches->targets().size());
    }

    bool running = true;
    while (running) {
        pollfd pfds[2] = {{sigfd.get(), POLLIN, 0}, {watches ? watches->eventFd() : -1, POLLIN, 0}};
        int r = poll(pfds, watches ? 2 : 1, dp.retired() > 0 ? 50 : 1000);
        dp.reclaim();
        agent.heartbeat();
        if (r <= 0) continue;
        if (watches && (pfds[1].revents & POLLIN) != 0) {
            bool first = !kubeSync->synced();
            KubeSync::Outcome out = kubeSync->poll();
            // A malformed object or a failing plugin update is one line; the rest goes on, and
            // what was last known keeps being enforced.
            for (const auto& e : out.errors) logf(LogLevel::Error, "{}", e.message);
            if (out.cluster) {
                if (auto s = dp.publish((*pipeline)->current(), out.cluster); !s)
                    logf(LogLevel::Error, "knpd: {}", s.error().message);
                if (first) {
                    clusterLoaded->set(true, "every watch has synced");
                    enforcing();
                }
            }
        }
        if ((pfds[0].revents & POLLIN) == 0) continue;
        signalfd_siginfo si{};
        if (::read(sigfd.get(), &si, sizeof si) != sizeof si) continue;
        if (si.ssi_signo == SIGHUP && f.state.empty()) {
            logf(LogLevel::Info, "knpd: SIGHUP: nothing to reload in API-server mode");
        } else if (si.ssi_signo == SIGHUP) {
            if (auto s = reload(f, sync, **pipeline, dp); !s) {
                logf(LogLevel::Error, "knpd: reload failed, still enforcing the previous state: {}", s.error().message);
            } else {
                logf(LogLevel::Info, "knpd: reloaded {:?}", f.state);
            }
        } else {
            running = false;
        }
    }
    if (watches) watches->stop();
    (*ops)->stop();  // ops: no more scrapes or explains; the control socket is removed
    Status s = dp.stop();
    if (!s) return fail(s.error());
    logf(LogLevel::Info, "knpd: stopped ({})",
         f.failOpen ? "fail-open: rules left in place" : "fail-closed: table removed");
    return 0;
}
