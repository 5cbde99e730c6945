#include "dataplane/dataplane.hpp"

#include "common/log.hpp"
#include "engine/engine.hpp"

namespace knp::host {

Dataplane::Dataplane(DataplaneOptions options, QueueMethod method)
    : options_(std::move(options)),
      ruleset_(options_.ruleset, method),
      slots_(std::make_unique<Slot[]>(options_.ruleset.queueCount)) {}

Dataplane::~Dataplane() {
    for (auto& r : readers_) r->stop();
    readers_.clear();
    if (const View* v = view_.exchange(nullptr)) delete v;
    for (auto& [v, e] : retired_) delete v;
}

Status Dataplane::start() {
    for (unsigned i = 0; i < options_.ruleset.queueCount; ++i) {
        QueueOptions q = options_.queue;
        q.num = static_cast<uint16_t>(options_.ruleset.queueNum + i);
        auto r = QueueReader::open(q, i, *this);
        if (!r) return std::move(r).error();
        readers_.push_back(std::move(*r));
    }
    for (auto& r : readers_) r->start();
    return okStatus();
}

Status Dataplane::publish(std::shared_ptr<const PipelineSnapshot> pipeline,
                          std::shared_ptr<const ClusterSnapshot> cluster) {
    std::vector<const InterestSet*> interests;
    for (const auto& s : pipeline->pluginSnapshots())
        if (s) interests.push_back(&s->interest());
    DesiredRuleset desired = desiredRuleset(interests, cluster->localPodIps());

    // Readers see the new view before the kernel queues new traffic for it.
    const View* old = view_.exchange(new View{std::move(pipeline), std::move(cluster)});
    uint64_t e = epoch_.fetch_add(1) + 1;
    if (old != nullptr) retired_.emplace_back(old, e);
    reclaim();
    return ruleset_.apply(desired);
}

void Dataplane::reclaim() {
    if (retired_.empty()) return;
    uint64_t min = kOffline;
    for (unsigned i = 0; i < options_.ruleset.queueCount; ++i) min = std::min(min, slots_[i].seen.load());
    auto keep = retired_.begin();
    for (auto it = retired_.begin(); it != retired_.end(); ++it) {
        if (it->second <= min) {
            delete it->first;  // may release plugin snapshots: we are on the control thread
        } else {
            *keep++ = *it;
        }
    }
    retired_.erase(keep, retired_.end());
}

Status Dataplane::stop() {
    for (auto& r : readers_) r->stop();
    if (options_.removeOnStop) return ruleset_.remove();
    return okStatus();
}

void Dataplane::begin(unsigned reader) noexcept {
    Slot& s = slots_[reader];
    s.seen.store(epoch_.load());
    s.view = view_.load();
}

bool Dataplane::accept(unsigned reader, const knp_packet& packet) noexcept {
    const View* v = slots_[reader].view;
    // Nothing published yet: the not-ready behaviour is the fail-open setting.
    if (v == nullptr) return options_.queue.failOpen;
    const ClusterSnapshot& c = *v->cluster;
    EvaluateScope scope{c.isLocal(packet.src), c.isLocal(packet.dst)};
    if (!scope.egress && !scope.ingress) return true;  // neither end lives here: not ours to judge
    return evaluatePacket(*v->pipeline, c, packet, scope).accept;
}

void Dataplane::done(unsigned reader) noexcept {
    slots_[reader].view = nullptr;
    slots_[reader].seen.store(kOffline);
}

}  // namespace knp::host
