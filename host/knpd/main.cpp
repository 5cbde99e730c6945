// knpd: the node agent. Loads the pipeline, learns the cluster, programs nftables and judges
// queued packets. Until the Kubernetes watch client lands, the cluster comes from a state file
// (--state), re-read on SIGHUP — the same objects `knpctl simulate` takes.
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
#include "pipeline/config.hpp"
#include "pipeline/pipeline.hpp"
#include "state/state_file.hpp"
#include "state/state_sync.hpp"
#include "sys/handles.hpp"

using namespace knp::host;

namespace {

struct Flags {
    std::string hostname;
    std::string pipeline = KNP_PIPELINE_PATH;
    std::vector<std::string> pluginDirs;
    std::string state;
    uint16_t queueId = 100;
    uint16_t queueCount = 1;
    uint32_t queueLength = 4096;
    bool failOpen = true;
    std::string table = "kube-network-policies";
    int verbosity = 2;
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
    app.add_option("--state", f.state, "cluster state file to enforce (YAML objects, re-read on SIGHUP)")->required();
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
    app.add_option("-v,--v", f.verbosity, "log verbosity 0-4")->capture_default_str();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    setLogThreshold(static_cast<LogLevel>(std::clamp(f.verbosity, 0, 4)));

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

    StateSync sync(**pipeline, f.hostname);
    if (auto s = reload(f, sync, **pipeline, dp); !s) {
        (void)dp.stop();
        return fail(s.error());
    }
    logf(LogLevel::Info,
         "knpd: enforcing node={:?} pipeline={:?} instances={} table=inet/{} queues={}-{} method={:?} fail-open={}",
         f.hostname, f.pipeline, (*pipeline)->instances().size(), f.table, f.queueId, f.queueId + f.queueCount - 1,
         queueMethodName(*method), f.failOpen);

    bool running = true;
    while (running) {
        pollfd pfd{sigfd.get(), POLLIN, 0};
        int r = poll(&pfd, 1, dp.retired() > 0 ? 50 : 1000);
        dp.reclaim();
        if (r <= 0) continue;
        signalfd_siginfo si{};
        if (::read(sigfd.get(), &si, sizeof si) != sizeof si) continue;
        if (si.ssi_signo == SIGHUP) {
            if (auto s = reload(f, sync, **pipeline, dp); !s) {
                logf(LogLevel::Error, "knpd: reload failed, still enforcing the previous state: {}", s.error().message);
            } else {
                logf(LogLevel::Info, "knpd: reloaded {:?}", f.state);
            }
        } else {
            running = false;
        }
    }
    Status s = dp.stop();
    if (!s) return fail(s.error());
    logf(LogLevel::Info, "knpd: stopped ({})",
         f.failOpen ? "fail-open: rules left in place" : "fail-closed: table removed");
    return 0;
}
