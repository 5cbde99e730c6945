#include "state/enforcement.hpp"

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/log.hpp"
#include "state/state_file.hpp"

namespace knp::host {

namespace {

constexpr std::string_view triggerName(Enforcement::Trigger t) {
    return t == Enforcement::Trigger::Signal ? "SIGHUP" : "file change";
}

std::string instanceNames(const Pipeline& p) {
    std::string out;
    for (const auto& i : p.instances()) out += (out.empty() ? "" : ",") + i->name();
    return out;
}

// The Kubernetes atomic writer (ConfigMap and Secret volumes) swaps this symlink to replace
// every file of the volume at once; pipeline.yaml itself then changes without an event.
constexpr std::string_view kAtomicWriterLink = "..data";

}  // namespace

bool samePipeline(const PipelineConfig& a, const PipelineConfig& b) {
    if (a.dir != b.dir || a.defaultOnError != b.defaultOnError || a.instances.size() != b.instances.size())
        return false;
    for (size_t i = 0; i < a.instances.size(); ++i) {
        const InstanceConfig& x = a.instances[i];
        const InstanceConfig& y = b.instances[i];
        if (x.name != y.name || x.library != y.library || x.configJson != y.configJson || x.onError != y.onError ||
            x.enabled != y.enabled)
            return false;
    }
    return true;
}

Result<std::unique_ptr<Enforcement>> Enforcement::start(EnforcementOptions options, Dataplane& dp, AgentOps& agent) {
    std::unique_ptr<Enforcement> e(new Enforcement(std::move(options), dp, agent));
    auto cfg = parsePipelineFile(e->options_.pipelinePath);
    if (!cfg) return std::move(cfg).error();
    auto src = e->loadSource(*cfg);
    if (!src) return std::move(src).error();
    if (src->stateSync) {
        auto objects = loadStateFile(e->options_.statePath);
        if (!objects) return std::move(objects).error();
        auto out = src->stateSync->sync(*objects);
        if (!out) return std::move(out).error();
        for (const auto& err : out->errors) logf(LogLevel::Error, "{}", err.message);
        if (auto s = dp.publish(src->pipeline->current(), out->cluster); !s) return std::move(s).error();
        e->enforcing_ = true;
    } else {
        if (auto s = e->startWatches(*src); !s) return std::move(s).error();
        logf(LogLevel::Info, "knpd: watching {} ({} targets); enforcing once every watch has synced",
             src->watches->config().source, src->watches->targets().size());
    }
    e->current_ = std::move(*src);
    agent.watching(e->current_.watches.get());
    agent.pipelineLoaded(*e->current_.pipeline);
    if (e->options_.watchPipelineFile) {
        // Without it, SIGHUP still reloads: a warning, not a failure.
        if (auto s = e->watchPipelineFile(); !s)
            logf(LogLevel::Warning, "knpd: {}; reload pipeline.yaml with SIGHUP", s.error().message);
    }
    return e;
}

void Enforcement::stop() {
    if (current_.watches) current_.watches->stop();
    if (pending_) pending_->source.watches->stop();
    inotify_.reset();
    fileChanged_.reset();
}

Result<Enforcement::Source> Enforcement::loadSource(const PipelineConfig& config) const {
    Source s;
    auto p = Pipeline::load(config, options_.load);
    if (!p) return std::move(p).error();
    s.pipeline = std::move(*p);
    if (!options_.statePath.empty()) s.stateSync = std::make_unique<StateSync>(*s.pipeline, options_.load.nodeName);
    return s;
}

Status Enforcement::startWatches(Source& s) const {
    if (!options_.kube) return makeError("no API server configured");
    auto wm = kube::WatchManager::create(*options_.kube, options_.watch);
    if (!wm) return std::move(wm).error();
    s.watches = std::move(*wm);
    s.kubeSync = std::make_unique<KubeSync>(*s.pipeline, *s.watches, options_.load.nodeName);
    if (auto st = s.kubeSync->addTargets(); !st) return st;
    return s.watches->start();
}

Status Enforcement::watchPipelineFile() {
    std::filesystem::path path(options_.pipelinePath);
    fileName_ = path.filename().string();
    fileDir_ = path.has_parent_path() ? path.parent_path().string() : ".";
    inotify_ = sys::Fd(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!inotify_) return makeError("inotify: {}", std::strerror(errno));
    // The directory, not the file: editors and the atomic writer replace the file by a rename,
    // which a watch on the file itself would not follow.
    if (inotify_add_watch(inotify_.get(), fileDir_.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
        Error e = makeError("cannot watch {:?} for changes of {:?}: {}", fileDir_, fileName_, std::strerror(errno));
        inotify_.reset();
        return e;
    }
    return okStatus();
}

std::vector<int> Enforcement::fds() const {
    std::vector<int> out;
    if (inotify_) out.push_back(inotify_.get());
    if (current_.watches) out.push_back(current_.watches->eventFd());
    if (pending_) out.push_back(pending_->source.watches->eventFd());
    return out;
}

void Enforcement::readFileEvents() {
    alignas(inotify_event) char buf[4096];
    while (true) {
        ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
        if (n <= 0) return;
        for (char* p = buf; p < buf + n;) {
            const auto* ev = reinterpret_cast<const inotify_event*>(p);
            std::string_view name = ev->len > 0 ? std::string_view(ev->name) : std::string_view();
            // IN_CREATE only matters for a symlink (created complete); a regular file is
            // complete at IN_CLOSE_WRITE. An overflow may have hidden our file: reload to see.
            bool ours = name == fileName_ || name == kAtomicWriterLink;
            if (ours && (ev->mask & IN_CREATE) != 0) {
                struct stat st {};
                ours = ::lstat((fileDir_ + "/" + std::string(name)).c_str(), &st) == 0 && S_ISLNK(st.st_mode);
            }
            if ((ev->mask & IN_Q_OVERFLOW) != 0 || ours) fileChanged_ = std::chrono::steady_clock::now();
            p += sizeof(inotify_event) + ev->len;
        }
    }
}

void Enforcement::poll() {
    if (inotify_) readFileEvents();
    if (current_.kubeSync) {
        bool first = !current_.kubeSync->synced();
        KubeSync::Outcome out = current_.kubeSync->poll();
        // A malformed object or a failing plugin update is one line; the rest goes on, and
        // what was last known keeps being enforced.
        for (const auto& e : out.errors) logf(LogLevel::Error, "{}", e.message);
        if (out.cluster) {
            if (auto s = dp_.publish(current_.pipeline->current(), out.cluster); !s)
                logf(LogLevel::Error, "knpd: {}", s.error().message);
            if (first) enforcing_ = true;
        }
    }
    if (pending_) {
        KubeSync::Outcome out = pending_->source.kubeSync->poll();
        for (const auto& e : out.errors) logf(LogLevel::Error, "knpd: new pipeline: {}", e.message);
        if (!out.cluster) return;  // still syncing
        Pending p = std::move(*pending_);
        pending_.reset();
        agent_.reloadPending(false);
        if (!p.source.pipeline->current()->ready()) {
            reject(
                makeError("{}: the new pipeline has instances without a snapshot after the sync (see the errors "
                          "above)",
                          options_.pipelinePath));
            return;
        }
        promote(std::move(p.source), std::move(out.cluster), p.trigger);
    }
}

void Enforcement::tick() {
    dp_.reclaim();
    // A replaced pipeline goes once no view published before the swap can be seen; destroying
    // it releases its plugins' snapshots and instances here, on the control thread.
    std::erase_if(retiring_, [this](const Retiring& r) { return dp_.reclaimedThrough(r.epoch); });
    auto now = std::chrono::steady_clock::now();
    if (fileChanged_ && now - *fileChanged_ >= options_.settle) {
        fileChanged_.reset();
        reload(Trigger::FileChange);
    }
    if (pending_ && now - pending_->started > options_.pendingSyncLimit) {
        pending_.reset();
        agent_.reloadPending(false);
        reject(makeError("the new pipeline's watches did not sync within {}s", options_.pendingSyncLimit.count()));
    }
}

int Enforcement::timeoutMs() const {
    if (dp_.retired() > 0 || !retiring_.empty() || fileChanged_) return 50;
    return 1000;
}

void Enforcement::reject(const Error& e) {
    agent_.reloaded(AgentOps::Reload::Rejected);
    logf(LogLevel::Error, "knpd: pipeline reload rejected, the running pipeline stays: {}", e.message);
}

void Enforcement::reloadState() {
    auto objects = loadStateFile(options_.statePath);
    auto out = objects ? current_.stateSync->sync(*objects) : Result<StateSync::Outcome>(objects.error());
    Status s = out ? okStatus() : Status(out.error());
    if (out) {
        for (const auto& e : out->errors) logf(LogLevel::Error, "{}", e.message);
        s = dp_.publish(current_.pipeline->current(), out->cluster);
    }
    if (!s) {
        logf(LogLevel::Error, "knpd: reload failed, still enforcing the previous state: {}", s.error().message);
        return;
    }
    logf(LogLevel::Info, "knpd: reloaded {:?} (pipeline unchanged)", options_.statePath);
}

void Enforcement::reload(Trigger trigger) {
    // This reads the file as it is now: a change noticed before is covered (a SIGHUP right
    // after an edit is one reload, not two).
    fileChanged_.reset();
    auto cfg = parsePipelineFile(options_.pipelinePath);
    if (!cfg) return reject(cfg.error());
    if (pending_ && samePipeline(*cfg, pending_->source.pipeline->config())) {
        agent_.reloaded(AgentOps::Reload::Unchanged);
        logf(LogLevel::Info, "knpd: {}: pipeline {:?} unchanged since the reload that is still syncing",
             triggerName(trigger), options_.pipelinePath);
        return;
    }
    if (samePipeline(*cfg, current_.pipeline->config())) {
        if (pending_) {
            // Back to what runs: the reload still syncing is for a file that no longer exists.
            pending_.reset();
            agent_.reloadPending(false);
            logf(LogLevel::Info, "knpd: {}: pipeline {:?} is back to the running pipeline; pending reload dropped",
                 triggerName(trigger), options_.pipelinePath);
        }
        agent_.reloaded(AgentOps::Reload::Unchanged);
        if (!options_.statePath.empty() && trigger == Trigger::Signal) return reloadState();
        logf(LogLevel::Info, "knpd: {}: pipeline {:?} unchanged; nothing to reload", triggerName(trigger),
             options_.pipelinePath);
        return;
    }
    auto next = loadSource(*cfg);
    if (!next) return reject(next.error());
    if (next->stateSync) {
        // The new pipeline starts from nothing: it gets the whole state, as at start.
        auto objects = loadStateFile(options_.statePath);
        if (!objects) return reject(objects.error());
        auto out = next->stateSync->sync(*objects);
        if (!out) return reject(out.error());
        if (!out->errors.empty() || !next->pipeline->current()->ready()) {
            Error first = out->errors.empty() ? makeError("an instance has no snapshot") : out->errors.front();
            return reject(first.withContext(fmt::format("{}: new pipeline: ", options_.pipelinePath)));
        }
        return promote(std::move(*next), std::move(out->cluster), trigger);
    }
    if (auto s = startWatches(*next); !s) return reject(s.error());
    if (pending_) logf(LogLevel::Info, "knpd: a newer pipeline.yaml replaces the reload still syncing");
    logf(LogLevel::Info,
         "knpd: {}: pipeline {:?} changed; syncing {} watches for it while the running pipeline enforces",
         triggerName(trigger), options_.pipelinePath, next->watches->targets().size());
    pending_.emplace(Pending{std::move(*next), std::chrono::steady_clock::now(), trigger});
    agent_.reloadPending(true);
}

void Enforcement::promote(Source next, std::shared_ptr<const ClusterSnapshot> cluster, Trigger trigger) {
    // Readers switch to the new view atomically inside publish(); a failed ruleset update leaves
    // the view in force and the next publish brings the kernel in line.
    if (auto s = dp_.publish(next.pipeline->current(), std::move(cluster)); !s)
        logf(LogLevel::Error, "knpd: {}", s.error().message);
    Source old = std::exchange(current_, std::move(next));
    agent_.watching(current_.watches.get());  // before the old watches can go
    if (old.watches) old.watches->stop();
    retiring_.push_back({std::move(old), dp_.epoch()});
    agent_.pipelineLoaded(*current_.pipeline);
    agent_.reloaded(AgentOps::Reload::Applied);
    enforcing_ = true;
    logf(LogLevel::Info, "knpd: reloaded pipeline {:?} ({}): instances={}{}", options_.pipelinePath,
         triggerName(trigger), instanceNames(*current_.pipeline),
         options_.statePath.empty() ? std::string() : fmt::format(" state={:?}", options_.statePath));
}

}  // namespace knp::host
