#include "kube/watch_manager.hpp"

#include <random>

#include "common/log.hpp"

namespace knp::host::kube {

Result<std::unique_ptr<WatchManager>> WatchManager::create(ClusterConfig config, WatchOptions options) {
    if (auto s = curlGlobalInit(); !s) return std::move(s).error();
    auto q = EventQueue::create(options.maxQueuedEvents);
    if (!q) return std::move(q).error();
    return std::unique_ptr<WatchManager>(new WatchManager(std::move(config), std::move(options), std::move(*q)));
}

WatchManager::WatchManager(ClusterConfig config, WatchOptions options, std::unique_ptr<EventQueue> queue)
    : config_(std::move(config)),
      options_(std::move(options)),
      tokens_(config_.token, config_.tokenFile, options_.tokenRefresh),
      queue_(std::move(queue)) {}

WatchManager::~WatchManager() { stop(); }

Result<uint32_t> WatchManager::addTarget(const WatchTarget& target) {
    if (started_) return makeError("watch {}: added after start", target.describe());
    for (size_t i = 0; i < targets_.size(); ++i)
        if (targets_[i] == target) return static_cast<uint32_t>(i);
    if (targets_.size() >= options_.maxTargets)
        return makeError("watch {}: more than {} distinct watches", target.describe(), options_.maxTargets);
    if (target.version.empty() || target.resource.empty())
        return makeError("watch {}: version and resource are required", target.describe());
    targets_.push_back(target);
    return static_cast<uint32_t>(targets_.size() - 1);
}

Status WatchManager::start() {
    if (started_) return makeError("watch manager already started");
    std::vector<std::unique_ptr<Reflector>> reflectors;
    std::random_device rd;
    for (size_t i = 0; i < targets_.size(); ++i) {
        auto http = HttpSession::create(config_, tokens_, stop_, options_.http);
        if (!http) return std::move(http).error().withContext(fmt::format("{}: ", config_.server));
        uint64_t seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
        reflectors.push_back(std::make_unique<Reflector>(static_cast<uint32_t>(i), targets_[i], std::move(*http),
                                                         tokens_, *queue_, stop_, options_.reflector, seed));
    }
    started_ = true;
    reflectors_ = std::move(reflectors);
    logf(LogLevel::Info, "kube: watching {} resources at {} ({})", targets_.size(), config_.server, config_.source);
    for (auto& r : reflectors_) threads_.emplace_back([rp = r.get()] { rp->run(); });
    return okStatus();
}

void WatchManager::stop() {
    if (stop_.exchange(true)) return;
    queue_->close();
    for (auto& r : reflectors_) r->wake();
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    threads_.clear();
}

bool WatchManager::allSynced() const {
    for (const auto& r : reflectors_)
        if (!r->health().synced) return false;
    return started_;
}

std::vector<TargetHealth> WatchManager::health() const {
    std::vector<TargetHealth> out;
    out.reserve(reflectors_.size());
    for (const auto& r : reflectors_) out.push_back(r->health());
    return out;
}

}  // namespace knp::host::kube
