// knpd: the node agent. Loads the pipeline, learns the cluster, programs nftables and judges
// queued packets. The cluster comes from the Kubernetes API (--kubeconfig, or in-cluster
// config when run as a pod), or from a state file (--state, re-read on SIGHUP) — the same
// objects `knpctl simulate` takes, for labs and tests without an API server.
//
// Signals: SIGHUP, or a change of pipeline.yaml on disk, reloads (state/enforcement.hpp: a
// new pipeline goes into force only once it is complete; a bad file is one line and the
// running pipeline stays). SIGTERM/SIGINT stop: the watches first, then every packet already
// queued gets its verdict (bounded), then fail-closed removes the table; the process is out
// within kExitDeadline whatever hangs (knpd/signals.hpp).
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/log.hpp"
#include "dataplane/dataplane.hpp"
#include "ops/agent.hpp"
#include "ops/control_client.hpp"
#include "ops/exposition.hpp"
#include "ops/health.hpp"
#include "ops/ops_server.hpp"
#include "knpd/signals.hpp"
#include "state/enforcement.hpp"

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
    std::string acceptMark = "0x10000000";
    int verbosity = 2;
    // --- ops: metrics and health (HTTP), log format, control socket ---
    std::string metricsBindAddress = ":9080";
    std::string loggingFormat = "text";
    std::string socketPath = kDefaultControlSocket;
};

// Packets already queued at a stop get their verdicts within this; the process exits within
// kExitDeadline of the stop signal even if something hangs.
constexpr std::chrono::milliseconds kDrainTimeout{2000};
constexpr std::chrono::milliseconds kExitDeadline{5000};

int fail(const Error& e) {
    logf(LogLevel::Error, "knpd: {}", e.message);
    return 1;
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
    app.add_option("--accept-mark", f.acceptMark,
                   "packet-mark bit(s) an accept verdict sets so that knpd's ruleset labels the connection; "
                   "must be knpd's alone on the node (choose another if the CNI or kube-proxy uses it)")
        ->capture_default_str();
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
    // Go's flag package (kube-network-policies, klog) takes one dash or two before a long flag:
    // manifests written for upstream say `-v=2` or `-hostname-override=…`. CLI11 reads `-v=2`
    // as the value "=2", so such arguments get their second dash here.
    std::vector<std::string> args(argv, argv + argc);
    for (size_t i = 1; i < args.size() && args[i] != "--"; ++i) {
        const std::string& a = args[i];
        if (a.size() < 3 || a[0] != '-' || a[1] == '-') continue;
        std::string name = a.substr(1, a.find('=') - 1);
        if (name.size() >= 1 && (name.size() > 1 || a[2] == '=') && app.get_option_no_throw("--" + name) != nullptr)
            args[i] = "-" + a;
    }
    std::vector<char*> argvNormalized;
    for (std::string& a : args) argvNormalized.push_back(a.data());
    try {
        app.parse(static_cast<int>(argvNormalized.size()), argvNormalized.data());
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    setLogThreshold(static_cast<LogLevel>(std::clamp(f.verbosity, 0, kMaxLogVerbosity)));
    setLogFormat(f.loggingFormat == "json" ? LogFormat::Json : LogFormat::Text);
    // A malformed mark or address fails here, before anything touches the kernel.
    char* markEnd = nullptr;
    errno = 0;
    unsigned long long acceptMark = std::strtoull(f.acceptMark.c_str(), &markEnd, 0);
    if (f.acceptMark.empty() || *markEnd != '\0' || errno != 0 || acceptMark == 0 || acceptMark > 0xffffffffULL)
        return fail(makeError("--accept-mark {:?}: not a non-zero 32-bit mark (such as 0x10000000)", f.acceptMark));
    if (f.metricsBindAddress != "0" && !f.metricsBindAddress.empty())
        if (auto a = parseBindAddress(f.metricsBindAddress); !a) return fail(a.error());

    // Before any other thread starts: they inherit the blocked signals.
    auto signals = SignalThread::start(kExitDeadline);
    if (!signals) return fail(signals.error());

    EnforcementOptions eo;
    eo.pipelinePath = f.pipeline;
    eo.load.searchPath = PluginSearchPath::standard(f.pluginDirs);
    eo.load.nodeName = f.hostname;
    eo.statePath = f.state;
    if (f.state.empty()) {
        auto kc = f.kubeconfig.empty() ? kube::inClusterConfig() : kube::loadKubeconfig(f.kubeconfig, f.kubeContext);
        if (!kc) return fail(kc.error());
        eo.kube = std::move(*kc);
    }
    // Declared before the dataplane, destroyed after it: the dataplane's last views hold
    // snapshots of the pipelines it owns.
    std::unique_ptr<Enforcement> enforcement;

    auto method = detectQueueMethod();
    if (!method) return fail(method.error());

    DataplaneOptions dopts;
    dopts.ruleset.table = f.table;
    dopts.ruleset.queueNum = f.queueId;
    dopts.ruleset.queueCount = f.queueCount;
    dopts.ruleset.bypass = f.failOpen;
    dopts.ruleset.acceptMark = static_cast<uint32_t>(acceptMark);
    dopts.queue.maxLen = f.queueLength;
    dopts.queue.failOpen = f.failOpen;
    dopts.removeOnStop = !f.failOpen;
    dopts.drainTimeout = kDrainTimeout;
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
    auto ops = OpsServer::start({f.metricsBindAddress, f.socketPath, /*tolerateBindErrors=*/true}, agent.handlers());
    if (!ops) {
        (void)dp.stop();
        return fail(ops.error());
    }
    if (!(*ops)->httpEndpoint().empty())
        logKV(LogLevel::Info, "knpd: serving /metrics, /livez, /readyz", {{"address", (*ops)->httpEndpoint()}});
    if ((*ops)->socketServed()) logKV(LogLevel::Info, "knpd: control socket", {{"path", f.socketPath}});
    // --- end ops ---

    // The pipeline and the cluster's source (a state file, or the API server's watches).
    auto started = Enforcement::start(std::move(eo), dp, agent);
    if (!started) {
        (*ops)->stop();
        (void)dp.stop();
        return fail(started.error());
    }
    enforcement = std::move(*started);
    bool enforcing = false;

    bool running = true;
    while (running) {
        if (enforcing != enforcement->enforcing()) {
            enforcing = true;
            clusterLoaded->set(
                true, f.state.empty() ? std::string("every watch has synced") : fmt::format("{} loaded", f.state));
            logf(LogLevel::Info,
                 "knpd: enforcing node={:?} pipeline={:?} instances={} table=inet/{} queues={}-{} method={:?} "
                 "fail-open={}",
                 f.hostname, f.pipeline, enforcement->pipeline().instances().size(), f.table, f.queueId,
                 f.queueId + f.queueCount - 1, queueMethodName(*method), f.failOpen);
        }
        std::vector<pollfd> pfds{{(*signals)->fd(), POLLIN, 0}};
        for (int fd : enforcement->fds()) pfds.push_back({fd, POLLIN, 0});
        int r = poll(pfds.data(), pfds.size(), enforcement->timeoutMs());
        if (r > 0) enforcement->poll();
        enforcement->tick();
        agent.heartbeat();
        while (auto sig = (*signals)->next()) {
            if (*sig == SIGHUP) {
                enforcement->reload(Enforcement::Trigger::Signal);
            } else {
                running = false;
                break;
            }
        }
    }
    // Stop taking new work: no more watch events or reloads; then no more scrapes or explains
    // (the control socket is removed); then answer what is queued and leave.
    enforcement->stop();
    (*ops)->stop();
    Status s = dp.stop();
    if (!s) return fail(s.error());
    uint64_t drained = 0;
    for (const auto& r : dp.readers()) drained += r->drained();
    logf(LogLevel::Info, "knpd: stopped ({}; {} queued packets answered while draining)",
         f.failOpen ? "fail-open: rules left in place" : "fail-closed: table removed", drained);
    return 0;
}
